package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"github.com/infrad/infrad/pkg/config"
	"github.com/infrad/infrad/pkg/pki"
)

// Joining, kubeadm's way: the first node makes a join token, which pins the site
// CA's root (its SHA-256) and carries a secret. A new node given the token reaches
// another node's cluster port, checks that the node's certificate comes from the
// pinned root, and trades the secret for what every node holds alike: the CA's keys
// and the API token. From then on it has a node's certificate of its own, starts its
// Raft, and asks the leader to take it as a voter.

// JoinTokenFile is the join token's file in the data directory (0600). Every node
// that has joined holds it, so any of them admits the next.
const JoinTokenFile = "join-token"

// APITokenFile is the API token's file in the data directory: a joining node receives
// it, so that a token is valid on every node.
const APITokenFile = "api-token"

const tokenPrefix = "infrad-join"

// token is a parsed join token: infrad-join.<root's SHA-256, hex>.<secret>.
type token struct {
	root   string
	secret string
}

func parseToken(s string) (token, error) {
	parts := strings.Split(strings.TrimSpace(s), ".")
	if len(parts) != 3 || parts[0] != tokenPrefix || len(parts[1]) != 64 || parts[2] == "" {
		return token{}, errors.New("not a join token: it reads infrad-join.<64 hex digits>.<secret>, as the first node wrote it to its data directory's join-token")
	}
	return token{root: strings.ToLower(parts[1]), secret: parts[2]}, nil
}

func (t token) String() string { return tokenPrefix + "." + t.root + "." + t.secret }

// ensureToken makes the join token on a node that bootstraps the cluster, or reads it.
func (n *Node) ensureToken() (token, error) {
	path := filepath.Join(n.dataDir, JoinTokenFile)
	if data, err := os.ReadFile(path); err == nil {
		return parseToken(string(data))
	}
	secret := make([]byte, 24)
	if _, err := rand.Read(secret); err != nil {
		return token{}, err
	}
	t := token{root: pki.Fingerprint(n.id.Root), secret: base64.RawURLEncoding.EncodeToString(secret)}
	return t, os.WriteFile(path, []byte(t.String()+"\n"), 0o600)
}

// joinRequest and joinAnswer are the join's exchange.
type joinRequest struct {
	Node   string `json:"node"`
	Secret string `json:"secret"`
}

type joinAnswer struct {
	CA       map[string][]byte `json:"ca"`
	APIToken []byte            `json:"api_token"`
	Token    string            `json:"join_token"`
}

// Join makes a fresh node a member: it trades the token's secret with another node
// for the CA's keys and the API token, and writes them to the data directory. A store
// left from the node's life before (as a box of its own) is moved aside: the node's
// store is the cluster's log applied, from the start. Start then asks the leader to
// take the node as a voter.
func (n *Node) Join(ctx context.Context, raw string) error {
	if !n.Clustered() {
		return errors.New("the site file has no cluster: there is nothing to join")
	}
	t, err := parseToken(raw)
	if err != nil {
		return err
	}
	var errs []error
	for _, peer := range n.site.Cluster.Nodes {
		if peer.Name == n.self.Name {
			continue
		}
		answer, err := n.askToJoin(ctx, t, peer)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", peer.Name, err))
			continue
		}
		if err := pki.WriteKeyFiles(n.dataDir, answer.CA); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(n.dataDir, APITokenFile), answer.APIToken, 0o600); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(n.dataDir, JoinTokenFile), []byte(answer.Token+"\n"), 0o600); err != nil {
			return err
		}
		n.joinedVia = peer.Name
		n.log.Info("joined the cluster", "via", peer.Name)
		return nil
	}
	return fmt.Errorf("no node admitted this one: %w", errors.Join(errs...))
}

func (n *Node) askToJoin(ctx context.Context, t token, peer config.Node) (*joinAnswer, error) {
	pinned := &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // checked against the token's pin below
		NextProtos:         []string{protoHTTP},
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) < 2 {
				return errors.New("the node sent no root with its certificate")
			}
			root, err := x509.ParseCertificate(raw[len(raw)-1])
			if err != nil {
				return err
			}
			if got := pki.Fingerprint(root); subtle.ConstantTimeCompare([]byte(got), []byte(t.root)) != 1 {
				return fmt.Errorf("the node's CA is %s, not the token's %s: not this site", got, t.root)
			}
			_, err = pki.VerifyNode(root, raw)
			return err
		},
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: pinned}}
	defer client.CloseIdleConnections()
	body, _ := json.Marshal(joinRequest{Node: n.self.Name, Secret: t.secret})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+string(n.addressOf(peer))+"/cluster/v1/join", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, readError(resp)
	}
	var answer joinAnswer
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&answer); err != nil {
		return nil, fmt.Errorf("the join's answer: %w", err)
	}
	return &answer, nil
}

// serveJoin admits a node that knows the join token's secret.
func (n *Node) serveJoin(w http.ResponseWriter, r *http.Request) {
	var req joinRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "the body is not a join request")
		return
	}
	own, err := n.ensureToken()
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", "this node has no join token: "+err.Error())
		return
	}
	if subtle.ConstantTimeCompare([]byte(req.Secret), []byte(own.secret)) != 1 {
		n.log.Warn("a join was refused: wrong secret", "node", req.Node, "from", r.RemoteAddr)
		writeError(w, http.StatusForbidden, "forbidden", "the join token's secret is not this site's")
		return
	}
	if _, ok := n.site.Cluster.Node(req.Node); !ok || req.Node == n.self.Name {
		writeError(w, http.StatusBadRequest, "unknown_node", fmt.Sprintf("%q is not another node of cluster.nodes in this node's site file", req.Node))
		return
	}
	files, err := pki.ReadKeyFiles(n.dataDir)
	if err == nil {
		var apiToken []byte
		if apiToken, err = os.ReadFile(filepath.Join(n.dataDir, APITokenFile)); err == nil {
			n.log.Info("a node joined: it has the CA's keys", "node", req.Node, "from", r.RemoteAddr)
			writeJSON(w, http.StatusOK, joinAnswer{CA: files, APIToken: apiToken, Token: own.String()})
			return
		}
	}
	writeError(w, http.StatusInternalServerError, "internal", err.Error())
}

// becomeVoter asks the leader, until one agrees, to take this node as a voter, when
// the configuration it knows lacks it.
func (n *Node) becomeVoter() {
	defer n.wg.Done()
	for {
		if f := n.raft.GetConfiguration(); f.Error() == nil {
			for _, s := range f.Configuration().Servers {
				if s.ID == raft.ServerID(n.self.Name) {
					return
				}
			}
		}
		for _, peer := range n.site.Cluster.Nodes {
			if peer.Name == n.self.Name {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := n.call(ctx, http.MethodPost, n.addressOf(peer), "/cluster/v1/voters", nil, nil)
			cancel()
			if err == nil {
				n.log.Info("the leader took this node as a voter", "via", peer.Name)
				return
			}
		}
		select {
		case <-n.stop:
			return
		case <-time.After(time.Second):
		}
	}
}

// serveVoters takes the calling node as a voter.
func (n *Node) serveVoters(w http.ResponseWriter, r *http.Request) {
	name, _ := pki.VerifyNode(n.id.Root, rawCerts(r))
	peer, ok := n.site.Cluster.Node(name)
	if !ok {
		writeError(w, http.StatusBadRequest, "unknown_node", fmt.Sprintf("%q is not one of cluster.nodes in this node's site file", name))
		return
	}
	if n.raft.State() != raft.Leader {
		writeError(w, http.StatusServiceUnavailable, codeNotLeader, "this node is not the leader")
		return
	}
	if err := n.raft.AddVoter(raft.ServerID(peer.Name), n.addressOf(peer), 0, 10*time.Second).Error(); err != nil {
		writeError(w, http.StatusServiceUnavailable, codeNoQuorum, err.Error())
		return
	}
	n.log.Info("node taken as a voter", "node", peer.Name)
	w.WriteHeader(http.StatusNoContent)
}

// checkAlone refuses to bootstrap a cluster while another of its nodes answers: that
// node was bootstrapped already, and this one must join it.
func (n *Node) checkAlone() error {
	for _, peer := range n.site.Cluster.Nodes {
		if peer.Name == n.self.Name {
			continue
		}
		c, err := net.DialTimeout("tcp", string(n.addressOf(peer)), time.Second)
		if err == nil {
			c.Close()
			return fmt.Errorf("node %s answers at %s: the cluster exists, so this node joins it (infrad serve --node %s --join TOKEN, the token from %s's data directory)",
				peer.Name, n.addressOf(peer), n.self.Name, peer.Name)
		}
	}
	return nil
}

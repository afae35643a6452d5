package cluster

import (
	"bytes"
	"context"
	"crypto"
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
	"go.step.sm/crypto/keyutil"

	"github.com/infrad/infrad/pkg/config"
	"github.com/infrad/infrad/pkg/pki"
)

// Joining, kubeadm's way: the first node makes a join token, which pins the site
// CA's root (its SHA-256) and carries a secret. A new node given the token reaches
// another node's cluster port, checks that the node's certificate comes from the
// pinned root, and trades the secret for what every serving node holds alike: the
// CA's keys and the API token. From then on it has a node's certificate of its own,
// starts its Raft, and asks the leader to take it as a voter. A witness, which serves
// nothing, receives none of that: it sends its public key and gets back its node
// certificate, signed by the root, and the root's certificate (a CSR's way); it renews
// the certificate the same way, over the cluster port.

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
	// PublicKey is a witness's (PKIX, DER): it asks for a certificate, not the keys.
	PublicKey []byte `json:"public_key,omitempty"`
}

type joinAnswer struct {
	CA       map[string][]byte `json:"ca,omitempty"`
	APIToken []byte            `json:"api_token,omitempty"`
	Token    string            `json:"join_token,omitempty"`
	// A witness's: the root's certificate and its own (DER).
	Root        []byte `json:"root,omitempty"`
	Certificate []byte `json:"certificate,omitempty"`
}

// identity is this node's certificate: made from the site's root on a serving node;
// kept from its join, and renewed through a serving node, on a witness. A witness
// that joined with a build before that kept the CA's keys goes on with them, and says
// so.
func (n *Node) identity() (*pki.NodeIdentity, error) {
	if !n.self.Witness {
		return pki.NewNodeIdentity(n.dataDir, n.site.CA.Name, n.self.Name, n.self.Address)
	}
	if _, err := os.Stat(filepath.Join(pki.Dir(n.dataDir), "root.key")); err == nil {
		n.log.Warn("this witness holds the CA's keys, received when it joined with an earlier build: to drop them, stop it, empty its data directory and join it again")
		return pki.NewNodeIdentity(n.dataDir, n.site.CA.Name, n.self.Name, n.self.Address)
	}
	if n.fresh && !n.joined() {
		return nil, errors.New("a witness does not start a cluster: start a serving node first, then join the witness to it with --join")
	}
	id, err := pki.NewWitnessIdentity(n.dataDir, n.self.Name, n.self.Address)
	if err != nil {
		return nil, err
	}
	id.Renew = n.renewCertificate
	return id, nil
}

// renewCertificate has a serving node sign a new certificate for this witness's new
// key pub, asking each until one does.
func (n *Node) renewCertificate(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	body, _ := json.Marshal(renewRequest{PublicKey: der})
	var errs []error
	for _, peer := range n.site.Cluster.Serving() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var answer joinAnswer
		err := n.call(ctx, http.MethodPost, n.addressOf(peer), "/cluster/v1/certificate", body, &answer)
		cancel()
		if err == nil {
			n.log.Info("the witness's certificate was renewed", "by", peer.Name)
			return answer.Certificate, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", peer.Name, err))
	}
	err = fmt.Errorf("no serving node renewed the witness's certificate: %w", errors.Join(errs...))
	n.log.Warn("the witness's certificate is not renewed yet", "err", err)
	return nil, err
}

// renewRequest is a node's new public key (PKIX, DER), for its next certificate.
type renewRequest struct {
	PublicKey []byte `json:"public_key"`
}

// serveCertificate signs a new certificate for the calling node (a witness renewing
// its own; its current certificate names it).
func (n *Node) serveCertificate(w http.ResponseWriter, r *http.Request) {
	name, _ := pki.VerifyNode(n.id.Root, rawCerts(r))
	peer, ok := n.site.Cluster.Node(name)
	var req renewRequest
	if !ok || json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req) != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "not a renewal of a node of cluster.nodes")
		return
	}
	der, err := n.signFor(peer, req.PublicKey)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, joinAnswer{Root: n.id.Root.Raw, Certificate: der})
}

// signFor makes peer's node certificate for its public key (PKIX, DER).
func (n *Node) signFor(peer config.Node, public []byte) ([]byte, error) {
	pub, err := x509.ParsePKIXPublicKey(public)
	if err != nil {
		return nil, fmt.Errorf("the public key: %w", err)
	}
	return n.id.Sign(peer.Name, peer.Address, pub)
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
	req := joinRequest{Node: n.self.Name, Secret: t.secret}
	var key crypto.Signer // a witness's own
	if n.self.Witness {
		if key, err = keyutil.GenerateDefaultSigner(); err != nil {
			return err
		}
		if req.PublicKey, err = x509.MarshalPKIXPublicKey(key.Public()); err != nil {
			return err
		}
	}
	var errs []error
	for _, peer := range n.site.Cluster.Serving() {
		if peer.Name == n.self.Name {
			continue
		}
		answer, err := n.askToJoin(ctx, t, peer, req)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", peer.Name, err))
			continue
		}
		n.joinedVia = peer.Name
		if n.self.Witness {
			if err := checkWitnessAnswer(answer, t, n.self.Name); err != nil {
				return fmt.Errorf("%s answered with %w", peer.Name, err)
			}
			if err := pki.WriteWitnessFiles(n.dataDir, answer.Root, answer.Certificate, key); err != nil {
				return err
			}
			n.log.Info("joined the cluster as a witness: it holds its own certificate, no CA key and no API token", "via", peer.Name)
			return nil
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
		n.log.Info("joined the cluster", "via", peer.Name)
		return nil
	}
	return fmt.Errorf("no node admitted this one: %w", errors.Join(errs...))
}

// checkWitnessAnswer checks that a join's answer to a witness is the token's root and
// a certificate that root signed for the witness called name.
func checkWitnessAnswer(a *joinAnswer, t token, name string) error {
	root, err := x509.ParseCertificate(a.Root)
	if err != nil || pki.Fingerprint(root) != t.root {
		return fmt.Errorf("a root that is not the token's (%v)", err)
	}
	if got, err := pki.VerifyNode(root, [][]byte{a.Certificate}); err != nil || got != name {
		return fmt.Errorf("a certificate that is not this witness's (%q, %v)", got, err)
	}
	return nil
}

func (n *Node) askToJoin(ctx context.Context, t token, peer config.Node, req joinRequest) (*joinAnswer, error) {
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
	body, _ := json.Marshal(req)
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+string(n.addressOf(peer))+"/cluster/v1/join", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(hreq)
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

// serveJoin admits a node that knows the join token's secret: a serving node gets the
// CA's keys and the API token, a witness its certificate.
func (n *Node) serveJoin(w http.ResponseWriter, r *http.Request) {
	var req joinRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "the body is not a join request")
		return
	}
	if n.self.Witness {
		writeError(w, http.StatusConflict, "witness", "a witness admits no node: it holds neither the join token nor the CA's keys; join through a serving node")
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
	peer, ok := n.site.Cluster.Node(req.Node)
	if !ok || req.Node == n.self.Name {
		writeError(w, http.StatusBadRequest, "unknown_node", fmt.Sprintf("%q is not another node of cluster.nodes in this node's site file", req.Node))
		return
	}
	if peer.Witness {
		der, err := n.signFor(peer, req.PublicKey)
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", "a witness joins with its public key: "+err.Error())
			return
		}
		n.log.Info("a witness joined: it has its certificate, and no key of the CA's", "node", req.Node, "from", r.RemoteAddr)
		writeJSON(w, http.StatusOK, joinAnswer{Root: n.id.Root.Raw, Certificate: der})
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

package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/infrad/infrad/pkg/ipam"
)

// The nodes' HTTP on the cluster port: forwarded writes, each node's state, joining.

// Error codes between nodes.
const (
	codeNotLeader = "not_leader"
	codeNoQuorum  = "no_quorum"
)

var errNotLeader = errors.New("the node asked is no longer the leader")

func (n *Node) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /cluster/v1/join", n.serveJoin)
	mux.Handle("POST /cluster/v1/voters", nodesOnly(n.serveVoters))
	mux.Handle("DELETE /cluster/v1/voters/{name}", nodesOnly(n.serveRemove))
	mux.Handle("POST /cluster/v1/append", nodesOnly(n.serveAppend))
	mux.Handle("GET /cluster/v1/state", nodesOnly(n.serveState))
	mux.Handle("POST /cluster/v1/certificate", nodesOnly(n.serveCertificate))
	return mux
}

// nodesOnly admits requests of nodes: the TLS handshake checked their certificates.
func nodesOnly(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isNode(r.TLS) {
			writeError(w, http.StatusForbidden, "forbidden", "only the cluster's nodes may ask this")
			return
		}
		h(w, r)
	})
}

func rawCerts(r *http.Request) [][]byte {
	var raw [][]byte
	for _, c := range r.TLS.PeerCertificates {
		raw = append(raw, c.Raw)
	}
	return raw
}

// call sends a request to the node at addr and decodes its JSON answer into out.
func (n *Node) call(ctx context.Context, method string, addr raft.ServerAddress, path string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, "https://"+string(addr)+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := n.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return readError(resp)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

type remoteError struct {
	Status  int
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *remoteError) Error() string { return e.Message }

func readError(resp *http.Response) error {
	var body struct {
		Error remoteError `json:"error"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&body); err != nil || body.Error.Message == "" {
		return fmt.Errorf("the node answered %s", resp.Status)
	}
	body.Error.Status = resp.StatusCode
	return &body.Error
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// state is what a node says of itself to the others.
type state struct {
	Name    string `json:"name"`
	State   string `json:"state"` // Raft's: Leader, Follower, Candidate
	Leader  string `json:"leader"`
	Applied uint64 `json:"applied"`
	Serving bool   `json:"serving"` // not a witness
	// Vouched is the log index through which the node neither believes nor has told
	// a client that a lease ended early is held (settle.go); earlier builds send none.
	Vouched uint64 `json:"vouched"`
	// Commands are the command types the node's build can apply (ipam.CommandTypes);
	// earlier builds send none. A command that not every voter's build can apply is
	// not appended (Node.mayAppend).
	Commands []string `json:"commands,omitempty"`
	// Members are the nodes of Raft's configuration as the node knows it: a leader's
	// tells a node left out of it that it is no longer a member (Node.Evicted).
	Members []string `json:"members,omitempty"`
}

func (n *Node) ownState() state {
	_, leader := n.raft.LeaderWithID()
	return state{Name: n.Name(), State: n.raft.State().String(), Leader: string(leader), Applied: n.ipam.Applied(), Serving: !n.self.Witness,
		Vouched: n.vouched(), Commands: ipam.CommandTypes(), Members: n.members()}
}

// members are the nodes of Raft's latest configuration, as this node knows it.
func (n *Node) members() []string {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return nil
	}
	var out []string
	for _, s := range f.Configuration().Servers {
		out = append(out, string(s.ID))
	}
	return out
}

// heard notes what a probe heard from peer: a leader whose configuration leaves out
// this node, once a member, evicts it for good (removed, or left out of a recovery).
func (n *Node) heard(peer string, st state) {
	if slices.Contains(n.members(), n.Name()) {
		n.wasMember.Store(true)
	}
	if st.State != "Leader" || len(st.Members) == 0 || slices.Contains(st.Members, n.Name()) || !n.wasMember.Load() {
		return
	}
	why := fmt.Sprintf("this node is no longer a member of the cluster: the leader, %s, has a configuration without it (it was removed, or the cluster was recovered without it); it serves nothing its store holds. Start it again from an empty data directory with a join token to make it a member", peer)
	if n.evicted.CompareAndSwap(nil, &why) {
		n.log.Error(why)
	}
}

// Evicted says why this node is no longer a member of its cluster, or "": its store
// falls behind for good, so DNS and DHCP serve nothing from it and /readyz says so.
func (n *Node) Evicted() string {
	if why := n.evicted.Load(); why != nil {
		return *why
	}
	return ""
}

// everyVoterApplies says whether every node of Raft's configuration (the witness
// too: it applies the log) has said its build can apply commands of type typ, as
// Consul's and Nomad's autopilot gate a feature on every server's version. A node
// not heard from since this one started has said nothing.
func (n *Node) everyVoterApplies(typ string) bool {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	for _, s := range f.Configuration().Servers {
		if string(s.ID) == n.Name() {
			continue
		}
		seen, _ := n.seen(string(s.ID))
		if !slices.Contains(seen.state.Commands, typ) {
			return false
		}
	}
	return true
}

func (n *Node) serveState(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, n.ownState())
}

// peerTable is what the probes last heard from each other node.
type peerTable struct {
	mu   sync.Mutex
	seen map[string]peerSeen
	// share is DHCPShare's answer, mine<<32 | of, worked out at most every
	// reshareEvery (at shareAt, Unix nanoseconds) rather than for each packet, by one
	// caller at a time (resharing) while the others take the last answer.
	share     atomic.Uint64
	shareAt   atomic.Int64
	resharing sync.Mutex
}

// reshareEvery is how stale DHCPShare's answer may be: a node seen last liveFor ago
// is down within this of that (working it out for every packet, under the peers'
// lock, cost a fifteenth of a follower's CPU in a storm).
const reshareEvery = 100 * time.Millisecond

type peerSeen struct {
	at    time.Time // the last answer
	state state
	err   string // the last probe's failure, when it failed
}

// probeEvery is how often a node asks each other node for its state; liveFor is how
// long an answer counts: a node unheard for longer is down, and its DHCP clients
// are shared among the others.
const (
	probeEvery = time.Second
	liveFor    = 3 * time.Second
)

func (n *Node) probe() {
	defer n.wg.Done()
	t := time.NewTicker(probeEvery)
	defer t.Stop()
	for {
		var wg sync.WaitGroup
		for _, peer := range n.site.Cluster.Nodes {
			if peer.Name == n.self.Name {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), probeEvery)
				defer cancel()
				var st state
				err := n.call(ctx, http.MethodGet, n.addressOf(peer), "/cluster/v1/state", nil, &st)
				n.peers.mu.Lock()
				defer n.peers.mu.Unlock()
				if n.peers.seen == nil {
					n.peers.seen = map[string]peerSeen{}
				}
				seen := n.peers.seen[peer.Name]
				if err != nil {
					seen.err = err.Error()
				} else {
					seen = peerSeen{at: time.Now(), state: st}
				}
				n.peers.seen[peer.Name] = seen
				if err == nil {
					n.heard(peer.Name, st)
				}
			}()
		}
		wg.Wait()
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
	}
}

// seen is what the probes last heard from the node called name, and whether it is
// up: it answered within liveFor.
func (n *Node) seen(name string) (s peerSeen, up bool) {
	n.peers.mu.Lock()
	defer n.peers.mu.Unlock()
	s = n.peers.seen[name]
	return s, !s.at.IsZero() && time.Since(s.at) < liveFor
}

// DHCPShare says which share of the DHCP clients this node answers: clients are
// split by a hash of their identifier among the serving nodes that are up, ordered
// by name (RFC 3074's load balancing); this node answers bucket mine of of. One box
// answers every client.
func (n *Node) DHCPShare() (mine, of int) {
	if !n.Clustered() {
		return 0, 1
	}
	if time.Since(time.Unix(0, n.peers.shareAt.Load())) > reshareEvery && n.peers.resharing.TryLock() {
		n.reshare()
		n.peers.resharing.Unlock()
	}
	s := n.peers.share.Load()
	return int(int32(s >> 32)), int(uint32(s))
}

// reshare works out DHCPShare's answer from what the probes heard.
func (n *Node) reshare() {
	var live []string
	for _, node := range n.site.Cluster.Serving() {
		if node.Name == n.self.Name {
			live = append(live, node.Name)
		} else if _, up := n.seen(node.Name); up {
			live = append(live, node.Name)
		}
	}
	slices.Sort(live)
	mine := slices.Index(live, n.self.Name)
	n.peers.share.Store(uint64(uint32(mine))<<32 | uint64(len(live)))
	n.peers.shareAt.Store(time.Now().UnixNano())
}

package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/hashicorp/raft"

	"github.com/infrad/infrad/pkg/ipam"
	"github.com/infrad/infrad/pkg/store"
)

// Status is the cluster as one node sees it.
type Status struct {
	Node   string `json:"node"`   // the node answering
	Leader string `json:"leader"` // "" while there is none this node knows
	Quorum bool   `json:"quorum"` // this node takes writes
	// DHCPServers is how many nodes the model counts as answering DHCP
	// (ipam.SetDHCPServers): while more than one, a lease ended early holds its
	// address until every serving node vouches for the end (settle.go).
	DHCPServers int `json:"dhcp_servers"`
	// LeaseGrants says leases keep the index of their grant (ipam.TrackGrants), by
	// which a RELEASE names the lease it ends.
	LeaseGrants bool `json:"lease_grants"`
	// Behind says this node has not yet caught up with the cluster's log since it
	// started (CaughtUp): its DHCP offers nothing, its DNS answers its zones SERVFAIL.
	Behind bool `json:"behind,omitempty"`
	// Evicted says why this node is no longer a member of the cluster, if it is not.
	Evicted string       `json:"evicted,omitempty"`
	Nodes   []NodeStatus `json:"nodes"`
}

// NodeStatus is one node of the cluster.
type NodeStatus struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	Witness bool   `json:"witness"`
	Voter   bool   `json:"voter"` // in the Raft configuration
	// State is leader, follower or candidate as the node said it, or unreachable.
	State string `json:"state"`
	// LastContact is when this node last heard from it (itself: now).
	LastContact *time.Time `json:"last_contact,omitempty"`
	Applied     uint64     `json:"applied"` // the index of the last log entry it applied
	Lag         uint64     `json:"lag"`     // entries behind the most advanced node
	Error       string     `json:"error,omitempty"`
}

// Status is the cluster's nodes, roles, leader, last contact and lag, as this node
// knows them.
func (n *Node) Status() Status {
	own := n.ownState()
	shape := n.ipam.Model().Shape()
	st := Status{Node: own.Name, Leader: own.Leader, Quorum: n.Quorum(), DHCPServers: shape.DHCPServers, LeaseGrants: shape.Grants,
		Behind: !n.CaughtUp(), Evicted: n.Evicted()}
	voters := map[string]bool{}
	if f := n.raft.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			voters[string(s.ID)] = s.Suffrage == raft.Voter
		}
	}
	now := time.Now()
	if !n.Clustered() {
		st.Nodes = []NodeStatus{{Name: own.Name, Voter: true, State: lower(own.State), LastContact: &now, Applied: own.Applied}}
		return st
	}
	var most uint64
	for _, node := range n.site.Cluster.Nodes {
		ns := NodeStatus{Name: node.Name, Address: node.Address.String(), Witness: node.Witness, Voter: voters[node.Name]}
		if node.Name == n.self.Name {
			ns.State, ns.LastContact, ns.Applied = lower(own.State), &now, own.Applied
		} else {
			seen, up := n.seen(node.Name)
			if !seen.at.IsZero() {
				at := seen.at
				ns.LastContact = &at
			}
			ns.State, ns.Applied = lower(seen.state.State), seen.state.Applied
			if !up {
				ns.State, ns.Error = "unreachable", seen.err
			}
		}
		most = max(most, ns.Applied)
		st.Nodes = append(st.Nodes, ns)
	}
	for i := range st.Nodes {
		st.Nodes[i].Lag = most - st.Nodes[i].Applied
	}
	return st
}

func lower(s string) string {
	switch s {
	case "Leader":
		return "leader"
	case "Follower":
		return "follower"
	case "Candidate":
		return "candidate"
	case "Shutdown":
		return "stopped"
	}
	return s
}

// Remove takes the node called name out of the cluster's voters, through the leader.
func (n *Node) Remove(ctx context.Context, name string) error {
	if !n.Clustered() {
		return fmt.Errorf("the site runs on one box")
	}
	if _, ok := n.site.Cluster.Node(name); !ok {
		return fmt.Errorf("%q is not one of cluster.nodes", name)
	}
	if n.raft.State() == raft.Leader {
		return n.raft.RemoveServer(raft.ServerID(name), 0, 10*time.Second).Error()
	}
	leader, err := n.leader(ctx)
	if err != nil {
		return err
	}
	return n.call(ctx, http.MethodDelete, leader, "/cluster/v1/voters/"+name, nil, nil)
}

func (n *Node) serveRemove(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if n.raft.State() != raft.Leader {
		writeError(w, http.StatusServiceUnavailable, codeNotLeader, "this node is not the leader")
		return
	}
	if err := n.raft.RemoveServer(raft.ServerID(name), 0, 10*time.Second).Error(); err != nil {
		writeError(w, http.StatusServiceUnavailable, codeNoQuorum, err.Error())
		return
	}
	n.log.Info("node removed from the voters", "node", name)
	w.WriteHeader(http.StatusNoContent)
}

// Recover makes this node the cluster's only voter, from what its own log and store
// hold: Raft's manual recovery, for a cluster that has lost its quorum for good. It
// runs while the node is stopped; started again, the node leads a cluster of one,
// and the others join it anew, each from an empty data directory.
func (n *Node) Recover(st *store.Store, m *ipam.IPAM) error {
	if !n.Clustered() {
		return errors.New("the site runs on one box: there is no cluster to recover")
	}
	if n.fresh {
		return errors.New("this node has no Raft state: it was never a member, so there is nothing to recover from")
	}
	n.store, n.ipam = st, m
	addr := raft.ServerAddress(n.advertise())
	_, trans := raft.NewInmemTransport(addr)
	conf := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: raft.ServerID(n.Name()), Address: addr}}}
	if err := raft.RecoverCluster(n.raftConfig(), &fsm{node: n}, n.logs, n.logs, n.snaps, trans, conf); err != nil {
		return fmt.Errorf("recover the cluster: %w", err)
	}
	n.log.Warn("cluster recovered: this node is its only voter; the others join it again from empty data directories", "node", n.Name(), "applied", m.Applied())
	return nil
}

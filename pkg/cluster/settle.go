package cluster

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/infrad/infrad/pkg/ipam"
)

// The DHCP failover protocol's rule (the ISC draft's MCLT), carried over to the log:
// an address whose lease ended early (a RELEASE, an admin's delete) goes to another
// client only when no box can still believe it leased, and no client can have been
// told so by a box. A box cut off from the others renews, from its last model, the
// leases it holds, up to their committed expiry; so the write path quarantines the
// address of a lease ended early (ipam.Lease.Released) until that expiry, and the
// leader gives it back sooner, with ipam.SettleEnds, through the least index every
// serving node vouches for: a node vouches for what it has applied, except that
// while a lease it renewed without the quorum lasts, it vouches for no more than it
// had applied when it read the model it renewed from (having applied an end later
// does not take back what its client was told). A node vouches for nothing past what
// it had applied at its start until a lease time has passed: renewals made before a
// restart are not remembered. What the others vouch for is what the probes last
// heard (it only grows, so an old answer errs on the safe side); a node never heard
// from vouches for nothing. docs/cluster.md has the proof sketch.

// promises is what this node vouches for while leases it renewed without the quorum
// last.
type promises struct {
	mu    sync.Mutex
	index uint64    // the least applied index a live promise was made from
	until time.Time // when the last of them ends
}

// Promised records that this node renewed a lease without the quorum until until,
// from a model that held at least the entries through index (read before the model).
func (n *Node) Promised(index uint64, until time.Time) {
	n.promises.mu.Lock()
	defer n.promises.mu.Unlock()
	if time.Now().After(n.promises.until) {
		n.promises.index = index
	}
	n.promises.index = min(n.promises.index, index)
	if until.After(n.promises.until) {
		n.promises.until = until
	}
}

// vouched is the log index through which this node vouches that it neither believes
// nor has told a client that a lease ended at or before it is held.
func (n *Node) vouched() uint64 {
	applied := n.ipam.Applied()
	n.promises.mu.Lock()
	defer n.promises.mu.Unlock()
	if time.Now().Before(n.promises.until) {
		return min(applied, n.promises.index)
	}
	return applied
}

// settle makes the leader tell the model how many nodes answer DHCP, once every
// voter's build can take it (until then a lease ended early frees its address at
// once, as the builds before did), and settle the ended leases every serving node
// vouches for.
func (n *Node) settle() {
	defer n.wg.Done()
	tick := time.NewTicker(probeEvery)
	defer tick.Stop()
	var last uint64 // the last Through this node proposed
	for {
		select {
		case <-n.stop:
			return
		case <-tick.C:
		}
		if n.raft.State() != raft.Leader {
			continue
		}
		m := n.ipam.Model()
		if servers := len(n.site.Cluster.Serving()); m.Shape().DHCPServers != servers && n.everyVoterApplies(ipam.CommandType(ipam.SetDHCPServers{})) {
			if _, err := n.applyNow(ipam.SetDHCPServers{Stamp: ipam.Stamp{At: time.Now()}, Servers: servers}); err != nil {
				n.log.Warn("the count of DHCP servers not stored", "servers", servers, "err", err)
			}
		}
		if m.Released() == 0 || !n.everyVoterApplies(ipam.CommandType(ipam.SettleEnds{})) {
			continue
		}
		through := n.vouchedEverywhere()
		if through <= last {
			continue
		}
		freed, err := n.applyNow(ipam.SettleEnds{Stamp: ipam.Stamp{At: time.Now()}, Through: through})
		if err != nil {
			n.log.Warn("released addresses not settled", "through", through, "err", err)
			continue
		}
		last = through
		if k, _ := freed.(int); k > 0 {
			n.log.Debug("released addresses back in the pool: every serving node vouches for their release", "addresses", k, "through", through)
		}
	}
}

// applyNow applies cmd, waiting at most appliedWait.
func (n *Node) applyNow(cmd ipam.Command) (any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), appliedWait)
	defer cancel()
	return n.Apply(ctx, cmd)
}

// vouchedEverywhere is the highest log index every serving node vouches for, as far
// as this node knows.
func (n *Node) vouchedEverywhere() uint64 {
	through := n.vouched()
	for _, node := range n.site.Cluster.Serving() {
		if node.Name == n.self.Name {
			continue
		}
		seen, _ := n.seen(node.Name)
		through = min(through, seen.state.Vouched)
	}
	return through
}

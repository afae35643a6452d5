package cluster

import (
	"context"
	"time"

	"github.com/hashicorp/raft"

	"github.com/infrad/infrad/pkg/ipam"
)

// The DHCP failover protocol's rule (the ISC draft's MCLT), carried over to the log:
// an address whose lease ended early (a RELEASE, an admin's delete) goes to another
// client only when no box can still believe it leased. A box cut off from the others
// renews, from its last model, the leases it holds, up to their committed expiry; so
// the write path quarantines the address of a lease ended early (ipam.Lease.Released)
// until that expiry, and the leader gives it back sooner, with ipam.SettleEnds, once
// every serving node has applied the end: a node that has applied it no longer
// believes the lease held. The nodes' applied indexes are what the probes last heard
// (each only grows, so an old answer errs on the safe side); a node never heard from
// counts as having applied nothing.

// settle makes the leader settle the ended leases every serving node has applied.
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
		if n.raft.State() != raft.Leader || n.ipam.Model().Released() == 0 {
			continue
		}
		through := n.appliedEverywhere()
		if through <= last {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), appliedWait)
		freed, err := n.Apply(ctx, ipam.SettleEnds{Stamp: ipam.Stamp{At: time.Now()}, Through: through})
		cancel()
		if err != nil {
			n.log.Warn("released addresses not settled", "through", through, "err", err)
			continue
		}
		last = through
		if k, _ := freed.(int); k > 0 {
			n.log.Debug("released addresses back in the pool: every serving node has applied their release", "addresses", k, "through", through)
		}
	}
}

// appliedEverywhere is the highest log index every serving node has applied, as far
// as this node knows.
func (n *Node) appliedEverywhere() uint64 {
	through := n.ipam.Applied()
	for _, node := range n.site.Cluster.Serving() {
		if node.Name == n.self.Name {
			continue
		}
		seen, _ := n.seen(node.Name)
		through = min(through, seen.state.Applied)
	}
	return through
}

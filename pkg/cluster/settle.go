package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
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
// does not take back what its client was told). The promises are kept in the data
// directory before the client is answered, so that a restart forgets none. What the
// others vouch for is what the probes last heard (it only grows, so an old answer
// errs on the safe side); a node never heard from vouches for nothing.
// docs/cluster.md has the proof sketch.

// promises is what this node vouches for while leases it renewed without the quorum
// last; PromisesFile keeps it.
type promises struct {
	mu    sync.Mutex
	Index uint64    `json:"index"` // the least applied index a live promise was made from
	Until time.Time `json:"until"` // when the last of them ends
}

// PromisesFile is where a node keeps its promises (promises), in its data directory.
const PromisesFile = "dhcp-promises.json"

// Promised records that this node renewed a lease without the quorum until until,
// from a model that held at least the entries through index (read before the model),
// and keeps the record in the data directory before it returns: the client is
// answered after. A record that cannot be kept is an error, and the client is not
// answered.
func (n *Node) Promised(index uint64, until time.Time) error {
	n.promises.mu.Lock()
	defer n.promises.mu.Unlock()
	p := promises{Index: n.promises.Index, Until: n.promises.Until}
	if time.Now().After(p.Until) {
		p.Index = index
	}
	p.Index = min(p.Index, index)
	if until.After(p.Until) {
		p.Until = until
	}
	if p.Index == n.promises.Index && p.Until.Equal(n.promises.Until) {
		return nil
	}
	if n.dataDir != "" {
		if err := writeSynced(filepath.Join(n.dataDir, PromisesFile), &p); err != nil {
			return fmt.Errorf("keep the renewal's promise: %w", err)
		}
	}
	n.promises.Index, n.promises.Until = p.Index, p.Until
	return nil
}

// readPromises takes up the promises a run before this one kept.
func (n *Node) readPromises() error {
	raw, err := os.ReadFile(filepath.Join(n.dataDir, PromisesFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var p promises
	if err := json.Unmarshal(raw, &p); err != nil {
		return fmt.Errorf("%s: %w", PromisesFile, err)
	}
	n.promises.Index, n.promises.Until = p.Index, p.Until
	return nil
}

// writeSynced writes v as JSON to path, through a file synced and renamed over it.
func writeSynced(path string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(raw); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// vouched is the log index through which this node vouches that it neither believes
// nor has told a client that a lease ended at or before it is held.
func (n *Node) vouched() uint64 {
	applied := n.ipam.Applied()
	n.promises.mu.Lock()
	defer n.promises.mu.Unlock()
	if time.Now().Before(n.promises.Until) {
		return min(applied, n.promises.Index)
	}
	return applied
}

// settle makes the leader tell the model how many nodes answer DHCP and turn on the
// tracking of lease grants, each once every voter's build can take it (until then a
// lease ended early frees its address at once, and a RELEASE tells its lease by its
// expiry, as the builds before did), and settle the ended leases every serving node
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
		if servers := len(n.site.Cluster.Serving()); m.Shape().DHCPServers != servers && n.mayAppend(ipam.CommandType(ipam.SetDHCPServers{})) {
			if _, err := n.applyNow(ipam.SetDHCPServers{Stamp: ipam.Stamp{At: time.Now()}, Servers: servers}); err != nil {
				n.log.Warn("the count of DHCP servers not stored", "servers", servers, "err", err)
			}
		}
		if !m.Shape().Grants && n.mayAppend(ipam.CommandType(ipam.TrackGrants{})) {
			if _, err := n.applyNow(ipam.TrackGrants{Stamp: ipam.Stamp{At: time.Now()}}); err != nil {
				n.log.Warn("the tracking of lease grants not turned on", "err", err)
			}
		}
		if m.Released() == 0 || !n.mayAppend(ipam.CommandType(ipam.SettleEnds{})) {
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

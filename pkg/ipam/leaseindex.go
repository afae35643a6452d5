package ipam

import (
	"bytes"
	"net/netip"

	"github.com/google/btree"
	"github.com/infrad/infrad/pkg/site"
)

// leaseIndexes are the model's indexes of leases: B-trees with google/btree's lazy
// copy-on-write. A lease commit is the hot write (a boot storm's REQUESTs), so these
// indexes are not copied per change like the model's other maps: the writer keeps its
// own trees, changes them in place during a batch (copying a node the first time the
// batch touches it, so a hundred leases in one part of a range copy a path once), and
// publishes a clone of them after the commit. Neither the published clone nor the
// writer's trees own a node then, so the next batch copies what it changes and never
// writes a node a reader holds.
type leaseIndexes struct {
	byIP     *btree.BTreeG[keyed[netip.Addr]] // every lease, declined ones too
	byMAC    *btree.BTreeG[keyed[site.MAC]]   // the active (not quarantined) DHCPv4 lease of each client
	byClient *btree.BTreeG[keyed[string]]     // the active DHCPv6 lease of each client (Lease.Client)
	byName   *btree.BTreeG[keyed[string]]     // the DHCPv4 lease of each hostname
	byName6  *btree.BTreeG[keyed[string]]     // the DHCPv6 lease of each hostname
}

// keyed is one entry of a lease index. The key is held by value, so comparisons
// read no lease.
type keyed[K any] struct {
	key   K
	lease *Lease
}

// leaseDegree is the B-trees' degree: nodes of 15 to 31 entries, about 1 KB of the
// by-address tree's, copied whole when a batch first changes them.
const leaseDegree = 16

func newLeaseIndexes() leaseIndexes {
	byString := func(a, b keyed[string]) bool { return a.key < b.key }
	return leaseIndexes{
		byIP:     btree.NewG(leaseDegree, func(a, b keyed[netip.Addr]) bool { return a.key.Less(b.key) }),
		byMAC:    btree.NewG(leaseDegree, func(a, b keyed[site.MAC]) bool { return bytes.Compare(a.key[:], b.key[:]) < 0 }),
		byClient: btree.NewG(leaseDegree, byString),
		byName:   btree.NewG(leaseDegree, byString),
		byName6:  btree.NewG(leaseDegree, byString),
	}
}

// names is the index of the hostnames of the leases of a's family.
func (x leaseIndexes) names(a netip.Addr) *btree.BTreeG[keyed[string]] {
	if a.Is6() {
		return x.byName6
	}
	return x.byName
}

// clone returns indexes with x's entries that share x's nodes; afterwards neither x
// nor the clone owns those nodes, so a change to either copies what it changes.
func (x leaseIndexes) clone() leaseIndexes {
	return leaseIndexes{x.byIP.Clone(), x.byMAC.Clone(), x.byClient.Clone(), x.byName.Clone(), x.byName6.Clone()}
}

func get[K any](t *btree.BTreeG[keyed[K]], k K) (*Lease, bool) {
	e, ok := t.Get(keyed[K]{key: k})
	return e.lease, ok
}

// leaseLog is what the writer's changes to its lease indexes replaced, in order, so
// that a refused command or a failed commit puts them back (the model's other maps
// are persistent, and undone by keeping the model before). An entry without a lease
// is a key that was absent.
type leaseLog struct {
	byIP     []keyed[netip.Addr]
	byMAC    []keyed[site.MAC]
	byClient []keyed[string]
	byName   []keyed[string]
	byName6  []keyed[string]
}

// logMark is a point in a leaseLog to rewind to.
type logMark struct{ byIP, byMAC, byClient, byName, byName6 int }

func (g *leaseLog) mark() logMark {
	return logMark{len(g.byIP), len(g.byMAC), len(g.byClient), len(g.byName), len(g.byName6)}
}

// names is the log of the index x.names(a).
func (g *leaseLog) names(a netip.Addr) *[]keyed[string] {
	if a.Is6() {
		return &g.byName6
	}
	return &g.byName
}

// rewind undoes every change x made since mark.
func (x leaseIndexes) rewind(g *leaseLog, mark logMark) {
	rewind(x.byIP, &g.byIP, mark.byIP)
	rewind(x.byMAC, &g.byMAC, mark.byMAC)
	rewind(x.byClient, &g.byClient, mark.byClient)
	rewind(x.byName, &g.byName, mark.byName)
	rewind(x.byName6, &g.byName6, mark.byName6)
}

// set puts l under k in t, logging what it replaced.
func set[K any](t *btree.BTreeG[keyed[K]], log *[]keyed[K], k K, l *Lease) {
	prev, had := t.ReplaceOrInsert(keyed[K]{k, l})
	if !had {
		prev = keyed[K]{key: k}
	}
	*log = append(*log, prev)
}

// unset takes k out of t, logging what it held.
func unset[K any](t *btree.BTreeG[keyed[K]], log *[]keyed[K], k K) {
	if prev, had := t.Delete(keyed[K]{key: k}); had {
		*log = append(*log, prev)
	}
}

func rewind[K any](t *btree.BTreeG[keyed[K]], log *[]keyed[K], to int) {
	for i := len(*log) - 1; i >= to; i-- {
		if e := (*log)[i]; e.lease == nil {
			t.Delete(e)
		} else {
			t.ReplaceOrInsert(e)
		}
	}
	*log = (*log)[:to]
}

package ipam

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/benbjohnson/immutable"
	"github.com/miekg/dns"

	"github.com/infrad/infrad/pkg/site"
	"github.com/infrad/infrad/pkg/store"
)

// txn is the write path's working state while a batch of commands applies: the next
// model, made from the last one change by change, and the store keys those changes
// touched. Commands change the site only through its methods, which keep every index
// of the model true and mark what the commit must write: the store's writes follow
// from the model, so the two cannot disagree.
type txn struct {
	tx       *store.Tx // the transaction the batch writes in
	wrote    bool      // a command wrote to tx directly (the CA's tables)
	rowNotes RowNotes  // nil: the tables' rows are not noted
	m        *Model    // the working model: a private copy until it is published
	ends     *endings  // the writer's index of when leases end
	at       time.Time
	index    uint64 // the log index of the command applying now (0: none)
	dirty    map[dirtyKey]bool
	fresh    []dirtyKey // keys first marked by the command applying now
	dns      bool       // the command applying now changed what DNS answers
	saved    Model      // the model before the command applying now
	log      leaseLog   // what the batch's changes to the lease indexes replaced
	since    logMark    // where in log the command applying now began

	serial0   uint32    // the serial before the batch
	signedAt0 time.Time // the signing time before the batch
	shape0    *Shape    // the shape before the batch

	// The change log's view of the command applying now (nil touched: not kept, as
	// when a model is loaded): the objects it touched, in order, the leases as they
	// were, and what else it changed; and the batch's entries.
	touched      map[dirtyKey]bool
	order        []dirtyKey
	leasesBefore map[netip.Addr]*Lease
	extra        []ObjectChange
	entries      []ChangeEntry
}

type dirtyKey struct {
	bucket store.Bucket
	key    string
}

// newTxn starts a batch on last, with the writer's own lease indexes: leases, whose
// entries are last's.
func newTxn(last *Model, leases leaseIndexes, ends *endings) *txn {
	m := *last
	m.leases = leases
	return &txn{m: &m, ends: ends, dirty: map[dirtyKey]bool{}, serial0: last.serial, signedAt0: last.signedAt, shape0: last.shape,
		touched: map[dirtyKey]bool{}, leasesBefore: map[netip.Addr]*Lease{}}
}

// begin starts the command at the log's index, made at time at.
func (t *txn) begin(at time.Time, index uint64) {
	t.saved = *t.m
	t.since = t.log.mark()
	t.at, t.index, t.fresh, t.dns = at, index, t.fresh[:0], false
	clear(t.touched)
	clear(t.leasesBefore)
	t.order, t.extra = t.order[:0], nil
}

// undo puts back the model and the marks as they were before the command began.
func (t *txn) undo() {
	*t.m = t.saved
	t.m.leases.rewind(&t.log, t.since)
	for _, k := range t.fresh {
		delete(t.dirty, k)
	}
	t.fresh = t.fresh[:0]
	t.dns = false
}

// end finishes cmd, applied: a change DNS answers from raises the serial, and what
// it changed goes to the change log.
func (t *txn) end(cmd Command) {
	if t.dns {
		t.m.serial = nextSerial(t.m.serial, t.at)
	}
	t.logChange(cmd)
}

// nextSerial is the time in seconds, or one more than prev if that is not newer
// (RFC 1982): a serial that rises with every change, and across restarts.
func nextSerial(prev uint32, at time.Time) uint32 {
	serial := uint32(at.Unix())
	if serial == prev || serial-prev >= 1<<31 {
		serial = prev + 1
	}
	return serial
}

func (t *txn) mark(b store.Bucket, key string) {
	k := dirtyKey{b, key}
	t.touch(k)
	if !t.dirty[k] {
		t.dirty[k] = true
		t.fresh = append(t.fresh, k)
	}
}

// count adds delta to name and every name above it in the DNS names index.
func (t *txn) count(name site.Name, delta int) {
	for n := name; ; n = parentName(n) {
		c, _ := t.m.names.Get(n)
		if c += delta; c > 0 {
			t.m.names = t.m.names.Set(n, c)
		} else {
			t.m.names = t.m.names.Delete(n)
		}
		if n == "." || n == "" {
			return
		}
	}
}

// parentName strips the first label: "a.b.c." is "b.c.", "c." is ".".
func parentName(n site.Name) site.Name {
	i := strings.IndexByte(string(n), '.')
	if i < 0 || i == len(n)-1 {
		return "."
	}
	return n[i+1:]
}

// putHost adds h, or replaces the host of its name. A lease with h's name loses it:
// the host keeps its name against a lease. (A deleted host's lease stays until it
// ends: the machine may still use the address.)
func (t *txn) putHost(h site.Host) {
	if old, ok := t.m.hosts.Get(h.Name); ok {
		t.unindexHost(old)
		// The lease of the old reservation goes with it.
		if l, ok := t.m.Lease(old.IP); ok && l.MAC == old.MAC && !l.Quarantined() && (old.IP != h.IP || old.MAC != h.MAC) {
			t.deleteLease(old.IP)
		}
	}
	t.unnameLeases(h.Name)
	t.m.hosts = t.m.hosts.Set(h.Name, h)
	for _, a := range h.Addrs() {
		t.m.hostByIP = t.m.hostByIP.Set(a, h.Name)
		t.count(site.ReverseName(a), 1)
	}
	if !h.MAC.IsZero() {
		t.m.hostByMAC = t.m.hostByMAC.Set(h.MAC, h.Name)
	}
	if h.DUID != "" {
		t.m.hostByDUID = t.m.hostByDUID.Set(h.DUID, h.Name)
	}
	t.count(t.m.FQDN(h.Name), 1)
	t.mark(store.BucketHosts, h.Name)
	t.dns = true
}

// setHostState puts h in place of its host, from which it differs in nothing an
// index or a zone reads (its Booted): the serial stays, as the zones do.
func (t *txn) setHostState(h site.Host) {
	t.m.hosts = t.m.hosts.Set(h.Name, h)
	t.mark(store.BucketHosts, h.Name)
}

func (t *txn) deleteHost(name string) {
	old, ok := t.m.hosts.Get(name)
	if !ok {
		return
	}
	t.unindexHost(old)
	t.m.hosts = t.m.hosts.Delete(name)
	t.mark(store.BucketHosts, name)
	t.dns = true
}

func (t *txn) unindexHost(h site.Host) {
	for _, a := range h.Addrs() {
		if n, _ := t.m.hostByIP.Get(a); n == h.Name {
			t.m.hostByIP = t.m.hostByIP.Delete(a)
		}
		t.count(site.ReverseName(a), -1)
	}
	if n, _ := t.m.hostByMAC.Get(h.MAC); !h.MAC.IsZero() && n == h.Name {
		t.m.hostByMAC = t.m.hostByMAC.Delete(h.MAC)
	}
	if n, _ := t.m.hostByDUID.Get(h.DUID); h.DUID != "" && n == h.Name {
		t.m.hostByDUID = t.m.hostByDUID.Delete(h.DUID)
	}
	t.count(t.m.FQDN(h.Name), -1)
}

// putRecord adds r, or replaces the record with its ID (whose name is the same). A
// lease with r's name, or with the address whose PTR r would be, loses its name.
func (t *txn) putRecord(r site.Record) error {
	ttl := uint32(site.DefaultTTL)
	if r.TTL != nil {
		ttl = *r.TTL
	}
	rr, err := dns.NewRR(fmt.Sprintf("%s %d IN %s %s", r.Name, ttl, r.Type, r.Value))
	if err != nil || rr == nil {
		return invalid("value", fmt.Sprintf("%s %s %q cannot be served: %v", r.Name, r.Type, r.Value, err))
	}
	t.takeLeaseName(r.Name, true, r.Type == "PTR" || r.Type == "CNAME")
	id := r.ID()
	if _, ok := t.m.records.Get(id); !ok {
		ids, _ := t.m.recordsAt.Get(r.Name)
		t.m.recordsAt = t.m.recordsAt.Set(r.Name, append(slices.Clip(ids), id))
		t.count(r.Name, 1)
	}
	t.m.records = t.m.records.Set(id, r)
	t.m.rrs = t.m.rrs.Set(id, rr)
	t.mark(store.BucketRecords, id)
	t.dns = true
	return nil
}

func (t *txn) deleteRecord(id string) {
	r, ok := t.m.records.Get(id)
	if !ok {
		return
	}
	ids, _ := t.m.recordsAt.Get(r.Name)
	if ids = slices.DeleteFunc(slices.Clone(ids), func(s string) bool { return s == id }); len(ids) > 0 {
		t.m.recordsAt = t.m.recordsAt.Set(r.Name, ids)
	} else {
		t.m.recordsAt = t.m.recordsAt.Delete(r.Name)
	}
	t.count(r.Name, -1)
	t.m.records = t.m.records.Delete(id)
	t.m.rrs = t.m.rrs.Delete(id)
	t.mark(store.BucketRecords, id)
	t.dns = true
}

// putLease writes l at its address, in place of any lease there. A renewal that
// keeps its hostname leaves DNS as it was: no serial raised, no NOTIFY.
func (t *txn) putLease(l Lease) {
	old, had := get(t.m.leases.byIP, l.IP)
	t.touchLease(l.IP, old)
	named := !had || old.Hostname != l.Hostname // DNS changes
	if had {
		t.unindexLease(*old, named)
	}
	if l.Released != 0 {
		t.m.released++
	}
	x := t.m.leases
	set(x.byIP, &t.log.byIP, l.IP, &l)
	switch {
	case l.Quarantined():
	case l.IP.Is6():
		set(x.byClient, &t.log.byClient, l.Client, &l)
	default:
		set(x.byMAC, &t.log.byMAC, l.MAC, &l)
	}
	if l.Hostname != "" {
		set(x.names(l.IP), t.log.names(l.IP), l.Hostname, &l)
	}
	if l.Hostname != "" && named {
		t.count(t.m.FQDN(l.Hostname), 1)
		t.count(site.ReverseName(l.IP), 1)
		t.dns = true
	}
	t.ends.add(l)
	t.mark(store.BucketLeases, l.IP.String())
}

func (t *txn) deleteLease(ip netip.Addr) {
	old, ok := get(t.m.leases.byIP, ip)
	if !ok {
		return
	}
	t.touchLease(ip, old)
	t.unindexLease(*old, true)
	unset(t.m.leases.byIP, &t.log.byIP, ip)
	t.mark(store.BucketLeases, ip.String())
}

// unindexLease takes l out of the indexes: its name too when unname.
func (t *txn) unindexLease(l Lease, unname bool) {
	if l.Released != 0 {
		t.m.released--
	}
	x := t.m.leases
	switch {
	case l.Quarantined():
	case l.IP.Is6():
		if c, _ := get(x.byClient, l.Client); c != nil && c.IP == l.IP {
			unset(x.byClient, &t.log.byClient, l.Client)
		}
	default:
		if c, _ := get(x.byMAC, l.MAC); c != nil && c.IP == l.IP {
			unset(x.byMAC, &t.log.byMAC, l.MAC)
		}
	}
	if l.Hostname != "" && unname {
		if c, _ := get(x.names(l.IP), l.Hostname); c != nil && c.IP == l.IP {
			unset(x.names(l.IP), t.log.names(l.IP), l.Hostname)
		}
		t.count(t.m.FQDN(l.Hostname), -1)
		t.count(site.ReverseName(l.IP), -1)
		t.dns = true
	}
}

// setShape replaces the domain, zones and subnets, marking the subnets that changed.
// A new domain renames every host and named lease in DNS: the names index is remade.
func (t *txn) setShape(sh *Shape) {
	old := t.m.shape
	slices.SortFunc(sh.Subnets, func(a, b site.Subnet) int { return strings.Compare(a.Name, b.Name) })
	for _, sn := range old.Subnets {
		if n, ok := (&Model{shape: sh}).Subnet(sn.Name); !ok || !sameJSON(n, sn) {
			t.mark(store.BucketSubnets, sn.Name)
		}
	}
	for _, sn := range sh.Subnets {
		if _, ok := (&Model{shape: old}).Subnet(sn.Name); !ok {
			t.mark(store.BucketSubnets, sn.Name)
		}
	}
	t.m.shape = sh.index()
	t.dns = true
	if sh.Domain != old.Domain {
		t.m.names = namesOf(t.m)
	}
}

// namesOf counts every owner name of m from scratch (at load, and when the domain
// changes), in a plain map first: a persistent map built key by key would copy a path
// for each of the millions of counts a big site makes.
func namesOf(m *Model) *immutable.Map[site.Name, int] {
	counts := map[site.Name]int{}
	count := func(n site.Name) {
		for ; ; n = parentName(n) {
			counts[n]++
			if n == "." || n == "" {
				return
			}
		}
	}
	for it := m.hosts.Iterator(); !it.Done(); {
		_, h, _ := it.Next()
		count(m.FQDN(h.Name))
		count(site.ReverseName(h.IP))
		if h.IP6.IsValid() {
			count(site.ReverseName(h.IP6))
		}
	}
	m.leases.byIP.Ascend(func(e keyed[netip.Addr]) bool {
		if l := e.lease; l.Hostname != "" {
			count(m.FQDN(l.Hostname))
			count(site.ReverseName(l.IP))
		}
		return true
	})
	for it := m.records.Iterator(); !it.Done(); {
		_, r, _ := it.Next()
		count(r.Name)
	}
	b := immutable.NewMapBuilder[site.Name, int](nameHasher{})
	for n, c := range counts {
		b.Set(n, c)
	}
	return b.Map()
}

// flush writes every marked object as the model has it (or deletes it, when the model
// no longer has it), and the serial, in tx.
func (t *txn) flush(tx *store.Tx) error {
	for k := range t.dirty {
		v, ok := objectIn(t.m, k)
		var err error
		if ok {
			err = store.Put(tx, k.bucket, k.key, v)
		} else {
			err = store.Delete(tx, k.bucket, k.key)
		}
		if err != nil {
			return err
		}
	}
	if t.m.shape != t.shape0 {
		sh := t.m.shape
		if err := store.Put(tx, store.BucketState, stateZones, zones{Domain: sh.Domain, Zones: sh.Zones, Source: sh.Source, Digest: sh.Digest, Changes: sh.Changes, DNS: sh.DNS, DHCPServers: sh.DHCPServers, Grants: sh.Grants, Boot: sh.Boot}); err != nil {
			return err
		}
	}
	if err := t.writeChanges(tx); err != nil {
		return err
	}
	if !t.m.signedAt.Equal(t.signedAt0) {
		if err := store.Put(tx, store.BucketState, stateSignedAt, t.m.signedAt); err != nil {
			return err
		}
	}
	if t.m.serial == t.serial0 {
		return nil
	}
	return store.Put(tx, store.BucketState, stateSerial, t.m.serial)
}

// zones is the part of the shape kept in the state bucket (the subnets have their own
// bucket): a model loaded from the store is the model that wrote it, so a box that
// replays the log after a restart decides as the others did.
type zones struct {
	Domain site.Name   `json:"domain"`
	Zones  []site.Name `json:"zones"` // nil and empty as they were: Reconcile compares them
	Source string      `json:"source"`
	Digest string      `json:"digest,omitempty"`
	// Changes is how long and how large the change log grows.
	Changes site.ChangeLimits `json:"changes,omitzero"`
	DNS     site.ZoneSettings `json:"dns,omitzero"`
	// DHCPServers is Shape.DHCPServers.
	DHCPServers int `json:"dhcp_servers,omitempty"`
	// Grants is Shape.Grants.
	Grants bool `json:"grants,omitempty"`
	// Boot is Shape.Boot.
	Boot []string `json:"boot,omitempty"`
}

package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/benbjohnson/immutable"

	"github.com/infrad/infrad/pkg/ipam/writer"
	"github.com/infrad/infrad/pkg/site"
	"github.com/infrad/infrad/pkg/store"
)

// The keys of the state bucket: the zones' serial, and the index of the last log
// entry applied.
const (
	stateSerial   = "serial"
	stateSignedAt = "signed_at"
	stateApplied  = "applied"
	stateZones    = "zones"
)

// errNoChange ends a transaction whose commands all were refused or changed nothing.
var errNoChange = errors.New("no change")

// commit applies batch in one transaction and publishes the model it makes, before
// the writer answers any of its commands. A command that fails after it wrote (an
// abortError) takes the transaction with it, so then the others are committed again
// one by one: each command's outcome depends on the commands before it, never on
// which of them shared its transaction. Only an error of the store itself comes back.
func (m *IPAM) commit(batch []*writer.Entry[Command]) error {
	last := m.model.Load()
	t := newTxn(last, m.leases, m.ends)
	t.rowNotes = m.rowNotes
	aborted := false
	err := m.store.Update(func(tx *store.Tx) error {
		t.tx = tx
		for _, e := range batch {
			t.begin(e.Cmd.time(), e.Index)
			if e.Result, e.Err = apply(t, e.Cmd); e.Err != nil {
				var failed *abortError
				if errors.As(e.Err, &failed) {
					aborted = true
					return failed.err // the transaction has a half-made write: none of the batch commits
				}
				t.undo()
				continue
			}
			t.end(e.Cmd)
		}
		applied := writer.LastIndex(batch)
		if len(t.dirty) == 0 && !t.wrote && t.m.serial == t.serial0 && t.m.shape == t.shape0 {
			return errNoChange // (a change of the model alone, its zones, raises the serial; a replay of what changed nothing changes nothing)
		}
		if applied != 0 {
			if err := store.Put(tx, store.BucketState, stateApplied, applied); err != nil {
				return err
			}
		}
		return t.flush(tx)
	})
	switch {
	case errors.Is(err, errNoChange):
		m.leases.rewind(&t.log, logMark{})
		err = nil
	case aborted && len(batch) > 1:
		m.leases.rewind(&t.log, logMark{})
		m.ends = endingsOf(last)
		for _, e := range batch {
			if err := m.commit([]*writer.Entry[Command]{e}); err != nil {
				return err
			}
		}
		return nil
	case err != nil:
		for _, e := range batch {
			if e.Err == nil {
				e.Result, e.Err = nil, fmt.Errorf("write to the store: %w", err)
			}
		}
		m.leases.rewind(&t.log, logMark{})
		m.ends = endingsOf(last) // the batch's expiries were taken out for nothing
		if aborted {
			err = nil // the command's own failure, the same on every box
		}
	default:
		t.m.leases = m.leases.clone()
		m.publish(t.m)
	}
	return err
}

// abortError is a command that failed after it wrote to the transaction: the whole
// batch rolls back.
type abortError struct{ err error }

func (e *abortError) Error() string { return e.err.Error() }
func (e *abortError) Unwrap() error { return e.err }

func abort(err error) error { return &abortError{err} }

// apply runs one command, turning a panic into an error so that one bad command
// cannot take the write path down.
func apply(t *txn, cmd Command) (result any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("ipam: %T panicked: %v", cmd, r)
		}
	}()
	return cmd.apply(t)
}

// load reads every object of the store into a model, with the index of the last log
// entry the store holds.
func load(st *store.Store) (*Model, uint64, error) {
	m := emptyModel()
	var applied uint64
	t := &txn{m: m, dirty: map[dirtyKey]bool{}}
	err := st.View(func(tx *store.Tx) error {
		subnets, err := store.All[site.Subnet](tx, store.BucketSubnets)
		if err != nil {
			return err
		}
		z, _, err := store.Get[zones](tx, store.BucketState, stateZones)
		if err != nil {
			return err
		}
		m.shape = (&Shape{Domain: z.Domain, Zones: z.Zones, Source: z.Source, Subnets: subnets, Digest: z.Digest, Changes: z.Changes, DNS: z.DNS, DHCPServers: z.DHCPServers, Grants: z.Grants, Boot: z.Boot}).index()
		hosts := immutable.NewSortedMapBuilder[string, site.Host](stringComparer{})
		byIP := immutable.NewSortedMapBuilder[netip.Addr, string](addrComparer{})
		byMAC := immutable.NewMapBuilder[site.MAC, string](macHasher{})
		byDUID := immutable.NewMapBuilder[string, string](stringHasher{})
		all, err := store.All[site.Host](tx, store.BucketHosts)
		if err != nil {
			return err
		}
		for _, h := range all {
			hosts.Set(h.Name, h)
			for _, a := range h.Addrs() {
				byIP.Set(a, h.Name)
			}
			if !h.MAC.IsZero() {
				byMAC.Set(h.MAC, h.Name)
			}
			if h.DUID != "" {
				byDUID.Set(h.DUID, h.Name)
			}
		}
		m.hosts, m.hostByIP, m.hostByMAC, m.hostByDUID = hosts.Map(), byIP.Map(), byMAC.Map(), byDUID.Map()
		records, err := store.All[site.Record](tx, store.BucketRecords)
		if err != nil {
			return err
		}
		for _, r := range records {
			if err := t.putRecord(r); err != nil {
				return fmt.Errorf("load record %s: %w", r.ID(), err)
			}
		}
		stored, err := store.All[Lease](tx, store.BucketLeases)
		if err != nil {
			return err
		}
		x := m.leases
		for _, l := range stored {
			x.byIP.ReplaceOrInsert(keyed[netip.Addr]{l.IP, &l})
			if l.Released != 0 {
				m.released++
			}
			switch {
			case l.Quarantined():
			case l.IP.Is6():
				x.byClient.ReplaceOrInsert(keyed[string]{l.Client, &l})
			default:
				x.byMAC.ReplaceOrInsert(keyed[site.MAC]{l.MAC, &l})
			}
			if l.Hostname != "" {
				x.names(l.IP).ReplaceOrInsert(keyed[string]{l.Hostname, &l})
			}
		}
		tokens, err := store.All[Token](tx, store.BucketTokens)
		if err != nil {
			return err
		}
		for _, tok := range tokens {
			t.putToken(tok)
		}
		serial, _, err := store.Get[uint32](tx, store.BucketState, stateSerial)
		m.serial = serial
		if err != nil {
			return err
		}
		if m.signedAt, _, err = store.Get[time.Time](tx, store.BucketState, stateSignedAt); err != nil {
			return err
		}
		applied, _, err = store.Get[uint64](tx, store.BucketState, stateApplied)
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("load the site from the store: %w", err)
	}
	m.names = namesOf(m)
	return m, applied, nil
}

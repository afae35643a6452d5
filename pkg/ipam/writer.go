package ipam

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/benbjohnson/immutable"

	"github.com/infrad/infrad/pkg/site"
	"github.com/infrad/infrad/pkg/store"
)

// IPAM is the site's one write path and its published model. Every change is a
// Command, and every command goes through the log (Log: the cluster's Raft log, of
// one box or several), which orders them; the log's applier hands each entry back
// (Submit), and one goroutine, the writer, applies them in that order, each checked
// against the working model and written in the same bbolt transaction, and publishes
// the new model before any of them is acknowledged. Entries that arrive while a
// transaction commits share the next one (group commit), each still checked against
// everything before it. The log (raft-wal) is what is made durable before an
// acknowledgement; the store, its state machine, commits to the page cache and is
// synced when a snapshot is taken (store.Options.NoSync).
type IPAM struct {
	store    *store.Store
	now      func() time.Time
	log      Log // non-nil: what orders the commands
	rowNotes RowNotes

	applied atomic.Uint64 // the index of the last log entry applied
	// enqueued is the index of the last log entry handed to the writer; only the
	// log's applier (Submit's caller) touches it.
	enqueued uint64

	model  atomic.Pointer[Model]
	leases leaseIndexes // the writer's alone: its lease indexes, changed in place, with the published model's entries
	ends   *endings     // the writer's alone
	queue  chan *pending
	quit   chan struct{}
	done   chan struct{}

	mu      sync.Mutex
	changed chan struct{} // closed when a newer model is published
	history []*Model      // the last models of distinct serials, oldest first, for IXFR
}

// historyLen is how many serials back an IXFR can be answered with differences.
// The models share their unchanged structure, so each costs what its changes did.
const historyLen = 64

// Options configure New.
type Options struct {
	Store *store.Store     // non-nil
	Now   func() time.Time // nil: time.Now; the time commands are stamped with
	// Log orders the commands (non-nil): Apply appends them to it, and its applier
	// hands each back to Submit, on every box alike.
	Log Log
	// RowNotes, when set, says what the change log records of the rows of the
	// tables IPAM stores for others (the CA's).
	RowNotes RowNotes
}

// maxBatch bounds how many commands share one transaction.
const maxBatch = 128

// The keys of the state bucket: the zones' serial, and the index of the last log
// entry applied.
const (
	stateSerial   = "serial"
	stateSignedAt = "signed_at"
	stateApplied  = "applied"
	stateZones    = "zones"
)

// New loads the model from the store and starts the writer; Close stops it.
func New(opts Options) (*IPAM, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		return nil, errors.New("ipam: no log to order the commands")
	}
	m := &IPAM{store: opts.Store, now: opts.Now, log: opts.Log, rowNotes: opts.RowNotes, queue: make(chan *pending, maxBatch),
		quit: make(chan struct{}), done: make(chan struct{}), changed: make(chan struct{})}
	if err := m.reload(); err != nil {
		return nil, err
	}
	go m.write()
	return m, nil
}

// reload makes the model from the store and publishes it.
func (m *IPAM) reload() error {
	model, applied, err := load(m.store)
	if err != nil {
		return err
	}
	m.leases = model.leases.clone()
	m.ends = endingsOf(model)
	m.applied.Store(applied)
	m.enqueued = applied
	m.mu.Lock()
	m.history = []*Model{model}
	m.mu.Unlock()
	m.model.Store(model)
	m.mu.Lock()
	close(m.changed)
	m.changed = make(chan struct{})
	m.mu.Unlock()
	return nil
}

// Close stops the writer once the entries already queued are applied. An entry
// submitted after it is answered ErrClosed.
func (m *IPAM) Close() {
	select {
	case <-m.quit:
	default:
		close(m.quit)
	}
	<-m.done
}

// Model is the last published model.
func (m *IPAM) Model() *Model { return m.model.Load() }

// Watch returns the last published model and a channel closed once a newer one is.
func (m *IPAM) Watch() (*Model, <-chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.model.Load(), m.changed
}

// AtSerial returns the last published model whose zones' serial was serial, if it is
// among the last historyLen serials: what a secondary at serial holds.
func (m *IPAM) AtSerial(serial uint32) (*Model, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := len(m.history) - 1; i >= 0; i-- {
		if m.history[i].serial == serial {
			return m.history[i], true
		}
	}
	return nil, false
}

// ErrClosed is the outcome of an entry submitted once the IPAM is closed.
var ErrClosed = errors.New("ipam: the write path is closed")

// pending is a command on its way through the writer: the log's entry at index.
type pending struct {
	cmd    Command
	index  uint64 // its log entry's index (0: none, as Flush's barrier)
	queued time.Time
	result any
	err    error
	done   func(result any, err error) // nil: no one waits
}

// finish tells whoever waits on p its outcome.
func (p *pending) finish() {
	if p.done != nil {
		p.done(p.result, p.err)
	}
}

// Apply applies cmd through the log and returns once this box has applied it and
// published the model it made, or refused it: a refusal is an *Error (or a
// *ReconcileError, a *PrereqError) and changes nothing. A log that cannot take it says
// so (ErrNoQuorum).
func (m *IPAM) Apply(ctx context.Context, cmd Command) (any, error) {
	return m.log.Apply(ctx, cmd)
}

func (m *IPAM) write() {
	defer close(m.done)
	batch := make([]*pending, 0, maxBatch)
	busy := false // the last batch had company: more are coming
	for {
		select {
		case p := <-m.queue:
			batch = append(batch[:0], p)
		case <-m.quit:
			for {
				select {
				case p := <-m.queue:
					m.commit([]*pending{p})
				default:
					return
				}
			}
		}
		batch = m.gather(batch, busy)
		busy = len(batch) > 1
		if err := m.commit(batch); err != nil {
			// The store no longer follows the log; a restart replays the log from
			// the last entry the store holds.
			panic(fmt.Sprintf("infrad: the store failed to apply the cluster's log: %v", err))
		}
	}
}

// batchDelay is how long a busy writer lets a command wait for company before it
// commits: a commit costs about as much CPU for one command as for a hundred, so under
// load (a boot storm's REQUESTs) waiting a little lets the commits keep up. An idle
// writer commits a lone command at once. (bbolt's Batch has the same window.)
const batchDelay = 2 * time.Millisecond

// gather adds to batch what is queued and, when busy, what comes until the first
// command of the batch has waited batchDelay (those that came during the last commit
// have waited already).
func (m *IPAM) gather(batch []*pending, busy bool) []*pending {
	var window <-chan time.Time
	if wait := time.Until(batch[0].queued.Add(batchDelay)); busy && wait > 0 {
		timer := time.NewTimer(wait)
		defer timer.Stop()
		window = timer.C
	}
	for len(batch) < maxBatch {
		select {
		case p := <-m.queue:
			batch = append(batch, p)
			continue
		default:
		}
		if window == nil {
			return batch
		}
		select {
		case p := <-m.queue:
			batch = append(batch, p)
		case <-window:
			return batch
		}
	}
	return batch
}

// errNoChange ends a transaction whose commands all were refused or changed nothing.
var errNoChange = errors.New("no change")

// commit applies batch in one transaction, publishes the model it makes, and only
// then answers each command. A command that fails after it wrote (an abortError)
// takes the transaction with it, so then the others are committed again one by one:
// each command's outcome depends on the commands before it, never on which of them
// shared its transaction. Only an error of the store itself comes back.
func (m *IPAM) commit(batch []*pending) error {
	last := m.model.Load()
	t := newTxn(last, m.leases, m.ends)
	t.rowNotes = m.rowNotes
	aborted := false
	err := m.store.Update(func(tx *store.Tx) error {
		t.tx = tx
		for _, p := range batch {
			t.begin(p.cmd.time(), p.index)
			if p.result, p.err = apply(t, p.cmd); p.err != nil {
				var failed *abortError
				if errors.As(p.err, &failed) {
					aborted = true
					return failed.err // the transaction has a half-made write: none of the batch commits
				}
				t.undo()
				continue
			}
			t.end(p.cmd)
		}
		applied := lastIndex(batch)
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
		for _, p := range batch {
			if err := m.commit([]*pending{p}); err != nil {
				return err
			}
		}
		return nil
	case err != nil:
		for _, p := range batch {
			if p.err == nil {
				p.result, p.err = nil, fmt.Errorf("write to the store: %w", err)
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
	if i := lastIndex(batch); i != 0 && err == nil {
		m.applied.Store(i)
	}
	for _, p := range batch {
		p.finish()
	}
	return err
}

// lastIndex is the log index of the batch's last logged command (0: none).
func lastIndex(batch []*pending) uint64 {
	var i uint64
	for _, p := range batch {
		i = max(i, p.index)
	}
	return i
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

func (m *IPAM) publish(model *Model) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.model.Store(model)
	if last := m.history[len(m.history)-1]; last.serial != model.serial {
		m.history = append(m.history, model)
		if len(m.history) > historyLen {
			m.history = slices.Delete(m.history, 0, len(m.history)-historyLen)
		}
	} else {
		m.history[len(m.history)-1] = model // the same serial: DNS answers as before
	}
	close(m.changed)
	m.changed = make(chan struct{})
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
		m.shape = (&Shape{Domain: z.Domain, Zones: z.Zones, Source: z.Source, Subnets: subnets, Digest: z.Digest, Changes: z.Changes, DNS: z.DNS, DHCPServers: z.DHCPServers, Grants: z.Grants}).index()
		hosts := immutable.NewSortedMapBuilder[string, site.Host](stringComparer{})
		byIP := immutable.NewSortedMapBuilder[netip.Addr, string](addrComparer{})
		byMAC := immutable.NewMapBuilder[site.MAC, string](macHasher{})
		all, err := store.All[site.Host](tx, store.BucketHosts)
		if err != nil {
			return err
		}
		for _, h := range all {
			hosts.Set(h.Name, h)
			byIP.Set(h.IP, h.Name)
			if !h.MAC.IsZero() {
				byMAC.Set(h.MAC, h.Name)
			}
		}
		m.hosts, m.hostByIP, m.hostByMAC = hosts.Map(), byIP.Map(), byMAC.Map()
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
			if !l.Quarantined() {
				x.byMAC.ReplaceOrInsert(keyed[site.MAC]{l.MAC, &l})
			}
			if l.Hostname != "" {
				x.byName.ReplaceOrInsert(keyed[string]{l.Hostname, &l})
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

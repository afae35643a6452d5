// Package ipam owns the site's state: subnets with their ranges, hosts, DNS records,
// DHCP leases (and the CA's tables, which it only stores), the commands that change
// them, each checked and written in one bbolt transaction, and the immutable model
// published after each commit, which DNS, DHCP and the API read. It is the log's
// deterministic state machine: the same commands on the same store make the same site
// on every box. The objects and their rules are pkg/site's; the goroutine that runs
// the log's entries, in order and in batches, is pkg/ipam/writer's.
//
// The same rules apply whether an object comes from the site file or from the API:
// both are checked with site.Set.Problems, the API's changes on their neighbourhood.
package ipam

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/infrad/infrad/pkg/ipam/writer"
	"github.com/infrad/infrad/pkg/store"
)

// IPAM is the site's state machine and its published model. Every change is a
// Command, and every command goes through the log (Log: the cluster's Raft log, of
// one box or several), which orders them; the log's applier hands each entry back
// (Submit), and the writer (pkg/ipam/writer) commits them in that order, as many to a
// transaction as come together (group commit), each checked against the working
// model and everything before it, and publishes the new model before any of them is
// acknowledged. The log (raft-wal) is what is made durable before an
// acknowledgement; the store commits to the page cache and is synced when a snapshot
// is taken (store.Options.NoSync).
type IPAM struct {
	store    *store.Store
	now      func() time.Time
	log      Log // non-nil: what orders the commands
	rowNotes RowNotes
	writer   *writer.Writer[Command]

	model  atomic.Pointer[Model]
	leases leaseIndexes // the writer's alone: its lease indexes, changed in place, with the published model's entries
	ends   *endings     // the writer's alone

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

// New loads the model from the store and starts the writer; Close stops it.
func New(opts Options) (*IPAM, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		return nil, errors.New("ipam: no log to order the commands")
	}
	m := &IPAM{store: opts.Store, now: opts.Now, log: opts.Log, rowNotes: opts.RowNotes, changed: make(chan struct{})}
	applied, err := m.reload()
	if err != nil {
		return nil, err
	}
	m.writer = writer.New(m.commit, applied)
	return m, nil
}

// reload makes the model from the store and publishes it; it returns the index of
// the last log entry the store holds.
func (m *IPAM) reload() (applied uint64, err error) {
	model, applied, err := load(m.store)
	if err != nil {
		return 0, err
	}
	m.leases = model.leases.clone()
	m.ends = endingsOf(model)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.history = []*Model{model}
	m.model.Store(model)
	close(m.changed)
	m.changed = make(chan struct{})
	return applied, nil
}

// Close stops the writer once the entries already queued are applied. An entry
// submitted after it is answered writer.ErrClosed.
func (m *IPAM) Close() { m.writer.Close() }

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

// Apply applies cmd through the log and returns once this box has applied it and
// published the model it made, or refused it: a refusal is an *Error (or a
// *ReconcileError, a *PrereqError) and changes nothing. A log that cannot take it says
// so (ErrNoQuorum).
func (m *IPAM) Apply(ctx context.Context, cmd Command) (any, error) {
	return m.log.Apply(ctx, cmd)
}

// publish makes model the one readers get, and keeps it for IXFR.
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

package ipam

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/infrad/infrad/pkg/store"
)

// The commands reach the store through a log (pkg/cluster's Raft log: a cluster's
// boxes agree on one order of commands, and one box is a cluster of one). Apply on any
// box appends the command to the log and answers once this box has applied it, so
// that a client reads its own write from the box it wrote to. The log's applier hands
// each entry back in the log's order (Submit): the same commands on the same store
// make the same site on every box. How an entry is written, who waits on it and what
// a box does with an entry it cannot read are the log's (pkg/cluster); this file is the
// state machine's side.

// Log is the cluster's log of commands, as the write path uses it.
type Log interface {
	// Apply appends cmd to the log and returns its outcome once this box has applied
	// it (its applier handed it to Submit). When the log cannot take it, the command
	// may or may not be committed; an error that is ErrNoQuorum says no box can commit
	// anything now.
	Apply(ctx context.Context, cmd Command) (any, error)
}

// ErrNoQuorum is the log's refusal while this box cannot reach a majority of the
// cluster's voters: the write is not made, and the box keeps answering from what it has.
var ErrNoQuorum = errors.New("no quorum")

// ErrNotEveryBuild is the log's refusal of a command of a type that not every node's
// build has said it applies: appended, it would stop the nodes that cannot read it.
var ErrNotEveryBuild = errors.New("not every node of the cluster runs a build that applies it yet")

// Submit hands the writer the log's entry at index, whose command is cmd (nil: an
// entry this build passes over, which changes nothing). Entries come in the log's
// order, from one goroutine (the log's applier), and the writer applies them in that
// order, as many to a transaction as come together, recording in each transaction the
// index of its last entry. An entry the store holds already (a log replayed after a
// restart) is passed over. done, when not nil, is called from the writer with the
// command's outcome once it is applied and the model published; it must not block.
func (m *IPAM) Submit(index uint64, cmd Command, done func(result any, err error)) {
	if cmd == nil {
		cmd = passedOver{}
	}
	m.writer.Submit(index, cmd, done)
}

// Flush returns once the writer has applied everything handed to it.
func (m *IPAM) Flush() { m.writer.Flush() }

// passedOver stands for an entry the log's applier passes over (a skippable entry of
// a newer build, which this one cannot read): it changes nothing, on every box of this
// build alike.
type passedOver struct{}

func (passedOver) apply(*txn) (any, error) {
	return nil, errors.New("a command of the log this infrad cannot read (upgrade it)")
}
func (passedOver) time() time.Time { return time.Time{} }
func (passedOver) source() string  { return "" }

// Applied is the index of the last log entry this box applied.
func (m *IPAM) Applied() uint64 { return m.writer.Applied() }

// Restore replaces the store with the stream of a snapshot and publishes its model.
// It is for the log's applier, between two Submit calls.
func (m *IPAM) Restore(snapshot io.Reader) error {
	m.Flush()
	if err := m.store.Restore(snapshot); err != nil {
		return err
	}
	applied, err := m.reload()
	if err != nil {
		return err
	}
	m.writer.Reset(applied)
	return nil
}

// ResetApplied forgets the index of the last entry applied: the store's entries
// belonged to a log that is no more (a box's first start with a log, a store restored
// from a backup with its log removed), and a new log begins.
func (m *IPAM) ResetApplied() error {
	if m.Applied() == 0 {
		return nil
	}
	err := m.store.Update(func(tx *store.Tx) error { return store.Put(tx, store.BucketState, stateApplied, uint64(0)) })
	if err == nil {
		m.writer.Reset(0)
	}
	return err
}

// SaveApplied records the index of the last entry applied in the store, where a
// batch that changed nothing left an older one: a snapshot taken next says exactly
// which entry it follows. For the log's applier, after Flush.
func (m *IPAM) SaveApplied() error {
	return m.store.Update(func(tx *store.Tx) error {
		return store.Put(tx, store.BucketState, stateApplied, m.Applied())
	})
}

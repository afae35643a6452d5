package ipam

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/infrad/infrad/pkg/store"
)

// A cluster's boxes agree on one order of commands, its log (Raft's), and each box
// applies the log to its own store: the same commands on the same store make the same
// site. Apply on any box appends the command to the log and answers once this box has
// applied it, so that a client reads its own write from the box it wrote to.

// Log is the cluster's log of commands, as the write path uses it.
type Log interface {
	// Append returns once entry is committed to the log, to be applied on every box.
	// When it fails, the entry may or may not be committed; an error that is
	// ErrNoQuorum says no box can commit anything now.
	Append(ctx context.Context, entry []byte) error
}

// ErrNoQuorum is the log's refusal while this box cannot reach a majority of the
// cluster's voters: the write is not made, and the box keeps answering from what it has.
var ErrNoQuorum = errors.New("no quorum")

// LogEntry is one entry of the log, handed back for ApplyLogged.
type LogEntry struct {
	Index uint64
	Data  []byte
}

// entry is a command as the log holds it, with who appended it, so that the box that
// did can answer its caller when it applies it. Skippable says a build that cannot
// read the command may pass over it (no command of this build is); any other entry
// it cannot read stops it (ApplyLogged).
type entry struct {
	Origin    string `json:"origin"`
	Seq       uint64 `json:"seq"`
	Skippable bool   `json:"skippable,omitempty"`
	envelope
}

// appliedWait bounds how long Apply waits, after the log took a command, for this box
// to apply it, when the caller set no deadline.
const appliedWait = 10 * time.Second

func (m *IPAM) applyLogged(ctx context.Context, cmd Command) (any, error) {
	var body []byte
	var err error
	if a, ok := cmd.(store.JSONAppender); ok {
		body, err = a.AppendJSON(nil)
	} else {
		body, err = json.Marshal(cmd)
	}
	if err != nil {
		return nil, err
	}
	seq := m.seq.Add(1)
	// The entry as json.Marshal(entry{...}) writes it, without a second pass over body.
	data := append(m.entryPrefix(seq), fmt.Sprintf(`"type":%q,"command":`, typeName(cmd))...)
	data = append(append(data, body...), '}')
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, appliedWait)
		defer cancel()
	}
	p := &pending{cmd: cmd, done: make(chan struct{})}
	m.mu.Lock()
	m.waiting[seq] = p
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.waiting, seq)
		m.mu.Unlock()
	}()
	if err := m.log.Append(ctx, data); err != nil {
		return nil, err
	}
	select {
	case <-p.done:
		return p.result, p.err
	case <-ctx.Done():
		return nil, fmt.Errorf("the cluster took the change, and this box has not applied it yet: %w", ctx.Err())
	}
}

// entryPrefix is how this box's entries begin: its origin and their sequence number.
func (m *IPAM) entryPrefix(seq uint64) []byte {
	return fmt.Appendf(make([]byte, 0, 256), `{"origin":%q,"seq":%d,`, m.origin, seq)
}

// ownSeq is the sequence number of data when this box appended it.
func (m *IPAM) ownSeq(data []byte) (uint64, bool) {
	prefix := m.entryPrefix(0)
	head := prefix[:len(prefix)-len(`0,`)] // {"origin":"<origin>","seq":
	if !bytes.HasPrefix(data, head) {
		return 0, false
	}
	rest := data[len(head):]
	end := bytes.IndexByte(rest, ',')
	if end < 0 {
		return 0, false
	}
	seq, err := strconv.ParseUint(string(rest[:end]), 10, 64)
	return seq, err == nil
}

// ApplyLogged hands entries, which follow each other in the log, to the writer, which
// applies them in that order, as many to a transaction as come together, and records
// in each transaction the index of its last entry. It returns once they are queued:
// the node that appended an entry answers its caller when the writer has applied it,
// and Flush waits for everything queued. Entries the store already has (a log
// replayed after a restart) are skipped. A failure of the store stops the process:
// the store would no longer follow the log.
func (m *IPAM) ApplyLogged(entries []LogEntry) {
	for _, e := range entries {
		if e.Index <= m.enqueued {
			continue
		}
		m.enqueued = e.Index
		now := time.Now()
		// This box's own entry: its caller waits with the command, undecoded.
		if seq, ok := m.ownSeq(e.Data); ok {
			m.mu.Lock()
			w, ok := m.waiting[seq]
			m.mu.Unlock()
			if ok {
				w.index, w.queued = e.Index, now
				m.queue <- w
				continue
			}
		}
		var en entry
		p := &pending{index: e.Index, queued: now, done: make(chan struct{})}
		err := json.Unmarshal(e.Data, &en)
		if err == nil {
			p.cmd, err = decodeEnvelope(en.envelope)
		}
		if err != nil && !en.Skippable {
			// Applying what follows without it would leave this box's store other
			// than the others', silently: stop, with the store at the entry before.
			m.Flush()
			panic(fmt.Sprintf("infrad: entry %d of the cluster's log is a command this build cannot apply (%v): upgrade infrad on this node; its store stays at entry %d", e.Index, err, m.Applied()))
		}
		if err != nil {
			p.cmd = undecodable{err}
		}
		m.queue <- p
	}
}

// Flush returns once the writer has applied everything handed to it.
func (m *IPAM) Flush() {
	p := &pending{cmd: barrier{}, queued: time.Now(), done: make(chan struct{})}
	select {
	case m.queue <- p:
		<-p.done
	case <-m.done:
	}
}

// barrier changes nothing: Flush waits for it.
type barrier struct{}

func (barrier) apply(*txn) (any, error) { return nil, nil }
func (barrier) time() time.Time         { return time.Time{} }
func (barrier) source() string          { return "" }

// Applied is the index of the last log entry this box applied.
func (m *IPAM) Applied() uint64 { return m.applied.Load() }

// Restore replaces the store with the stream of a snapshot and publishes its model.
// It is for the log's applier, between two ApplyLogged calls.
func (m *IPAM) Restore(snapshot io.Reader) error {
	m.Flush()
	if err := m.store.Restore(snapshot); err != nil {
		return err
	}
	return m.reload()
}

// undecodable stands for a skippable entry this build cannot read (one of a newer
// build, in a rolling upgrade): it changes nothing, on every box of this build alike.
type undecodable struct{ err error }

func (u undecodable) apply(*txn) (any, error) {
	return nil, fmt.Errorf("a command of the log this infrad cannot read (upgrade it): %w", u.err)
}
func (undecodable) time() time.Time { return time.Time{} }
func (undecodable) source() string  { return "" }

// ResetApplied forgets the index of the last entry applied: the store's entries
// belonged to a log that is no more (a box's first start with a log, a store restored
// from a backup with its log removed), and a new log begins.
func (m *IPAM) ResetApplied() error {
	if m.applied.Load() == 0 {
		return nil
	}
	err := m.store.Update(func(tx *store.Tx) error { return store.Put(tx, store.BucketState, stateApplied, uint64(0)) })
	if err == nil {
		m.applied.Store(0)
		m.enqueued = 0
	}
	return err
}

// SaveApplied records the index of the last entry applied in the store, where a
// batch that changed nothing left an older one: a snapshot taken next says exactly
// which entry it follows. For the log's applier, after Flush.
func (m *IPAM) SaveApplied() error {
	return m.store.Update(func(tx *store.Tx) error {
		return store.Put(tx, store.BucketState, stateApplied, m.applied.Load())
	})
}

// Package writer is the write path's one goroutine: it takes the log's entries in
// the log's order, hands them to the state machine as many to a transaction as come
// together (group commit), and answers each once its transaction is committed. What an
// entry does, and how a transaction is made, are the state machine's (pkg/ipam); when
// an entry runs, and who hears its outcome, are this package's.
package writer

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// MaxBatch bounds how many entries share one transaction.
const MaxBatch = 128

// batchDelay is how long a busy writer lets an entry wait for company before it
// commits: a commit costs about as much CPU for one command as for a hundred, so under
// load (a boot storm's REQUESTs) waiting a little lets the commits keep up. An idle
// writer commits a lone entry at once. (bbolt's Batch has the same window.)
const batchDelay = 2 * time.Millisecond

// ErrClosed is the outcome of an entry submitted once the writer is closed.
var ErrClosed = errors.New("ipam: the write path is closed")

// Entry is one log entry on its way through the writer: its command, its index in
// the log, and, once committed, its outcome.
type Entry[C any] struct {
	Cmd    C
	Index  uint64 // its log index
	Result any
	Err    error

	queued  time.Time
	done    func(result any, err error) // nil: no one waits
	barrier bool                        // Flush's: no command, only a place in the order
}

func (e *Entry[C]) finish() {
	if e.done != nil {
		e.done(e.Result, e.Err)
	}
}

// Commit applies batch in one transaction, in order, setting each entry's Result and
// Err, and publishes what it made before it returns. An error is the store's own
// failure: the store no longer follows the log.
type Commit[C any] func(batch []*Entry[C]) error

// Writer orders a log's entries into transactions.
type Writer[C any] struct {
	commit  Commit[C]
	applied atomic.Uint64 // the index of the last entry committed
	// enqueued is the index of the last entry handed to the writer; only the log's
	// applier (Submit's caller) touches it.
	enqueued uint64

	mu     sync.RWMutex // held to send to queue; Close takes it to close quit
	closed bool
	queue  chan *Entry[C]
	quit   chan struct{} // closed by Close: the writer commits what is queued and stops
	done   chan struct{}
}

// New starts a writer whose store holds the log up to entry applied; Close stops it.
func New[C any](commit Commit[C], applied uint64) *Writer[C] {
	w := &Writer[C]{commit: commit, enqueued: applied, queue: make(chan *Entry[C], MaxBatch), quit: make(chan struct{}), done: make(chan struct{})}
	w.applied.Store(applied)
	go w.write()
	return w
}

// Submit hands the writer the log's entry at index, whose command is cmd. Entries
// come in the log's order, from one goroutine (the log's applier). An entry the store
// holds already (a log replayed after a restart) is passed over. done, when not nil, is
// called from the writer with the command's outcome once it is committed and
// published; it must not block.
func (w *Writer[C]) Submit(index uint64, cmd C, done func(result any, err error)) {
	if index <= w.enqueued {
		if done != nil {
			done(nil, fmt.Errorf("entry %d is in the store already", index))
		}
		return
	}
	w.enqueued = index
	w.enqueue(&Entry[C]{Cmd: cmd, Index: index, done: done})
}

func (w *Writer[C]) enqueue(e *Entry[C]) {
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		e.Err = ErrClosed
		e.finish()
		return
	}
	e.queued = time.Now()
	w.queue <- e // the writer runs until quit is closed, which waits for this
	w.mu.RUnlock()
}

// Flush returns once the writer has committed everything handed to it.
func (w *Writer[C]) Flush() {
	flushed := make(chan struct{})
	w.enqueue(&Entry[C]{barrier: true, done: func(any, error) { close(flushed) }})
	select {
	case <-flushed:
	case <-w.done:
	}
}

// Applied is the index of the last entry committed.
func (w *Writer[C]) Applied() uint64 { return w.applied.Load() }

// Reset says the store now holds the log up to entry applied (a snapshot restored, or
// a new log begun). For the log's applier, between two Submit calls, after Flush.
func (w *Writer[C]) Reset(applied uint64) {
	w.applied.Store(applied)
	w.enqueued = applied
}

// Close stops the writer once the entries already queued are committed. An entry
// submitted after it is answered ErrClosed.
func (w *Writer[C]) Close() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.quit)
	}
	w.mu.Unlock()
	<-w.done
}

func (w *Writer[C]) write() {
	defer close(w.done)
	batch := make([]*Entry[C], 0, MaxBatch)
	busy := false // the last batch had company: more are coming
	for {
		select {
		case e := <-w.queue:
			batch = append(batch[:0], e)
		case <-w.quit:
			for {
				select {
				case e := <-w.queue:
					w.run([]*Entry[C]{e}) // the store's failure has no one left to stop
				default:
					return
				}
			}
		}
		batch = w.gather(batch, busy)
		busy = len(batch) > 1
		if err := w.run(batch); err != nil {
			// A restart replays the log from the last entry the store holds.
			panic(fmt.Sprintf("infrad: the store failed to apply the cluster's log: %v", err))
		}
	}
}

// gather adds to batch what is queued and, when busy, what comes until the first
// entry of the batch has waited batchDelay (those that came during the last commit
// have waited already). A barrier ends the batch.
func (w *Writer[C]) gather(batch []*Entry[C], busy bool) []*Entry[C] {
	if batch[0].barrier {
		return batch
	}
	var window <-chan time.Time
	if wait := time.Until(batch[0].queued.Add(batchDelay)); busy && wait > 0 {
		timer := time.NewTimer(wait)
		defer timer.Stop()
		window = timer.C
	}
	for len(batch) < MaxBatch {
		var e *Entry[C]
		select {
		case e = <-w.queue:
		default:
			if window == nil {
				return batch
			}
			select {
			case e = <-w.queue:
			case <-window:
				return batch
			}
		}
		batch = append(batch, e)
		if e.barrier {
			return batch
		}
	}
	return batch
}

// run commits batch (a barrier last, if any, commits nothing) and then answers each
// entry.
func (w *Writer[C]) run(batch []*Entry[C]) error {
	work := batch
	if work[len(work)-1].barrier {
		work = work[:len(work)-1]
	}
	var err error
	if len(work) > 0 {
		if err = w.commit(work); err == nil {
			if i := LastIndex(work); i != 0 {
				w.applied.Store(i)
			}
		}
	}
	for _, e := range batch {
		e.finish()
	}
	return err
}

// LastIndex is the log index of the batch's last entry.
func LastIndex[C any](batch []*Entry[C]) uint64 {
	var i uint64
	for _, e := range batch {
		i = max(i, e.Index)
	}
	return i
}

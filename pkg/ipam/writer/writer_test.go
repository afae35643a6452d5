package writer

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// machine records what the writer commits: each batch's commands, in order.
type machine struct {
	mu      sync.Mutex
	batches [][]int
	fail    error // the store's failure, for every commit
	hold    chan struct{}
}

func (s *machine) commit(batch []*Entry[int]) error {
	if s.hold != nil {
		<-s.hold
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var cmds []int
	for _, e := range batch {
		cmds = append(cmds, e.Cmd)
		e.Result = e.Cmd * 10
	}
	s.batches = append(s.batches, cmds)
	return s.fail
}

func (s *machine) committed() (all []int, batches [][]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range s.batches {
		all = append(all, b...)
	}
	return all, slices.Clone(s.batches)
}

// TestEntriesCommitInTheLogsOrder: entries that come while a commit runs share the
// next transaction, never more than MaxBatch of them, in the log's order; each caller
// hears its own outcome once its transaction is committed; Flush returns once all
// that came before it is committed, and Applied is the last of them.
func TestEntriesCommitInTheLogsOrder(t *testing.T) {
	s := &machine{hold: make(chan struct{})}
	w := New(s.commit, 0)
	t.Cleanup(w.Close)
	const n = 3 * MaxBatch
	results := make([]any, n+1)
	var wg sync.WaitGroup
	wg.Add(n)
	go func() { // the log's applier
		for i := 1; i <= n; i++ {
			w.Submit(uint64(i), i, func(result any, err error) {
				if err != nil {
					t.Errorf("entry %d: %v", i, err)
				}
				results[i] = result
				wg.Done()
			})
		}
	}()
	for len(w.queue) < MaxBatch { // the first commit is slow: the rest queue behind it
		time.Sleep(time.Millisecond)
	}
	close(s.hold)
	wg.Wait()
	w.Flush()
	all, batches := s.committed()
	want := make([]int, n)
	for i := range want {
		want[i] = i + 1
	}
	if !slices.Equal(all, want) {
		t.Fatalf("committed %v, want 1 to %d in order", all, n)
	}
	if len(batches) == n {
		t.Errorf("%d entries in %d transactions: none shared one", n, len(batches))
	}
	for _, b := range batches {
		if len(b) > MaxBatch {
			t.Errorf("a batch of %d entries", len(b))
		}
	}
	for i := 1; i <= n; i++ {
		if results[i] != i*10 {
			t.Errorf("entry %d heard %v, want %d", i, results[i], i*10)
		}
	}
	if w.Applied() != n {
		t.Errorf("applied %d, want %d", w.Applied(), n)
	}
}

// TestEntryHeldAlreadyIsPassedOver: a log replayed after a restart hands the writer
// entries its store holds; they are answered and not committed again.
func TestEntryHeldAlreadyIsPassedOver(t *testing.T) {
	s := &machine{}
	w := New(s.commit, 5)
	t.Cleanup(w.Close)
	var refused []uint64
	for i := uint64(4); i <= 7; i++ {
		w.Submit(i, int(i), func(_ any, err error) {
			if err != nil {
				refused = append(refused, i)
			}
		})
	}
	w.Flush()
	if all, _ := s.committed(); !slices.Equal(all, []int{6, 7}) || !slices.Equal(refused, []uint64{4, 5}) {
		t.Errorf("committed %v, refused %v: want 6 and 7 committed, 4 and 5 refused", all, refused)
	}
	w.Reset(10) // a snapshot restored: the store holds entry 10
	w.Submit(8, 8, nil)
	w.Submit(11, 11, nil)
	w.Flush()
	if all, _ := s.committed(); !slices.Equal(all, []int{6, 7, 11}) || w.Applied() != 11 {
		t.Errorf("after the reset: committed %v, applied %d", all, w.Applied())
	}
}

// TestFailedCommitAppliesNothing: when the store fails, the writer answers the
// batch's callers and stops (the process with it), leaving Applied where the store is.
func TestFailedCommitAppliesNothing(t *testing.T) {
	s := &machine{fail: errors.New("disk full")}
	w := &Writer[int]{commit: s.commit}
	e := &Entry[int]{Cmd: 1, Index: 1, done: func(_ any, err error) {}}
	if err := w.run([]*Entry[int]{e}); err == nil || w.Applied() != 0 {
		t.Errorf("a failed commit: %v, applied %d; want the store's error and nothing applied", err, w.Applied())
	}
}

// TestClosedWriterRefuses: what is queued when Close is called is committed; what
// comes after is answered ErrClosed.
func TestClosedWriterRefuses(t *testing.T) {
	s := &machine{}
	w := New(s.commit, 0)
	w.Submit(1, 1, nil)
	w.Close()
	var got error
	w.Submit(2, 2, func(_ any, err error) { got = err })
	if all, _ := s.committed(); !slices.Equal(all, []int{1}) || !errors.Is(got, ErrClosed) {
		t.Errorf("committed %v, the late entry heard %v", all, got)
	}
	w.Flush() // returns at once
	w.Close() // again: nothing
}

func Example() {
	w := New(func(batch []*Entry[string]) error {
		for _, e := range batch {
			e.Result = "applied " + e.Cmd
		}
		return nil
	}, 0)
	defer w.Close()
	done := make(chan struct{})
	w.Submit(1, "put host a", func(result any, err error) { fmt.Println(result, err); close(done) })
	<-done
	// Output: applied put host a <nil>
}

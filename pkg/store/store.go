// Package store owns infrad's one bbolt file: opening it (and with it the claim to be
// the only infrad on its data directory), the schema version and its forward
// migrations, typed transactions, a revision counter that every write transaction bumps
// and that subscribers wait on, and hot backup.
package store

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// ErrLocked is returned by Open when another process holds the store.
var ErrLocked = errors.New("another infrad holds the store")

// Options configure Open.
type Options struct {
	Path       string        // the bbolt file; its directory must exist
	LockWait   time.Duration // how long to wait for another process's lock; 0: 500ms
	Logger     *slog.Logger  // nil: slog.Default()
	migrations []migration   // nil: the package's migrations; set by tests
}

// Store is the open bbolt file. It is safe for concurrent use.
type Store struct {
	db  *bolt.DB
	log *slog.Logger

	mu      sync.Mutex
	rev     uint64            // the last committed revision
	changed chan struct{}     // closed when a revision after rev commits
	written map[Bucket]uint64 // the last revision that wrote each bucket, since Open
}

// Open opens (creating if need be) the store at opts.Path and migrates it to the
// schema this build writes. It fails at once with ErrLocked when another infrad has it.
func Open(opts Options) (*Store, error) {
	if opts.LockWait == 0 {
		opts.LockWait = 500 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.migrations == nil {
		opts.migrations = migrations
	}
	db, err := bolt.Open(opts.Path, 0o600, &bolt.Options{Timeout: opts.LockWait})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open store %s: %w (its lock is taken: stop the other infrad, or give this one another data directory)", opts.Path, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", opts.Path, err)
	}
	// A batch gathers callers for at most 2 ms (bbolt's default is 10): callers wait
	// less for their commit, and the replies a batch releases at once (DHCP ACKs) come
	// in small groups that a client's or relay's socket buffer takes whole.
	db.MaxBatchDelay = 2 * time.Millisecond
	s := &Store{db: db, log: opts.Logger, changed: make(chan struct{}), written: map[Bucket]uint64{}}
	var from, to int
	err = db.Update(func(tx *bolt.Tx) error {
		from, to, err = migrate(tx, opts.migrations)
		s.rev = metaU64(tx, keyRevision)
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", opts.Path, err)
	}
	switch {
	case from == 0:
		s.log.Info("store created", "path", opts.Path, "schema", to)
	case from != to:
		s.log.Info("store schema migrated", "path", opts.Path, "from", from, "to", to)
	}
	return s, nil
}

// Close releases the file and its lock.
func (s *Store) Close() error { return s.db.Close() }

// Path is the bbolt file's path.
func (s *Store) Path() string { return s.db.Path() }

// SchemaVersion is the schema version of the open store.
func (s *Store) SchemaVersion() int {
	var v int
	_ = s.db.View(func(tx *bolt.Tx) error { v = schemaVersion(tx); return nil })
	return v
}

// View runs fn in a read-only transaction: it sees one consistent revision.
func (s *Store) View(fn func(*Tx) error) error {
	return s.db.View(func(tx *bolt.Tx) error { return fn(&Tx{tx: tx}) })
}

// Update runs fn in one write transaction and bumps the revision in it: either all of
// fn's writes and the new revision are on disk when Update returns nil, or none are.
// Watchers are woken after the commit.
func (s *Store) Update(fn func(*Tx) error) error { return s.write(s.db.Update, fn) }

// Batch is Update for many concurrent callers with small writes (DHCP leases): bbolt
// gathers the calls of a few milliseconds into one transaction and one fsync, and each
// caller returns only once its write is on disk. fn may run more than once (when
// another call in its batch fails, bbolt retries each alone), so it must be idempotent.
func (s *Store) Batch(fn func(*Tx) error) error { return s.write(s.db.Batch, fn) }

// write runs fn through commit (bbolt's Update or Batch), bumping the revision in the
// same transaction and publishing it, with the buckets fn wrote, after the commit.
func (s *Store) write(commit func(func(*bolt.Tx) error) error, fn func(*Tx) error) error {
	var rev uint64
	var t *Tx
	err := commit(func(tx *bolt.Tx) error {
		t = &Tx{tx: tx}
		if err := fn(t); err != nil {
			return err
		}
		rev = metaU64(tx, keyRevision) + 1
		return tx.Bucket([]byte(bucketMeta)).Put(keyRevision, u64(rev))
	})
	if err != nil {
		return err
	}
	s.publish(rev, t.touched)
	return nil
}

func (s *Store) publish(rev uint64, touched map[Bucket]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for b := range touched {
		s.written[b] = max(s.written[b], rev)
	}
	if rev > s.rev {
		s.rev = rev
		close(s.changed)
		s.changed = make(chan struct{})
	}
}

// WrittenSince reports whether a revision after rev wrote any of buckets, so that a
// subscriber can pass over changes that are not its concern.
func (s *Store) WrittenSince(rev uint64, buckets ...Bucket) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range buckets {
		if s.written[b] > rev {
			return true
		}
	}
	return false
}

// Revision is the last committed revision.
func (s *Store) Revision() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rev
}

// Watch returns the last committed revision and a channel that is closed once a later
// revision commits. A subscriber reads the store at the returned revision, then waits.
func (s *Store) Watch() (uint64, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rev, s.changed
}

// Backup writes a consistent copy of the whole store to w while it keeps serving.
// The copy is itself a bbolt file that Open accepts.
func (s *Store) Backup(w io.Writer) (int64, error) {
	var n int64
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("back up store: %w", err)
	}
	return n, nil
}

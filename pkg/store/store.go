// Package store owns infrad's one bbolt file: opening it (and with it the claim to be
// the only infrad on its data directory), the schema version and its forward
// migrations, typed transactions, a revision counter that every write transaction
// bumps, and hot backup. Its one writer is IPAM's write path.
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
	Path     string        // the bbolt file; its directory must exist
	LockWait time.Duration // how long to wait for another process's lock; 0: 500ms
	Logger   *slog.Logger  // nil: slog.Default()
	// NoSync leaves commits to the page cache, for a store that is the state machine
	// of a durable log (the cluster's Raft log): after a power cut the log is applied
	// again from the store's last applied entry. Sync makes what is committed durable.
	NoSync     bool
	migrations []migration // nil: the package's migrations; set by tests
}

// Store is the open bbolt file. It is safe for concurrent use.
type Store struct {
	db  *bolt.DB
	log *slog.Logger

	mu  sync.Mutex
	rev uint64 // the last committed revision
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
	db.NoSync = opts.NoSync
	s := &Store{db: db, log: opts.Logger}
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

// Sync writes what is committed to disk (for a NoSync store).
func (s *Store) Sync() error { return s.db.Sync() }

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
func (s *Store) Update(fn func(*Tx) error) error {
	var rev uint64
	err := s.db.Update(func(tx *bolt.Tx) error {
		if err := fn(&Tx{tx: tx}); err != nil {
			return err
		}
		rev = metaU64(tx, keyRevision) + 1
		return tx.Bucket([]byte(bucketMeta)).Put(keyRevision, u64(rev))
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.rev = max(s.rev, rev)
	s.mu.Unlock()
	return nil
}

// Revision is the last committed revision.
func (s *Store) Revision() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rev
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

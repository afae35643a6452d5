package store

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
)

// Snapshot is a consistent, read-only view of the store, held open until Close: the
// cluster's Raft snapshot, taken between two applies and written out while the store
// keeps serving.
type Snapshot struct{ tx *bolt.Tx }

// Snapshot opens a view of the store as it is now.
func (s *Store) Snapshot() (*Snapshot, error) {
	tx, err := s.db.Begin(false)
	if err != nil {
		return nil, fmt.Errorf("snapshot the store: %w", err)
	}
	return &Snapshot{tx: tx}, nil
}

// WriteTo writes the view as a bbolt file, the same stream Backup writes.
func (sn *Snapshot) WriteTo(w io.Writer) (int64, error) { return sn.tx.WriteTo(w) }

// Close releases the view.
func (sn *Snapshot) Close() error { return sn.tx.Rollback() }

// Restore replaces the whole contents of the store with the bbolt file r streams (a
// Backup or a Snapshot), in one write transaction, migrating it to this build's
// schema: readers see the old store or the new one, never a mixture. The file stays
// the same, so whoever holds the Store keeps it.
func (s *Store) Restore(r io.Reader) error {
	tmp, err := os.CreateTemp(filepath.Dir(s.Path()), ".restore-*")
	if err != nil {
		return fmt.Errorf("restore the store: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = io.Copy(tmp, r)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("restore the store: receive it: %w", err)
	}
	from, err := bolt.Open(tmp.Name(), 0o600, &bolt.Options{ReadOnly: true, Timeout: timeoutOpenForeign})
	if err != nil {
		return fmt.Errorf("restore the store: the stream is not a store: %w", err)
	}
	defer from.Close()
	return from.View(func(src *bolt.Tx) error {
		return s.Update(func(dst *Tx) error {
			var names [][]byte
			if err := dst.tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
				names = append(names, name)
				return nil
			}); err != nil {
				return err
			}
			for _, name := range names {
				if err := dst.tx.DeleteBucket(name); err != nil {
					return err
				}
			}
			if err := src.ForEach(func(name []byte, b *bolt.Bucket) error {
				into, err := dst.tx.CreateBucket(name)
				if err != nil {
					return err
				}
				return copyBucket(into, b)
			}); err != nil {
				return fmt.Errorf("restore the store: %w", err)
			}
			if _, _, err := migrate(dst.tx, migrations); err != nil {
				return fmt.Errorf("restore the store: %w", err)
			}
			return nil
		})
	})
}

// copyBucket copies every key and nested bucket of from into into, and its sequence
// (the change log's numbers go on from where they were).
func copyBucket(into, from *bolt.Bucket) error {
	if err := into.SetSequence(from.Sequence()); err != nil {
		return err
	}
	return from.ForEach(func(k, v []byte) error {
		if v != nil {
			return into.Put(k, v)
		}
		nested := from.Bucket(k)
		if nested == nil {
			return errors.New("a key with neither value nor bucket")
		}
		b, err := into.CreateBucket(k)
		if err != nil {
			return err
		}
		return copyBucket(b, nested)
	})
}

package store

import (
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Tables are raw key-value tables that another library keeps in the store (step-ca's
// database: ACME accounts, orders, certificates, revocations), each a bucket nested in
// BucketCA, so that a backup carries them with the site.

// ErrNoTable is returned for a table that does not exist.
var ErrNoTable = errors.New("no such table")

func (t *Tx) table(name string) (*bolt.Bucket, error) {
	ca, err := t.bucket(BucketCA)
	if err != nil {
		return nil, err
	}
	b := ca.Bucket([]byte(name))
	if b == nil {
		return nil, fmt.Errorf("%w: %s", ErrNoTable, name)
	}
	return b, nil
}

// CreateTable creates the table name, if it does not exist.
func CreateTable(t *Tx, name string) error {
	ca, err := t.bucket(BucketCA)
	if err != nil {
		return err
	}
	_, err = ca.CreateBucketIfNotExists([]byte(name))
	return err
}

// DropTable deletes the table name and everything in it.
func DropTable(t *Tx, name string) error {
	ca, err := t.bucket(BucketCA)
	if err != nil {
		return err
	}
	if err := ca.DeleteBucket([]byte(name)); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
		return err
	}
	return nil
}

// TableGet returns a copy of the value at key in table; nil when there is none.
func TableGet(t *Tx, table string, key []byte) ([]byte, error) {
	b, err := t.table(table)
	if err != nil {
		return nil, err
	}
	v := b.Get(key)
	if v == nil {
		return nil, nil
	}
	return append([]byte{}, v...), nil
}

// TablePut writes value at key in table.
func TablePut(t *Tx, table string, key, value []byte) error {
	b, err := t.table(table)
	if err != nil {
		return err
	}
	return b.Put(key, value)
}

// TableDelete removes key from table.
func TableDelete(t *Tx, table string, key []byte) error {
	b, err := t.table(table)
	if err != nil {
		return err
	}
	return b.Delete(key)
}

// TableEach calls fn with a copy of every key and value of table, in key order.
func TableEach(t *Tx, table string, fn func(key, value []byte) error) error {
	b, err := t.table(table)
	if err != nil {
		return err
	}
	return b.ForEach(func(k, v []byte) error {
		if v == nil {
			return nil // a nested bucket
		}
		return fn(append([]byte{}, k...), append([]byte{}, v...))
	})
}

// ReadFile reads every top-level bucket of another bbolt file (read-only, waiting at
// most a second for its lock): table name → key → value. It is how an older data
// directory's separate CA database comes into the store.
func ReadFile(path string) (map[string]map[string][]byte, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: timeoutOpenForeign})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer db.Close()
	out := map[string]map[string][]byte{}
	err = db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			rows := map[string][]byte{}
			out[string(name)] = rows
			return b.ForEach(func(k, v []byte) error {
				if v != nil {
					rows[string(k)] = append([]byte{}, v...)
				}
				return nil
			})
		})
	})
	return out, err
}

package store

import (
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Tx is one transaction, read-only inside View, read-write inside Update.
// Objects are stored as JSON under string keys; the helpers below are typed.
type Tx struct {
	tx *bolt.Tx
}

func (t *Tx) bucket(b Bucket) (*bolt.Bucket, error) {
	bk := t.tx.Bucket([]byte(b))
	if bk == nil {
		return nil, fmt.Errorf("store: bucket %q is not declared in the schema", b)
	}
	return bk, nil
}

// Get reads the object at key; ok is false when there is none.
func Get[T any](t *Tx, b Bucket, key string) (v T, ok bool, err error) {
	bk, err := t.bucket(b)
	if err != nil {
		return v, false, err
	}
	raw := bk.Get([]byte(key))
	if raw == nil {
		return v, false, nil
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, false, fmt.Errorf("store: decode %s/%s: %w", b, key, err)
	}
	return v, true, nil
}

// Put writes v at key, replacing what was there.
func Put[T any](t *Tx, b Bucket, key string, v T) error {
	bk, err := t.bucket(b)
	if err != nil {
		return err
	}
	var raw []byte
	if a, ok := any(v).(JSONAppender); ok {
		raw, err = a.AppendJSON(nil)
	} else {
		raw, err = json.Marshal(v)
	}
	if err != nil {
		return fmt.Errorf("store: encode %s/%s: %w", b, key, err)
	}
	return bk.Put([]byte(key), raw)
}

// JSONAppender is a value that writes its own JSON, exactly as encoding/json would,
// without reflection: Put stores it so (a lease, written for every DHCP exchange), and
// the IPAM log encodes a command so (a CommitLease).
type JSONAppender interface {
	AppendJSON(b []byte) ([]byte, error)
}

// Delete removes key; removing a missing key is not an error.
func Delete(t *Tx, b Bucket, key string) error {
	bk, err := t.bucket(b)
	if err != nil {
		return err
	}
	return bk.Delete([]byte(key))
}

// All reads every object of a bucket, in key order.
func All[T any](t *Tx, b Bucket) ([]T, error) {
	bk, err := t.bucket(b)
	if err != nil {
		return nil, err
	}
	var out []T
	err = bk.ForEach(func(k, raw []byte) error {
		var v T
		if err := json.Unmarshal(raw, &v); err != nil {
			return fmt.Errorf("store: decode %s/%s: %w", b, k, err)
		}
		out = append(out, v)
		return nil
	})
	return out, err
}

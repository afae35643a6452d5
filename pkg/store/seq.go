package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
)

// A sequence bucket holds entries under the numbers the bucket gives them in turn
// (bbolt's NextSequence, 8 bytes big-endian), oldest first: the change log. Entries
// leave it only from its old end (Trim), so its numbers have no holes.

// Append writes v under the bucket's next sequence number, which it returns. The
// number follows from the store alone, so the same writes on another box number alike.
func Append(t *Tx, b Bucket, v any) (uint64, error) {
	bk, err := t.bucket(b)
	if err != nil {
		return 0, err
	}
	id, err := bk.NextSequence()
	if err != nil {
		return 0, err
	}
	var raw []byte
	if a, ok := v.(JSONAppender); ok {
		raw, err = a.AppendJSON(nil)
	} else {
		raw, err = json.Marshal(v)
	}
	if err != nil {
		return 0, fmt.Errorf("store: encode %s/%d: %w", b, id, err)
	}
	return id, bk.Put(seqKey(id), raw)
}

// Trim deletes b's oldest entries while drop says so of the oldest left, or while
// more than keep are left.
func Trim(t *Tx, b Bucket, keep uint64, drop func(raw []byte) bool) error {
	bk, err := t.bucket(b)
	if err != nil {
		return err
	}
	last := bk.Sequence()
	c := bk.Cursor()
	for k, raw := c.First(); k != nil; k, raw = c.First() {
		if id := binary.BigEndian.Uint64(k); last-id < keep && !drop(raw) {
			return nil
		}
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}

// Newest calls fn with b's entries from the newest numbered below before (0: the
// newest of all) back to the oldest, until fn returns false.
func Newest(t *Tx, b Bucket, before uint64, fn func(id uint64, raw []byte) bool) error {
	bk, err := t.bucket(b)
	if err != nil {
		return err
	}
	c := bk.Cursor()
	var k, raw []byte
	switch {
	case before == 0:
		k, raw = c.Last()
	default:
		if k, _ = c.Seek(seqKey(before)); k == nil {
			k, raw = c.Last()
		} else {
			k, raw = c.Prev()
		}
	}
	for ; k != nil; k, raw = c.Prev() {
		if !fn(binary.BigEndian.Uint64(k), raw) {
			return nil
		}
	}
	return nil
}

func seqKey(id uint64) []byte { return binary.BigEndian.AppendUint64(nil, id) }

package ipam

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/infrad/infrad/pkg/store"
)

// TableWrite is one write of step-ca's database (the CA's tables in the store): its
// operations apply in order, all or none. A compare-and-swap that finds another value
// swaps nothing and says so in its result; a "get" of a missing key refuses the
// whole write (nonces are taken so: get, then delete).
type TableWrite struct {
	Stamp
	Ops []TableOp `json:"ops"`
}

// TableOp is one operation of a TableWrite.
type TableOp struct {
	Op    string `json:"op"` // create, drop, get, set, delete, swap
	Table string `json:"table"`
	Key   []byte `json:"key,omitempty"`
	Value []byte `json:"value,omitempty"` // set, swap: the new value
	Old   []byte `json:"old,omitempty"`   // swap: the value expected (nil: none)
}

// TableResult is what one operation found: the value read or left, and whether a
// swap happened.
type TableResult struct {
	Value   []byte
	Swapped bool
}

// ErrNoKey is a TableWrite's "get" of a key that is not there.
var ErrNoKey = errors.New("no such key")

func (c TableWrite) apply(t *txn) (any, error) {
	// The operations run against an overlay of the transaction, and reach it only when
	// all of them have: a refusal leaves the batch's transaction as it was.
	type cell struct {
		value []byte // nil: deleted
	}
	over := map[[2]string]cell{}
	tables := map[string]bool{} // created (true) or dropped (false) here
	read := func(table string, key []byte) ([]byte, error) {
		if v, ok := over[[2]string{table, string(key)}]; ok {
			return v.value, nil
		}
		if made, ok := tables[table]; ok && !made {
			return nil, fmt.Errorf("%w: %s", store.ErrNoTable, table)
		}
		v, err := store.TableGet(t.tx, table, key)
		if errors.Is(err, store.ErrNoTable) && tables[table] {
			return nil, nil
		}
		return v, err
	}
	results := make([]TableResult, len(c.Ops))
	for i, op := range c.Ops {
		k := [2]string{op.Table, string(op.Key)}
		switch op.Op {
		case "create":
			tables[op.Table] = true
		case "drop":
			tables[op.Table] = false
			for key := range over {
				if key[0] == op.Table {
					delete(over, key)
				}
			}
		case "get":
			v, err := read(op.Table, op.Key)
			if err != nil {
				return nil, err
			}
			if v == nil {
				return nil, fmt.Errorf("%w: %s/%s", ErrNoKey, op.Table, op.Key)
			}
			results[i].Value = v
		case "set":
			cur, err := read(op.Table, op.Key)
			if err != nil {
				return nil, err
			}
			t.noteRow(op, cur == nil)
			over[k] = cell{append([]byte{}, op.Value...)}
		case "delete":
			if _, err := read(op.Table, op.Key); err != nil {
				return nil, err
			}
			over[k] = cell{nil}
		case "swap":
			cur, err := read(op.Table, op.Key)
			if err != nil {
				return nil, err
			}
			if !bytes.Equal(cur, op.Old) {
				results[i].Value = cur
				continue
			}
			t.noteRow(op, cur == nil)
			over[k] = cell{append([]byte{}, op.Value...)}
			results[i] = TableResult{Value: op.Value, Swapped: true}
		default:
			return nil, fmt.Errorf("table write: unknown operation %q", op.Op)
		}
	}
	for table, made := range tables {
		var err error
		if made {
			err = store.CreateTable(t.tx, table)
		} else {
			err = store.DropTable(t.tx, table)
		}
		if err != nil {
			return nil, abort(err)
		}
		t.wrote = true
	}
	for k, v := range over {
		var err error
		if v.value == nil {
			err = store.TableDelete(t.tx, k[0], []byte(k[1]))
		} else {
			err = store.TablePut(t.tx, k[0], []byte(k[1]), v.value)
		}
		if err != nil {
			return nil, abort(err)
		}
		t.wrote = true
	}
	return results, nil
}

// RowNotes says what the change log records of a row a TableWrite writes (created:
// the row is new), when it records anything. A table's owner says it (pkg/ca for
// step-ca's tables): IPAM only stores the rows. Every box applies it to the same
// operations, so it must depend on its arguments alone.
type RowNotes func(op TableOp, created bool) (ObjectChange, bool)

// noteRow records in the change log what a row written by op says: a key ring's
// change (not its keys), or what the table's owner says of it.
func (t *txn) noteRow(op TableOp, created bool) {
	if op.Table == keyringTable {
		t.noteExtra(ObjectChange{Kind: "keyring", Key: string(op.Key), Op: "update"})
		return
	}
	if t.rowNotes == nil {
		return
	}
	if c, ok := t.rowNotes(op, created); ok {
		t.noteExtra(c)
	}
}

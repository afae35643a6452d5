package ipam

import (
	"context"
	"errors"

	"github.com/infrad/infrad/pkg/store"
)

// keyringTable is the table (one of the CA's, nested in its bucket) that holds
// infrad's own key rings, each one value by name: DNSSEC's signing keys and NTS's
// cookie keys. They are written as the CA's tables are, through the write path, so
// every box of a cluster holds the same keys, and a backup carries them.
const keyringTable = "keyrings"

// Keyring is the ring stored under name; nil when there is none yet.
func (m *IPAM) Keyring(name string) ([]byte, error) {
	var v []byte
	err := m.store.View(func(tx *store.Tx) error {
		var err error
		v, err = store.TableGet(tx, keyringTable, []byte(name))
		return err
	})
	if errors.Is(err, store.ErrNoTable) {
		return nil, nil
	}
	return v, err
}

// SwapKeyring replaces the ring under name with next if it is still old (nil: none),
// and reports whether it was: of two boxes that change a ring at once, one wins and
// the other reads what won.
func (m *IPAM) SwapKeyring(ctx context.Context, name string, old, next []byte) (bool, error) {
	if SourceOf(ctx) == "" {
		ctx = WithSource(ctx, "keyring "+name) // the change log's source: not the CA's
	}
	res, err := m.Apply(ctx, TableWrite{Stamp: m.stampFor(ctx), Ops: []TableOp{
		{Op: "create", Table: keyringTable},
		{Op: "swap", Table: keyringTable, Key: []byte(name), Old: old, Value: next},
	}})
	if err != nil {
		return false, err
	}
	return res.([]TableResult)[1].Swapped, nil
}

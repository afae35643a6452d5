package store

import (
	"bytes"
	"path/filepath"
	"testing"
)

// TestSnapshotRestore: a snapshot taken while the store changes is the store as it
// was, and restoring it into another store replaces everything there, nested tables
// included, while that store stays open.
func TestSnapshotRestore(t *testing.T) {
	dir := t.TempDir()
	from := open(t, filepath.Join(dir, "from.db"), migrations)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(from.Update(func(tx *Tx) error {
		if err := Put(tx, BucketHosts, "cp01", "10.0.40.10"); err != nil {
			return err
		}
		if err := CreateTable(tx, "acme_accounts"); err != nil {
			return err
		}
		for range 3 {
			if _, err := Append(tx, BucketChanges, map[string]string{"at": "x"}); err != nil {
				return err
			}
		}
		return TablePut(tx, "acme_accounts", []byte("a1"), []byte("key"))
	}))
	sn, err := from.Snapshot()
	must(err)
	// A write while the snapshot is open (it may wait for the view to close, when
	// the file must grow).
	later := make(chan error, 1)
	go func() {
		later <- from.Update(func(tx *Tx) error { return Put(tx, BucketHosts, "later", "10.0.40.11") })
	}()
	var stream bytes.Buffer
	_, err = sn.WriteTo(&stream)
	must(err)
	must(sn.Close())
	must(<-later)

	into := open(t, filepath.Join(dir, "into.db"), migrations)
	must(into.Update(func(tx *Tx) error { return Put(tx, BucketHosts, "gone", "10.0.40.12") }))
	must(into.Restore(&stream))
	must(into.Update(func(tx *Tx) error {
		for key, want := range map[string]bool{"cp01": true, "later": false, "gone": false} {
			if _, ok, err := Get[string](tx, BucketHosts, key); err != nil || ok != want {
				t.Errorf("host %s after the restore: %v, %v; want %v", key, ok, err, want)
			}
		}
		// The change log's numbering goes on where the snapshot's was.
		if id, err := Append(tx, BucketChanges, map[string]string{"at": "y"}); err != nil || id != 4 {
			t.Errorf("the next entry after the restore is numbered %d (%v), want 4", id, err)
		}
		v, err := TableGet(tx, "acme_accounts", []byte("a1"))
		if err != nil || string(v) != "key" {
			t.Errorf("the nested table after the restore: %q, %v", v, err)
		}
		return nil
	}))
	if err := into.Restore(bytes.NewReader([]byte("not a store"))); err == nil {
		t.Error("a stream that is not a store was restored")
	}
}

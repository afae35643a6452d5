package store

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

const things Bucket = "things"

type thing struct {
	Name string `json:"name"`
	N    int    `json:"n"`
}

// withThings is the package's schema plus one migration that adds a test bucket.
func withThings() []migration {
	return append(append([]migration(nil), migrations...), migration{"create things", func(tx *bolt.Tx) error {
		_, err := tx.CreateBucket([]byte(things))
		return err
	}})
}

func open(t *testing.T, path string, ms []migration) *Store {
	t.Helper()
	s, err := Open(Options{Path: path, migrations: ms})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestOpenWritesCurrentSchema(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "infrad.db"), nil)
	if got, want := s.SchemaVersion(), len(migrations); got != want {
		t.Errorf("got schema %d, want %d", got, want)
	}
	info, err := os.Stat(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Mode().Perm(); got != 0o600 {
		t.Errorf("got mode %o, want 600", got)
	}
}

func TestForwardMigration(t *testing.T) {
	path := filepath.Join(t.TempDir(), "infrad.db")
	s := open(t, path, nil)
	if err := s.Update(func(*Tx) error { return nil }); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = open(t, path, withThings())
	if got, want := s.SchemaVersion(), len(migrations)+1; got != want {
		t.Errorf("got schema %d after migration, want %d", got, want)
	}
	if got := s.Revision(); got != 1 {
		t.Errorf("got revision %d, want 1: a migration keeps the data", got)
	}
	if err := s.Update(func(tx *Tx) error { return Put(tx, things, "a", thing{"a", 1}) }); err != nil {
		t.Errorf("the migrated bucket is not usable: %v", err)
	}
}

func TestFailedMigrationChangesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "infrad.db")
	open(t, path, nil).Close()
	broken := append(withThings(), migration{"fail", func(*bolt.Tx) error { return errors.New("boom") }})
	if _, err := Open(Options{Path: path, migrations: broken}); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("got %v, want the migration's error", err)
	}
	s := open(t, path, nil)
	if got, want := s.SchemaVersion(), len(migrations); got != want {
		t.Errorf("got schema %d, want %d: a failed migration must roll back whole", got, want)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "infrad.db")
	open(t, path, withThings()).Close()
	_, err := Open(Options{Path: path})
	if err == nil || !strings.Contains(err.Error(), "run a newer infrad") {
		t.Fatalf("got %v, want a refusal naming the schema versions", err)
	}
}

func TestSecondOpenerIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "infrad.db")
	open(t, path, nil)
	_, err := Open(Options{Path: path, LockWait: 50 * time.Millisecond})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("got %v, want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), "another infrad") {
		t.Errorf("got %q, want a message that says another infrad holds it", err)
	}
}

func TestTypedTransactions(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "infrad.db"), withThings())
	err := s.Update(func(tx *Tx) error {
		for _, th := range []thing{{"b", 2}, {"a", 1}} {
			if err := Put(tx, things, th.Name, th); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.View(func(tx *Tx) error {
		got, ok, err := Get[thing](tx, things, "b")
		if err != nil || !ok || got != (thing{"b", 2}) {
			t.Errorf("Get b: got %v %v %v, want {b 2}", got, ok, err)
		}
		if _, ok, _ := Get[thing](tx, things, "zz"); ok {
			t.Errorf("Get zz: got ok, want missing")
		}
		all, err := All[thing](tx, things)
		if err != nil || len(all) != 2 || all[0].Name != "a" {
			t.Errorf("All: got %v %v, want a then b", all, err)
		}
		if _, err := All[thing](tx, "undeclared"); err == nil {
			t.Errorf("All on an undeclared bucket: got no error")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestFailedUpdateWritesNothing(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "infrad.db"), withThings())
	err := s.Update(func(tx *Tx) error {
		if err := Put(tx, things, "a", thing{"a", 1}); err != nil {
			return err
		}
		return errors.New("refused")
	})
	if err == nil {
		t.Fatal("got nil, want the error")
	}
	if got := s.Revision(); got != 0 {
		t.Errorf("got revision %d, want 0", got)
	}
	_ = s.View(func(tx *Tx) error {
		if _, ok, _ := Get[thing](tx, things, "a"); ok {
			t.Errorf("the write of a failed transaction is visible")
		}
		return nil
	})
}

func TestBackupIsAnOpenableCopy(t *testing.T) {
	dir := t.TempDir()
	s := open(t, filepath.Join(dir, "infrad.db"), withThings())
	if err := s.Update(func(tx *Tx) error { return Put(tx, things, "a", thing{"a", 7}) }); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	n, err := s.Backup(&buf)
	if err != nil || n != int64(buf.Len()) {
		t.Fatalf("got %d bytes, %v", n, err)
	}
	copyPath := filepath.Join(dir, "copy.db")
	if err := os.WriteFile(copyPath, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	c := open(t, copyPath, withThings())
	if c.Revision() != 1 {
		t.Errorf("got revision %d in the copy, want 1", c.Revision())
	}
	_ = c.View(func(tx *Tx) error {
		if got, ok, _ := Get[thing](tx, things, "a"); !ok || got.N != 7 {
			t.Errorf("got %v %v in the copy, want {a 7}", got, ok)
		}
		return nil
	})
}

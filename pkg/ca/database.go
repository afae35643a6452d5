package ca

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/smallstep/nosql/database"

	"github.com/infrad/infrad/pkg/ipam"
	"github.com/infrad/infrad/pkg/store"
)

// storeDB is step-ca's nosql.DB kept in infrad's store: its tables are buckets
// nested in the store's "ca" bucket, its writes are commands of IPAM's write path
// (ipam.TableWrite), and its reads are store transactions. So a backup of the store
// carries ACME accounts, orders, certificates and revocations, and a restore brings
// them back.
type storeDB struct {
	store *store.Store
	ipam  *ipam.IPAM
}

var _ database.DB = (*storeDB)(nil)

func (d *storeDB) write(ops ...ipam.TableOp) ([]ipam.TableResult, error) {
	res, err := d.ipam.Apply(context.Background(), ipam.TableWrite{Stamp: ipam.Stamp{At: time.Now()}, Ops: ops})
	if errors.Is(err, ipam.ErrNoKey) || errors.Is(err, store.ErrNoTable) {
		return nil, fmt.Errorf("%w: %v", database.ErrNotFound, err)
	}
	if err != nil {
		return nil, err
	}
	return res.([]ipam.TableResult), nil
}

// Open and Close do nothing: the store is the daemon's to open and close.
func (d *storeDB) Open(string, ...database.Option) error { return nil }
func (d *storeDB) Close() error                          { return nil }

func (d *storeDB) Get(bucket, key []byte) ([]byte, error) {
	var v []byte
	err := d.store.View(func(tx *store.Tx) error {
		var err error
		v, err = store.TableGet(tx, string(bucket), key)
		return err
	})
	switch {
	case errors.Is(err, store.ErrNoTable):
		return nil, fmt.Errorf("%w: %v", database.ErrNotFound, err)
	case err != nil:
		return nil, err
	case v == nil:
		return nil, database.ErrNotFound
	}
	return v, nil
}

func (d *storeDB) Set(bucket, key, value []byte) error {
	_, err := d.write(ipam.TableOp{Op: "set", Table: string(bucket), Key: key, Value: value})
	return err
}

func (d *storeDB) CmpAndSwap(bucket, key, oldValue, newValue []byte) ([]byte, bool, error) {
	res, err := d.write(ipam.TableOp{Op: "swap", Table: string(bucket), Key: key, Value: newValue, Old: oldValue})
	if err != nil {
		return nil, false, err
	}
	return res[0].Value, res[0].Swapped, nil
}

func (d *storeDB) Del(bucket, key []byte) error {
	_, err := d.write(ipam.TableOp{Op: "delete", Table: string(bucket), Key: key})
	return err
}

func (d *storeDB) List(bucket []byte) ([]*database.Entry, error) {
	var out []*database.Entry
	err := d.store.View(func(tx *store.Tx) error {
		return store.TableEach(tx, string(bucket), func(k, v []byte) error {
			out = append(out, &database.Entry{Bucket: bucket, Key: k, Value: v})
			return nil
		})
	})
	if errors.Is(err, store.ErrNoTable) {
		return nil, fmt.Errorf("%w: %v", database.ErrNotFound, err)
	}
	return out, err
}

// tableOps names each nosql operation as a TableOp.
var tableOps = map[database.TxCmd]string{
	database.CreateTable: "create", database.DeleteTable: "drop", database.Get: "get",
	database.Set: "set", database.Delete: "delete", database.CmpAndSwap: "swap",
}

// Update applies a nosql transaction as one TableWrite: all its operations, or none.
func (d *storeDB) Update(tx *database.Tx) error {
	ops := make([]ipam.TableOp, len(tx.Operations))
	for i, e := range tx.Operations {
		name, ok := tableOps[e.Cmd]
		if !ok {
			return fmt.Errorf("ca database: operation %s is not supported", e.Cmd)
		}
		ops[i] = ipam.TableOp{Op: name, Table: string(e.Bucket), Key: e.Key, Value: e.Value, Old: e.CmpValue}
	}
	res, err := d.write(ops...)
	if err != nil {
		return err
	}
	for i, e := range tx.Operations {
		e.Result, e.Swapped = res[i].Value, res[i].Swapped
	}
	return nil
}

func (d *storeDB) CreateTable(bucket []byte) error {
	_, err := d.write(ipam.TableOp{Op: "create", Table: string(bucket)})
	return err
}

func (d *storeDB) DeleteTable(bucket []byte) error {
	_, err := d.write(ipam.TableOp{Op: "drop", Table: string(bucket)})
	return err
}

// migrate brings the separate CA database of an older infrad (<dir>/db, a bbolt file
// of step-ca's own) into the store, once, in one write; the old file is then renamed
// db.migrated, so that it is not read again.
func (d *storeDB) migrate(dir string) (bool, error) {
	path := filepath.Join(dir, "db")
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	tables, err := store.ReadFile(path)
	if err != nil {
		return false, fmt.Errorf("read the old CA database: %w", err)
	}
	var ops []ipam.TableOp
	names := make([]string, 0, len(tables))
	for name := range tables {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		ops = append(ops, ipam.TableOp{Op: "create", Table: name})
		for k, v := range tables[name] {
			ops = append(ops, ipam.TableOp{Op: "set", Table: name, Key: []byte(k), Value: v})
		}
	}
	if _, err := d.write(ops...); err != nil {
		return false, fmt.Errorf("copy the old CA database into the store: %w", err)
	}
	return true, os.Rename(path, path+".migrated")
}

// RowNotes says what the change log records of the CA's rows: a certificate issued
// (a new row of step-ca's certificates, by serial number in hexadecimal: its subject,
// names and expiry) and one revoked. Other rows (accounts, orders, nonces) are not noted.
func RowNotes(op ipam.TableOp, created bool) (ipam.ObjectChange, bool) {
	if !created { // a row written again (a certificate's status): nothing new
		return ipam.ObjectChange{}, false
	}
	key := string(op.Key) // step-ca's: the serial in decimal
	if n, ok := new(big.Int).SetString(key, 10); ok {
		key = SerialHex(n)
	}
	switch op.Table {
	case string(certsTable):
		c := ipam.ObjectChange{Kind: "certificate", Key: key, Op: "create"}
		if cert, err := x509.ParseCertificate(op.Value); err == nil {
			c.After, _ = json.Marshal(struct {
				Subject  string    `json:"subject"`
				DNSNames []string  `json:"dns_names,omitempty"`
				NotAfter time.Time `json:"not_after"`
			}{cert.Subject.CommonName, cert.DNSNames, cert.NotAfter.UTC()})
		}
		return c, true
	case string(revokedTable):
		return ipam.ObjectChange{Kind: "certificate", Key: key, Op: "revoke"}, true
	}
	return ipam.ObjectChange{}, false
}

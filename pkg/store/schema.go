package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Bucket names a top-level bbolt bucket. Every bucket is declared here, once.
type Bucket string

const (
	// bucketMeta holds the schema version and the revision counter.
	bucketMeta Bucket = "meta"

	BucketSubnets Bucket = "subnets" // ipam.Subnet by name
	BucketHosts   Bucket = "hosts"   // ipam.Host by name
	BucketRecords Bucket = "records" // ipam.Record by ID
	BucketLeases  Bucket = "leases"  // ipam.Lease by IP
	// BucketState holds the write path's own values (the zones' serial).
	BucketState Bucket = "state"
	// BucketCA holds step-ca's tables, one nested bucket each (see table.go).
	BucketCA Bucket = "ca"
	// BucketChanges is the change log: ipam.ChangeEntry by sequence number (see seq.go).
	BucketChanges Bucket = "changes"
	// BucketTokens holds the named API tokens, ipam.Token by name (hashed, never the token).
	BucketTokens Bucket = "tokens"
)

// timeoutOpenForeign is how long ReadFile waits for another file's lock.
const timeoutOpenForeign = time.Second

var (
	keySchema   = []byte("schema")
	keyRevision = []byte("revision")
)

// migration brings a store from one schema version to the next.
type migration struct {
	about string
	apply func(tx *bolt.Tx) error
}

// migrations[i] brings a store from schema version i to i+1; the schema version this
// build writes is len(migrations). Append; never edit or reorder a released entry.
var migrations = []migration{
	{"create the meta bucket (schema version, revision)", func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists([]byte(bucketMeta))
		return err
	}},
	{"create the IPAM buckets (subnets, hosts, records, leases)", func(tx *bolt.Tx) error {
		return createBuckets(tx, BucketSubnets, BucketHosts, BucketRecords, BucketLeases)
	}},
	{"index the leases that carry a hostname", func(tx *bolt.Tx) error {
		names, err := tx.CreateBucketIfNotExists([]byte("lease_names"))
		if err != nil {
			return err
		}
		return tx.Bucket([]byte(BucketLeases)).ForEach(func(k, raw []byte) error {
			var l struct {
				Hostname string `json:"hostname"`
			}
			if err := json.Unmarshal(raw, &l); err != nil || l.Hostname == "" {
				return err
			}
			return names.Put([]byte(l.Hostname), k)
		})
	}},
	{"drop the lease hostname index (the published model indexes leases); create the state bucket", func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket([]byte("lease_names")); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
			return err
		}
		return createBuckets(tx, BucketState)
	}},
	{"create the CA's bucket (step-ca's tables, nested)", func(tx *bolt.Tx) error {
		return createBuckets(tx, BucketCA)
	}},
	{"create the change log's and the named API tokens' buckets", func(tx *bolt.Tx) error {
		return createBuckets(tx, BucketChanges, BucketTokens)
	}},
}

func createBuckets(tx *bolt.Tx, names ...Bucket) error {
	for _, n := range names {
		if _, err := tx.CreateBucketIfNotExists([]byte(n)); err != nil {
			return fmt.Errorf("create bucket %s: %w", n, err)
		}
	}
	return nil
}

// migrate applies, in the one transaction tx, every migration past the store's version.
func migrate(tx *bolt.Tx, ms []migration) (from, to int, err error) {
	from = schemaVersion(tx)
	if from > len(ms) {
		return from, from, fmt.Errorf("the store has schema version %d, and this infrad knows versions up to %d: run a newer infrad", from, len(ms))
	}
	for v := from; v < len(ms); v++ {
		if err := ms[v].apply(tx); err != nil {
			return from, v, fmt.Errorf("migrate schema %d to %d (%s): %w", v, v+1, ms[v].about, err)
		}
	}
	if from < len(ms) {
		if err := tx.Bucket([]byte(bucketMeta)).Put(keySchema, u64(uint64(len(ms)))); err != nil {
			return from, from, fmt.Errorf("record schema version: %w", err)
		}
	}
	return from, len(ms), nil
}

func schemaVersion(tx *bolt.Tx) int {
	return int(metaU64(tx, keySchema))
}

func metaU64(tx *bolt.Tx, key []byte) uint64 {
	b := tx.Bucket([]byte(bucketMeta))
	if b == nil {
		return 0
	}
	v := b.Get(key)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

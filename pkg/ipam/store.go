package ipam

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/infrad/infrad/pkg/store"
)

// IPAM keeps the site's subnets, hosts and records in the store under the rules of
// Set.Problems: every change is checked against everything else and written in one
// transaction, so a refused or interrupted change leaves nothing behind.
type IPAM struct {
	store *store.Store

	mu     sync.RWMutex
	domain Name   // from the site file; records are checked against these zones
	zones  []Name //
	source string // the site file, named when the API may not change its objects
}

// New returns an IPAM on st (non-nil). Until the first Reconcile it knows no zones,
// so it accepts no records.
func New(st *store.Store) *IPAM {
	return &IPAM{store: st}
}

// kind describes one sort of stored object to the generic change path below.
type kind[T any] struct {
	noun   string // "host", in messages
	path   string // its list in a Set and in the site file: "hosts"
	bucket store.Bucket
	key    func(T) string
	title  func(T) string // names an object in messages: host "cp01"
	owner  func(T) Owner
	list   func(*Set) *[]T
}

var (
	subnetKind = kind[Subnet]{"subnet", "subnets", store.BucketSubnets,
		func(s Subnet) string { return s.Name },
		func(s Subnet) string { return fmt.Sprintf("subnet %q", s.Name) },
		func(s Subnet) Owner { return s.Owner },
		func(s *Set) *[]Subnet { return &s.Subnets }}
	hostKind = kind[Host]{"host", "hosts", store.BucketHosts,
		func(h Host) string { return h.Name },
		func(h Host) string { return fmt.Sprintf("host %q", h.Name) },
		func(h Host) Owner { return h.Owner },
		func(s *Set) *[]Host { return &s.Hosts }}
	recordKind = kind[Record]{"record", "records", store.BucketRecords,
		Record.ID,
		func(r Record) string { return fmt.Sprintf("record %s %s %s (id %s)", r.Name, r.Type, r.Value, r.ID()) },
		func(r Record) Owner { return r.Owner },
		func(s *Set) *[]Record { return &s.Records }}
)

func (k kind[T]) describe(key string) string { return fmt.Sprintf("%s %q", k.noun, key) }

// load reads every object in tx, each list in key order, with the current zones.
func (m *IPAM) load(tx *store.Tx) (Set, error) {
	m.mu.RLock()
	set := Set{Domain: m.domain, Zones: m.zones}
	m.mu.RUnlock()
	var err error
	if set.Subnets, err = store.All[Subnet](tx, store.BucketSubnets); err != nil {
		return set, err
	}
	if set.Hosts, err = store.All[Host](tx, store.BucketHosts); err != nil {
		return set, err
	}
	set.Records, err = store.All[Record](tx, store.BucketRecords)
	return set, err
}

func (s Set) clone() Set {
	s.Subnets, s.Hosts, s.Records = slices.Clone(s.Subnets), slices.Clone(s.Hosts), slices.Clone(s.Records)
	return s
}

func find[T any](k kind[T], set *Set, key string) (T, bool) {
	for _, v := range *k.list(set) {
		if k.key(v) == key {
			return v, true
		}
	}
	var zero T
	return zero, false
}

// replace checks and writes one change inside tx: the object at oldKey leaves (none
// when oldKey is ""), and v arrives (none when v is nil). It refuses the change when it
// brings a problem the set did not have, blaming the arriving object where it can.
func replace[T any](tx *store.Tx, set Set, k kind[T], oldKey string, v *T) error {
	before := set.Problems()
	next := set.clone()
	list := k.list(&next)
	if oldKey != "" {
		*list = slices.DeleteFunc(*list, func(o T) bool { return k.key(o) == oldKey })
	}
	blame := -1
	if v != nil {
		*list = append(*list, *v) // last: the checks blame the later of two objects
		blame = len(*list) - 1
	}
	if err := refusal(before, next.Problems(), k.path, blame); err != nil {
		return err
	}
	if oldKey != "" {
		if err := store.Delete(tx, k.bucket, oldKey); err != nil {
			return err
		}
	}
	if v != nil {
		return store.Put(tx, k.bucket, k.key(*v), *v)
	}
	return nil
}

// refusal returns the problems in after that were not in before as one Error. Its
// field is the first problem's, when that problem is about the object at list[index].
func refusal(before, after []Problem, list string, index int) error {
	known := map[string]bool{}
	for _, p := range before {
		known[p.Message] = true
	}
	var fresh []Problem
	for _, p := range after {
		if !known[p.Message] {
			fresh = append(fresh, p)
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	e := &Error{Kind: ErrInvalid}
	if fresh[0].Conflict {
		e.Kind = ErrConflict
	}
	if fresh[0].List == list && fresh[0].Index == index {
		e.Field = fresh[0].Field
	}
	msgs := make([]string, len(fresh))
	for i, p := range fresh {
		msgs[i] = p.Message
	}
	e.Msg = strings.Join(msgs, "; ")
	return e
}

// create adds v, owned by the API.
func create[T any](m *IPAM, k kind[T], v T) error {
	return m.store.Update(func(tx *store.Tx) error {
		set, err := m.load(tx)
		if err != nil {
			return err
		}
		if _, exists := find(k, &set, k.key(v)); exists {
			return &Error{Kind: ErrConflict, Field: "name", Msg: k.title(v) + " exists already"}
		}
		return replace(tx, set, k, "", &v)
	})
}

// update replaces the API-owned object at key with v, which keeps the key.
func update[T any](m *IPAM, k kind[T], key string, v T) error {
	if k.key(v) != key {
		return invalid("name", fmt.Sprintf("the body names %q, the URL %q: an object cannot be renamed; create the new one and delete the old", k.key(v), key))
	}
	return m.store.Update(func(tx *store.Tx) error {
		set, err := m.load(tx)
		if err != nil {
			return err
		}
		if err := changeable(m, k, &set, key); err != nil {
			return err
		}
		return replace(tx, set, k, key, &v)
	})
}

// remove deletes the API-owned object at key, after guard (when non-nil) agrees.
func remove[T any](m *IPAM, k kind[T], key string, guard func(tx *store.Tx, set Set, v T) error) error {
	return m.store.Update(func(tx *store.Tx) error {
		set, err := m.load(tx)
		if err != nil {
			return err
		}
		if err := changeable(m, k, &set, key); err != nil {
			return err
		}
		if guard != nil {
			v, _ := find(k, &set, key)
			if err := guard(tx, set, v); err != nil {
				return err
			}
		}
		return replace[T](tx, set, k, key, nil)
	})
}

// changeable says whether the API may change the object at key: it must exist and
// be the API's.
func changeable[T any](m *IPAM, k kind[T], set *Set, key string) error {
	v, ok := find(k, set, key)
	if !ok {
		return notFound(k.describe(key))
	}
	if k.owner(v) == OwnerFile {
		m.mu.RLock()
		source := m.source
		m.mu.RUnlock()
		return &Error{Kind: ErrOwnedByFile, Msg: fmt.Sprintf("%s is owned by the site file (%s): change it there and reload", k.describe(key), source)}
	}
	return nil
}

// get reads one object.
func get[T any](m *IPAM, k kind[T], key string) (T, error) {
	var v T
	err := m.store.View(func(tx *store.Tx) error {
		var ok bool
		var err error
		v, ok, err = store.Get[T](tx, k.bucket, key)
		if err == nil && !ok {
			return notFound(k.describe(key))
		}
		return err
	})
	return v, err
}

// list reads every object of a kind, in key order; none is an empty list.
func list[T any](m *IPAM, k kind[T]) ([]T, error) {
	out := []T{}
	err := m.store.View(func(tx *store.Tx) error {
		all, err := store.All[T](tx, k.bucket)
		out = append(out, all...)
		return err
	})
	return out, err
}

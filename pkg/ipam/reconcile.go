package ipam

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/infrad/infrad/pkg/store"
)

// Change is one difference a reconcile makes to the store.
type Change struct {
	Op   string `json:"op"`   // "+" added, "~" changed, "-" removed
	What string `json:"what"` // host "cp01"
}

func (c Change) String() string { return c.Op + " " + c.What }

// ReconcileError is a site file that cannot be applied because, together with the
// objects made through the API, it breaks rules. Problems blamed on a file object have
// List and Index into the file's Set; the others have an empty List, and their message
// names the API object.
type ReconcileError struct {
	Problems []Problem
}

func (e *ReconcileError) Error() string {
	msgs := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		msgs[i] = p.Message
		if p.List != "" {
			msgs[i] = p.String()
		}
	}
	return "the site file conflicts with the store: " + strings.Join(msgs, "; ")
}

// Reconcile makes the file-owned objects in the store exactly those of file (the site
// file's objects, in file order, and its domain and zones), leaving the API's objects
// alone, in one transaction. source names the file in later refusals. Nothing changes
// when the result would break a rule: the error is a *ReconcileError.
func (m *IPAM) Reconcile(source string, file Set) ([]Change, error) {
	file = fileOwned(file)
	changes, err := m.Plan(file)
	if err == nil && len(changes) > 0 {
		err = m.store.Update(func(tx *store.Tx) error {
			var err error
			if changes, err = m.plan(tx, file); err != nil {
				return err
			}
			return apply(tx, file)
		})
	}
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.domain, m.zones, m.source = file.Domain, file.Zones, source
	m.mu.Unlock()
	return changes, nil
}

// Plan says what Reconcile would change, changing nothing.
func (m *IPAM) Plan(file Set) ([]Change, error) {
	file = fileOwned(file)
	var changes []Change
	err := m.store.View(func(tx *store.Tx) error {
		var err error
		changes, err = m.plan(tx, file)
		return err
	})
	return changes, err
}

// fileOwned returns a copy of s with every object owned by the site file.
func fileOwned(s Set) Set {
	s = s.clone()
	for i := range s.Subnets {
		s.Subnets[i].Owner = OwnerFile
	}
	for i := range s.Hosts {
		s.Hosts[i].Owner = OwnerFile
	}
	for i := range s.Records {
		s.Records[i].Owner = OwnerFile
	}
	return s
}

// planning is the state of one plan: the store's API objects followed by the file's,
// the changes found so far, and the problems.
type planning struct {
	merged   Set
	apiCount map[string]int // per list: how many API objects come first in merged
	changes  []Change
	problems []Problem
}

// plan checks file against the API's objects in tx and lists the changes it brings.
func (m *IPAM) plan(tx *store.Tx, file Set) ([]Change, error) {
	cur, err := m.load(tx)
	if err != nil {
		return nil, err
	}
	p := &planning{merged: Set{Domain: file.Domain, Zones: file.Zones}, apiCount: map[string]int{}}
	mergeKind(p, subnetKind, &cur, &file)
	mergeKind(p, hostKind, &cur, &file)
	mergeKind(p, recordKind, &cur, &file)

	// The API's objects come first in merged, so the checks blame the file's.
	for _, pr := range p.merged.Problems() {
		if n := p.apiCount[pr.List]; pr.Index >= n {
			pr.Index -= n
		} else {
			pr.Message = "an object made through the API: " + pr.Message
			pr.List, pr.Index, pr.Field = "", 0, ""
		}
		p.problems = append(p.problems, pr)
	}
	if err := orphanLeases(tx, p); err != nil {
		return nil, err
	}
	if len(p.problems) > 0 {
		return nil, &ReconcileError{Problems: p.problems}
	}
	return p.changes, nil
}

// mergeKind adds the API's objects of one kind from cur, then the file's, to the
// plan, and compares the file's with the file-owned ones in cur.
func mergeKind[T any](p *planning, k kind[T], cur, file *Set) {
	owned := map[string]T{}
	api := map[string]bool{}
	out := k.list(&p.merged)
	for _, v := range *k.list(cur) {
		if k.owner(v) == OwnerFile {
			owned[k.key(v)] = v
		} else {
			api[k.key(v)] = true
			*out = append(*out, v)
		}
	}
	p.apiCount[k.path] = len(*out)
	inFile := map[string]bool{}
	for i, v := range *k.list(file) {
		key := k.key(v)
		inFile[key] = true
		if api[key] {
			p.problems = append(p.problems, Problem{List: k.path, Index: i, Conflict: true,
				Message: k.title(v) + " exists already, made through the API: delete it there, or rename it here"})
		}
		if old, ok := owned[key]; !ok {
			p.changes = append(p.changes, Change{"+", k.title(v)})
		} else if !sameJSON(old, v) {
			p.changes = append(p.changes, Change{"~", k.title(v)})
		}
		*out = append(*out, v)
	}
	for _, v := range *k.list(cur) {
		if k.owner(v) == OwnerFile && !inFile[k.key(v)] {
			p.changes = append(p.changes, Change{"-", k.title(v)})
		}
	}
}

// orphanLeases refuses a file that would leave a DHCP lease in no subnet.
func orphanLeases(tx *store.Tx, p *planning) error {
	leases, err := store.All[Lease](tx, store.BucketLeases)
	if err != nil {
		return err
	}
	for _, l := range leases {
		if _, ok := p.merged.subnetOf(l.IP); !ok {
			p.problems = append(p.problems, Problem{Conflict: true,
				Message: fmt.Sprintf("the DHCP lease of %s (%s) would be in no subnet: keep its subnet in the file, or release the lease first", l.IP, l.MAC)})
		}
	}
	return nil
}

// apply writes file's objects as the file-owned ones, removing the file-owned objects
// it no longer has.
func apply(tx *store.Tx, file Set) error {
	if err := applyKind(tx, subnetKind, file); err != nil {
		return err
	}
	if err := applyKind(tx, hostKind, file); err != nil {
		return err
	}
	return applyKind(tx, recordKind, file)
}

func applyKind[T any](tx *store.Tx, k kind[T], file Set) error {
	cur, err := store.All[T](tx, k.bucket)
	if err != nil {
		return err
	}
	for _, v := range cur {
		if k.owner(v) == OwnerFile {
			if err := store.Delete(tx, k.bucket, k.key(v)); err != nil {
				return err
			}
		}
	}
	for _, v := range *k.list(&file) {
		if err := store.Put(tx, k.bucket, k.key(v), v); err != nil {
			return err
		}
	}
	return nil
}

func sameJSON(a, b any) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errA == nil && errB == nil && bytes.Equal(ja, jb)
}

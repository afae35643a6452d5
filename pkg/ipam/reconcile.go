package ipam

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/infrad/infrad/pkg/site"
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
	Problems []site.Problem
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

// Reconcile makes the file-owned objects exactly those of File (the site file's
// objects, in file order, and its domain and zones), leaving the API's objects alone.
// Source names the file in later refusals. Nothing changes when the result would
// break a rule: the error is a *ReconcileError. Its result is the []Change it made.
type Reconcile struct {
	Stamp
	Source string   `json:"source"`
	File   site.Set `json:"file"`
}

func (c Reconcile) apply(t *txn) (any, error) {
	file := fileOwned(t.m, c.File)
	changes, err := plan(t.m, file)
	if err != nil {
		return nil, err
	}
	sh := &Shape{Domain: file.Domain, Zones: file.Zones, Source: c.Source, Digest: FileDigest(c.Source, c.File), Changes: file.Changes, DNS: file.DNS,
		DHCPServers: t.m.shape.DHCPServers, Grants: t.m.shape.Grants, Boot: file.Boot}
	for _, sn := range t.m.shape.Subnets {
		if sn.Owner != site.OwnerFile {
			sh.Subnets = append(sh.Subnets, sn)
		}
	}
	sh.Subnets = append(sh.Subnets, file.Subnets...)
	if !sameJSON(sh, t.m.shape) {
		if old := t.m.shape.DNS; !sameJSON(old, sh.DNS) {
			before, _ := json.Marshal(old)
			after, _ := json.Marshal(sh.DNS)
			t.noteExtra(ObjectChange{Kind: "settings", Key: "dns", Op: "update", Before: before, After: after})
		}
		t.setShape(sh)
	}
	inFile := map[string]bool{}
	for _, h := range file.Hosts {
		inFile[h.Name] = true
		if old, ok := t.m.Host(h.Name); !ok || !sameJSON(old, h) {
			t.putHost(h)
		}
	}
	for _, h := range t.m.Hosts() {
		if h.Owner == site.OwnerFile && !inFile[h.Name] {
			t.deleteHost(h.Name)
		}
	}
	inFile = map[string]bool{}
	for _, r := range file.Records {
		inFile[r.ID()] = true
		if old, ok := t.m.Record(r.ID()); !ok || !sameJSON(old, r) {
			if err := t.putRecord(r); err != nil {
				return nil, err
			}
		}
	}
	for _, r := range t.m.Records() {
		if r.Owner == site.OwnerFile && !inFile[r.ID()] {
			t.deleteRecord(r.ID())
		}
	}
	return changes, nil
}

// Reconcile applies the site file's objects; see the command Reconcile.
func (m *IPAM) Reconcile(source string, file site.Set) ([]Change, error) {
	res, err := m.Apply(context.Background(), Reconcile{Stamp: Stamp{At: m.now()}, Source: source, File: file})
	if err != nil {
		return nil, err
	}
	return res.([]Change), nil
}

// reconcileFormat is part of every FileDigest: raise it when Reconcile comes to store
// something else for the same file, so that each store reconciles once more.
const reconcileFormat = 3 // 2: the zones' settings (Set.DNS); 3: their service names

// FileDigest sums up what Reconcile(source, file) would be given. The model keeps the
// digest of the last file it applied (Shape.Digest): a box that starts with the same
// file again skips the reconcile, which reads and checks the whole site.
func FileDigest(source string, file site.Set) string {
	h := sha256.New()
	json.NewEncoder(h).Encode(struct {
		Format int      `json:"format"`
		Source string   `json:"source"`
		File   site.Set `json:"file"`
	}{reconcileFormat, source, file})
	return hex.EncodeToString(h.Sum(nil))
}

// Plan says what Reconcile would change, changing nothing.
func (m *IPAM) Plan(file site.Set) ([]Change, error) {
	return plan(m.Model(), fileOwned(m.Model(), file))
}

// fileOwned returns a copy of s with every object owned by the site file.
func fileOwned(m *Model, s site.Set) site.Set {
	s.Subnets, s.Hosts, s.Records = slices.Clone(s.Subnets), slices.Clone(s.Hosts), slices.Clone(s.Records)
	for i := range s.Subnets {
		s.Subnets[i].Owner = site.OwnerFile
	}
	for i := range s.Hosts {
		s.Hosts[i].Owner = site.OwnerFile
		if old, ok := m.Host(s.Hosts[i].Name); ok {
			s.Hosts[i].Booted = keptBooted(old, s.Hosts[i])
		}
	}
	for i := range s.Records {
		s.Records[i].Owner = site.OwnerFile
	}
	return s
}

// keptBooted is when h, replacing old, has booted: when old did, unless h boots
// otherwise (another profile, MAC or boot_once), which arms it again.
func keptBooted(old, h site.Host) time.Time {
	if old.Boot == h.Boot && old.BootOnce == h.BootOnce && old.MAC == h.MAC {
		return old.Booted
	}
	return time.Time{}
}

// planning is the state of one plan: the store's API objects followed by the file's,
// the changes found so far, and the problems.
type planning struct {
	merged   site.Set
	apiCount map[string]int // per list: how many API objects come first in merged
	changes  []Change
	problems []site.Problem
}

// plan checks file against the API's objects in m and lists the changes it brings.
func plan(m *Model, file site.Set) ([]Change, error) {
	cur := m.Set()
	p := &planning{merged: site.Set{Domain: file.Domain, Zones: file.Zones, Boot: file.Boot}, apiCount: map[string]int{}}
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
	for _, l := range m.Leases() {
		if _, ok := site.LeaseHome(p.merged.Subnets, l.IP, l.Length); !ok {
			p.problems = append(p.problems, site.Problem{Conflict: true,
				Message: fmt.Sprintf("the DHCP lease of %s (%s) would be in no subnet: keep its subnet in the file, or release the lease first", l.Name(), l.holder())})
		}
	}
	if len(p.problems) > 0 {
		return nil, &ReconcileError{Problems: p.problems}
	}
	return p.changes, nil
}

// mergeKind adds the API's objects of one kind from cur, then the file's, to the
// plan, and compares the file's with the file-owned ones in cur.
func mergeKind[T any](p *planning, k kind[T], cur, file *site.Set) {
	owned := map[string]T{}
	api := map[string]bool{}
	out := k.list(&p.merged)
	for _, v := range *k.list(cur) {
		if k.owner(v) == site.OwnerFile {
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
			p.problems = append(p.problems, site.Problem{List: k.path, Index: i, Conflict: true,
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
		if k.owner(v) == site.OwnerFile && !inFile[k.key(v)] {
			p.changes = append(p.changes, Change{"-", k.title(v)})
		}
	}
}

func sameJSON(a, b any) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errA == nil && errB == nil && bytes.Equal(ja, jb)
}

// kind describes one sort of stored object to the generic change path below.
type kind[T any] struct {
	noun  string // "host", in messages
	path  string // its list in a Set and in the site file: "hosts"
	key   func(T) string
	title func(T) string // names an object in messages: host "cp01"
	owner func(T) site.Owner
	list  func(*site.Set) *[]T
}

var (
	subnetKind = kind[site.Subnet]{"subnet", "subnets",
		func(s site.Subnet) string { return s.Name },
		func(s site.Subnet) string { return fmt.Sprintf("subnet %q", s.Name) },
		func(s site.Subnet) site.Owner { return s.Owner },
		func(s *site.Set) *[]site.Subnet { return &s.Subnets }}
	hostKind = kind[site.Host]{"host", "hosts",
		func(h site.Host) string { return h.Name },
		func(h site.Host) string { return fmt.Sprintf("host %q", h.Name) },
		func(h site.Host) site.Owner { return h.Owner },
		func(s *site.Set) *[]site.Host { return &s.Hosts }}
	recordKind = kind[site.Record]{"record", "records",
		site.Record.ID,
		func(r site.Record) string {
			return fmt.Sprintf("record %s %s %s (id %s)", r.Name, r.Type, r.Value, r.ID())
		},
		func(r site.Record) site.Owner { return r.Owner },
		func(s *site.Set) *[]site.Record { return &s.Records }}
)

package ipam

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/infrad/infrad/pkg/site"
	"github.com/miekg/dns"
)

// UpdateRecords is an RFC 2136 UPDATE of Zone: its prerequisites (§3.2) are checked
// against the working model, and its changes (§3.4) applied, in the one transaction
// that writes them, so two updates whose prerequisites exclude each other cannot both
// succeed. Added records are the API's; a change at a host's or a lease's name, or a
// deletion matching a record of the site file, refuses the whole update. Deleting
// what is not there is not an error (§3.4.2).
type UpdateRecords struct {
	Stamp
	Zone    site.Name      `json:"zone"`
	Prereqs []Prereq       `json:"prereqs,omitempty"`
	Changes []RecordChange `json:"changes"`
}

// Prereq is one RR of the prerequisite section: Class ANY asks that the name (Type
// ANY) or RRset exists, NONE that it does not, IN that the RRset is exactly the
// values given by the IN prerequisites of that name and type together.
type Prereq struct {
	Name  site.Name `json:"name"`
	Class string    `json:"class"` // ANY, NONE or IN
	Type  string    `json:"type"`  // a type, or ANY
	Value string    `json:"value,omitempty"`
}

// RecordChange is one change an RFC 2136 update asks for: an addition, or a deletion
// of the records at Name that match Type and Value (empty: any).
type RecordChange struct {
	Add   bool      `json:"add,omitempty"`
	Name  site.Name `json:"name"`
	Type  string    `json:"type,omitempty"`  // "" deletes every type (delete only)
	Value string    `json:"value,omitempty"` // RDATA in presentation form; "" deletes every value (delete only)
	TTL   uint32    `json:"ttl,omitempty"`
}

// PrereqError is an update whose prerequisites do not hold: Rcode is the RFC 2136
// response code (NXDOMAIN, YXDOMAIN, NXRRSET, YXRRSET).
type PrereqError struct {
	Rcode string
	Name  site.Name
}

func (e *PrereqError) Error() string {
	return fmt.Sprintf("prerequisite on %s does not hold (%s)", e.Name, e.Rcode)
}

func (c UpdateRecords) apply(t *txn) (any, error) {
	if err := t.prerequisites(c.Prereqs); err != nil {
		return nil, err
	}
	for _, ch := range c.Changes {
		if owner := t.m.derivedOwner(ch.Name, ch.Type); owner != "" {
			return nil, &Error{Kind: ErrConflict, Msg: fmt.Sprintf("%s belongs to %s: its records follow from it, and updates cannot change them", ch.Name, owner)}
		}
		if !ch.Add {
			if err := t.deleteMatching(ch); err != nil {
				return nil, err
			}
			continue
		}
		rec, err := site.ParseRecord(ch.Name, ch.Type, ch.Value, &ch.TTL, t.m.shape.Domain) // an update's TTL is its own, 0 too
		if err != nil {
			return nil, invalid("", err.Error())
		}
		rec.Owner = site.OwnerAPI
		if t.ignored(rec) {
			continue
		}
		old, exists := t.m.Record(rec.ID())
		if exists && (old.Owner == site.OwnerFile || (old.TTL != nil && *old.TTL == ch.TTL)) {
			continue // already there, as RFC 2136 §3.4.2.2 allows
		}
		oldID := ""
		if exists {
			oldID = old.ID()
		}
		if err := t.checkRecord(oldID, &rec); err != nil {
			return nil, err
		}
		if err := t.putRecord(rec); err != nil {
			return nil, err
		}
	}
	return len(c.Changes), nil
}

// ignored applies RFC 2136 §3.4.2.2 to an added record, as BIND does: a CNAME
// replaces the CNAME at its name (ignored when that CNAME is the site file's, which
// an update cannot change); a CNAME beside other records, or other data beside a
// CNAME, is ignored.
func (t *txn) ignored(r site.Record) bool {
	for _, id := range t.recordIDsAt(r.Name) {
		o, _ := t.m.Record(id)
		switch {
		case r.Type == "CNAME" && o.Type == "CNAME":
			if o.Owner == site.OwnerFile {
				return true
			}
			if o.ID() != r.ID() {
				t.deleteRecord(id)
			}
		case r.Type == "CNAME" || o.Type == "CNAME":
			return true
		}
	}
	return false
}

func (t *txn) recordIDsAt(name site.Name) []string {
	ids, _ := t.m.recordsAt.Get(name)
	return slices.Clone(ids)
}

// deleteMatching removes the API-owned records c matches. A lease whose name or
// address record c covers loses its name: the operator's word wins over the client's.
func (t *txn) deleteMatching(c RecordChange) error {
	for _, id := range t.recordIDsAt(c.Name) {
		r, _ := t.m.Record(id)
		if (c.Type != "" && r.Type != c.Type) || (c.Value != "" && !sameRdata(r, c.Value)) {
			continue
		}
		if r.Owner == site.OwnerFile {
			return &Error{Kind: ErrOwnedByFile, Msg: recordTitle(r) + " is owned by the site file"}
		}
		t.deleteRecord(id)
	}
	if c.Value == "" {
		t.takeLeaseName(c.Name, c.Type == "" || c.Type == "A" || c.Type == "AAAA", c.Type == "" || c.Type == "PTR")
	}
	return nil
}

// sameRdata compares a record's value with RDATA from the wire, both canonical.
func sameRdata(r site.Record, value string) bool {
	return strings.EqualFold(r.Value, value)
}

// prerequisites checks RFC 2136 §3.2 against the working model, reading each name's
// RRsets as DNS answers them (Model.Node). A name is in use when it has an RRset:
// an empty non-terminal is not (as BIND has it).
func (t *txn) prerequisites(prereqs []Prereq) error {
	want := map[[2]string][]string{} // name, type → values, for the value-dependent ones
	for _, p := range prereqs {
		sets := t.rrsets(p.Name)
		fail := ""
		switch {
		case p.Class == "ANY" && p.Type == "ANY" && len(sets) == 0:
			fail = "NXDOMAIN"
		case p.Class == "ANY" && p.Type != "ANY" && len(sets[p.Type]) == 0:
			fail = "NXRRSET"
		case p.Class == "NONE" && p.Type == "ANY" && len(sets) > 0:
			fail = "YXDOMAIN"
		case p.Class == "NONE" && p.Type != "ANY" && len(sets[p.Type]) > 0:
			fail = "YXRRSET"
		case p.Class == "IN":
			k := [2]string{string(p.Name), p.Type}
			want[k] = append(want[k], strings.ToLower(p.Value))
		}
		if fail != "" {
			return &PrereqError{Rcode: fail, Name: p.Name}
		}
	}
	for k, values := range want {
		have := t.rrsets(site.Name(k[0]))[k[1]]
		for i := range have {
			have[i] = strings.ToLower(have[i])
		}
		slices.Sort(have)
		slices.Sort(values)
		if !slices.Equal(slices.Compact(have), slices.Compact(values)) {
			return &PrereqError{Rcode: "NXRRSET", Name: site.Name(k[0])}
		}
	}
	return nil
}

// rrsets are the RRsets DNS answers at name, as type → RDATA values.
func (t *txn) rrsets(name site.Name) map[string][]string {
	n, _ := t.m.Node(string(name))
	sets := map[string][]string{}
	for typ, rrs := range n {
		for _, rr := range rrs {
			sets[dns.TypeToString[typ]] = append(sets[dns.TypeToString[typ]], strings.TrimPrefix(rr.String(), rr.Header().String()))
		}
	}
	return sets
}

// Update applies an RFC 2136 update (see UpdateRecords).
func (m *IPAM) Update(ctx context.Context, zone site.Name, prereqs []Prereq, changes []RecordChange) error {
	_, err := m.Apply(ctx, UpdateRecords{Stamp: m.stampFor(ctx), Zone: zone, Prereqs: prereqs, Changes: changes})
	return err
}

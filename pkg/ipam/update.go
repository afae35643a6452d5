package ipam

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

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
	Zone    Name           `json:"zone"`
	Prereqs []Prereq       `json:"prereqs,omitempty"`
	Changes []RecordChange `json:"changes"`
}

// Prereq is one RR of the prerequisite section: Class ANY asks that the name (Type
// ANY) or RRset exists, NONE that it does not, IN that the RRset is exactly the
// values given by the IN prerequisites of that name and type together.
type Prereq struct {
	Name  Name   `json:"name"`
	Class string `json:"class"` // ANY, NONE or IN
	Type  string `json:"type"`  // a type, or ANY
	Value string `json:"value,omitempty"`
}

// RecordChange is one change an RFC 2136 update asks for: an addition, or a deletion
// of the records at Name that match Type and Value (empty: any).
type RecordChange struct {
	Add   bool   `json:"add,omitempty"`
	Name  Name   `json:"name"`
	Type  string `json:"type,omitempty"`  // "" deletes every type (delete only)
	Value string `json:"value,omitempty"` // RDATA in presentation form; "" deletes every value (delete only)
	TTL   uint32 `json:"ttl,omitempty"`
}

// PrereqError is an update whose prerequisites do not hold: Rcode is the RFC 2136
// response code (NXDOMAIN, YXDOMAIN, NXRRSET, YXRRSET).
type PrereqError struct {
	Rcode string
	Name  Name
}

func (e *PrereqError) Error() string {
	return fmt.Sprintf("prerequisite on %s does not hold (%s)", e.Name, e.Rcode)
}

func (c UpdateRecords) apply(t *txn) (any, error) {
	if err := t.prerequisites(c.Zone, c.Prereqs); err != nil {
		return nil, err
	}
	for _, ch := range c.Changes {
		if owner := t.derivedOwner(ch.Name); owner != "" {
			return nil, &Error{Kind: ErrConflict, Msg: fmt.Sprintf("%s belongs to %s: its records follow from it, and updates cannot change them", ch.Name, owner)}
		}
		if !ch.Add {
			if err := t.deleteMatching(ch); err != nil {
				return nil, err
			}
			continue
		}
		rec, err := ParseRecord(ch.Name, ch.Type, ch.Value, &ch.TTL, t.m.shape.Domain) // an update's TTL is its own, 0 too
		if err != nil {
			return nil, invalid("", err.Error())
		}
		rec.Owner = OwnerAPI
		old, exists := t.m.Record(rec.ID())
		if exists && (old.Owner == OwnerFile || (old.TTL != nil && *old.TTL == ch.TTL)) {
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

// derivedOwner names the host or lease whose records live at name, or returns "".
func (t *txn) derivedOwner(name Name) string {
	host, ok := t.m.HostnameOf(name)
	if !ok {
		return ""
	}
	if _, ok := t.m.Host(host); ok {
		return fmt.Sprintf("host %q", host)
	}
	if l, ok := t.m.LeaseNamed(host); ok {
		return "the DHCP lease of " + l.IP.String()
	}
	return ""
}

// deleteMatching removes the API-owned records c matches.
func (t *txn) deleteMatching(c RecordChange) error {
	ids, _ := t.m.recordsAt.Get(c.Name)
	for _, id := range slices.Clone(ids) {
		r, _ := t.m.Record(id)
		if (c.Type != "" && r.Type != c.Type) || (c.Value != "" && !sameRdata(r, c.Value)) {
			continue
		}
		if r.Owner == OwnerFile {
			return &Error{Kind: ErrOwnedByFile, Msg: recordTitle(r) + " is owned by the site file"}
		}
		t.deleteRecord(id)
	}
	return nil
}

// sameRdata compares a record's value with RDATA from the wire, both canonical.
func sameRdata(r Record, value string) bool {
	return strings.EqualFold(r.Value, value)
}

// prerequisites checks RFC 2136 §3.2 against the working model.
func (t *txn) prerequisites(zone Name, prereqs []Prereq) error {
	want := map[[2]string][]string{} // name, type → values, for the value-dependent ones
	for _, p := range prereqs {
		sets := t.rrsets(zone, p.Name)
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
		have := t.rrsets(zone, Name(k[0]))[k[1]]
		for i := range have {
			have[i] = strings.ToLower(have[i])
		}
		slices.Sort(have)
		slices.Sort(values)
		if !slices.Equal(slices.Compact(have), slices.Compact(values)) {
			return &PrereqError{Rcode: "NXRRSET", Name: Name(k[0])}
		}
	}
	return nil
}

// rrsets are the RRsets DNS has at name, as type → RDATA values: the records there,
// a host's or a lease's address, the PTR of a host's or lease's address, and the SOA
// and NS of the zone apex.
func (t *txn) rrsets(zone, name Name) map[string][]string {
	sets := map[string][]string{}
	for _, rr := range t.m.RecordsAt(name) {
		typ := dns.TypeToString[rr.Header().Rrtype]
		sets[typ] = append(sets[typ], strings.TrimPrefix(rr.String(), rr.Header().String()))
	}
	address := func(a netip.Addr) {
		typ := "A"
		if a.Is6() {
			typ = "AAAA"
		}
		sets[typ] = append(sets[typ], a.String())
	}
	if host, ok := t.m.HostnameOf(name); ok {
		if h, ok := t.m.Host(host); ok {
			address(h.IP)
		} else if l, ok := t.m.LeaseNamed(host); ok {
			address(l.IP)
		}
	}
	if a, ok := ReverseAddr(name); ok {
		if h, ok := t.m.HostAt(a); ok {
			sets["PTR"] = append(sets["PTR"], string(t.m.FQDN(h.Name)))
		} else if l, ok := t.m.Lease(a); ok && l.Hostname != "" {
			sets["PTR"] = append(sets["PTR"], string(t.m.FQDN(l.Hostname)))
		}
	}
	if name == zone {
		sets["SOA"] = append(sets["SOA"], "")
		sets["NS"] = append(sets["NS"], "")
	}
	return sets
}

// Update applies an RFC 2136 update (see UpdateRecords).
func (m *IPAM) Update(ctx context.Context, zone Name, prereqs []Prereq, changes []RecordChange) error {
	_, err := m.Apply(ctx, UpdateRecords{Stamp: m.stampFor(ctx), Zone: zone, Prereqs: prereqs, Changes: changes})
	return err
}

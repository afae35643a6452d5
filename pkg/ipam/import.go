package ipam

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/infrad/infrad/pkg/site"
)

// Import adds what `infrad import` translated from another tool — subnets, hosts,
// records and the clients' live leases — in one transaction: all of it, or none. Each
// object is created as the API creates one (owned by the API; one of the same name
// already there is a conflict), and each lease is committed as DHCP commits one, so
// that every rule holds as it does for them. An error names the object at fault by
// its place in the import ("hosts[3].ip").
type Import struct {
	Stamp
	Subnets []site.Subnet   `json:"subnets,omitempty"`
	Hosts   []site.Host     `json:"hosts,omitempty"`
	Records []site.Record   `json:"records,omitempty"`
	Leases  []ImportedLease `json:"leases,omitempty"`
}

// ImportedLease is a client's live lease in the tool an import comes from: infrad
// keeps it until it ends, so the client keeps its address.
type ImportedLease struct {
	MAC      site.MAC   `json:"mac"`
	IP       netip.Addr `json:"ip"`
	Hostname string     `json:"hostname,omitempty"` // sanitised
	Expires  time.Time  `json:"expires"`
}

// Imported counts what an Import made.
type Imported struct {
	Subnets int `json:"subnets"`
	Hosts   int `json:"hosts"`
	Records int `json:"records"`
	Leases  int `json:"leases"`
}

func (c Import) apply(t *txn) (any, error) {
	var res Imported
	for i, sn := range c.Subnets {
		if _, err := (PutSubnet{Stamp: c.Stamp, Subnet: sn, Create: true}).apply(t); err != nil {
			return nil, importedAt("subnets", i, err)
		}
		res.Subnets++
	}
	for i, h := range c.Hosts {
		if _, err := (PutHost{Stamp: c.Stamp, Host: h, Create: true}).apply(t); err != nil {
			return nil, importedAt("hosts", i, err)
		}
		res.Hosts++
	}
	for i, r := range c.Records {
		if _, err := (PutRecord{Stamp: c.Stamp, Record: r}).apply(t); err != nil {
			return nil, importedAt("records", i, err)
		}
		res.Records++
	}
	for i, l := range c.Leases {
		sn, ok := t.m.SubnetOf(l.IP)
		if !ok {
			return nil, importedAt("leases", i, &Error{Kind: ErrConflict, Field: "ip", Msg: l.IP.String() + " is in no subnet"})
		}
		if h, ok := t.m.HostWithMAC(l.MAC); ok && h.IP == l.IP {
			continue // the client's reservation: it needs no lease to keep its address
		}
		if _, err := (CommitLease{Stamp: c.Stamp, Subnet: sn.Name, MAC: l.MAC, IP: l.IP, Hostname: l.Hostname, Expires: l.Expires}).apply(t); err != nil {
			return nil, importedAt("leases", i, err)
		}
		res.Leases++
	}
	return res, nil
}

// importedAt places err at the import's object list[i].
func importedAt(list string, i int, err error) error {
	var e *Error
	if !errors.As(err, &e) {
		return fmt.Errorf("%s[%d]: %w", list, i, err)
	}
	field := fmt.Sprintf("%s[%d]", list, i)
	if e.Field != "" {
		field += "." + e.Field
	}
	return &Error{Kind: e.Kind, Field: field, Msg: e.Msg}
}

// ImportSpec is an import as the API takes it: the objects as written, and the leases.
type ImportSpec struct {
	Kind    string            `json:"kind"`              // what it came from: "dnsmasq", "zone", ...
	DryRun  bool              `json:"dry_run,omitempty"` // plan only
	Subnets []site.SubnetSpec `json:"subnets,omitempty"`
	Hosts   []site.HostSpec   `json:"hosts,omitempty"`
	Records []site.RecordSpec `json:"records,omitempty"`
	Leases  []LeaseSpec       `json:"leases,omitempty"`
}

// LeaseSpec is an imported lease as written.
type LeaseSpec struct {
	IP       string    `json:"ip"`
	MAC      string    `json:"mac"`
	Hostname string    `json:"hostname,omitempty"`
	Expires  time.Time `json:"expires"`
}

// ImportPlan is what an import would change and the rules it would break (a dry run),
// or what it made.
type ImportPlan struct {
	Changes  []Change        `json:"changes"`
	Problems []ImportProblem `json:"problems"`
	Imported *Imported       `json:"imported,omitempty"`
}

// ImportProblem is one rule an import breaks, at its object: "hosts[3].ip".
type ImportProblem struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

// Import checks spec and, unless it is a dry run or breaks a rule, applies it in one
// command, attributed in the change log to "import KIND" and the token that asked.
// An import that breaks a rule changes nothing: its error (ErrConflict, or
// ErrInvalid for a malformed field) names every problem.
func (m *IPAM) Import(ctx context.Context, spec ImportSpec) (ImportPlan, error) {
	if site.SanitizeHostname(spec.Kind) != spec.Kind || spec.Kind == "" {
		return ImportPlan{}, invalid("kind", fmt.Sprintf("%q is not the kind of an import, such as dnsmasq", spec.Kind))
	}
	c := Import{Stamp: m.stampFor(ctx)}
	c.By = "import " + spec.Kind
	if by := SourceOf(ctx); by != "" {
		c.By += " (" + by + ")"
	}
	var plan ImportPlan
	malformed := func(list string, i int, errs []site.FieldError) {
		for _, e := range errs {
			plan.Problems = append(plan.Problems, ImportProblem{fmt.Sprintf("%s[%d].%s", list, i, e.Field), e.Msg})
		}
	}
	for i, s := range spec.Subnets {
		sn, errs := s.Parse()
		malformed("subnets", i, errs)
		c.Subnets = append(c.Subnets, sn)
	}
	for i, s := range spec.Hosts {
		h, errs := s.Parse()
		malformed("hosts", i, errs)
		c.Hosts = append(c.Hosts, h)
	}
	domain := m.Model().Domain()
	for i, s := range spec.Records {
		if domain == "" {
			plan.Problems = append(plan.Problems, ImportProblem{fmt.Sprintf("records[%d]", i), "no site file has been loaded, so there is no zone to hold records"})
			break
		}
		r, errs := s.Parse(domain)
		malformed("records", i, errs)
		c.Records = append(c.Records, r)
	}
	for i, s := range spec.Leases {
		var errs []site.FieldError
		ip, err := netip.ParseAddr(s.IP)
		if err != nil || !ip.Is4() {
			errs = append(errs, site.FieldError{Field: "ip", Msg: fmt.Sprintf("%q is not an IPv4 address", s.IP)})
		}
		mac, err := site.ParseMAC(s.MAC)
		if err != nil {
			errs = append(errs, site.FieldError{Field: "mac", Msg: err.Error()})
		}
		malformed("leases", i, errs)
		c.Leases = append(c.Leases, ImportedLease{MAC: mac, IP: ip, Hostname: site.SanitizeHostname(s.Hostname), Expires: s.Expires.UTC()})
	}
	if len(plan.Problems) > 0 {
		return plan, importError(spec.DryRun, ErrInvalid, plan.Problems)
	}
	changes, problems := m.PlanImport(c)
	plan.Changes = changes
	for _, p := range problems {
		path := p.Path()
		if p.List == "" {
			path = ""
		}
		plan.Problems = append(plan.Problems, ImportProblem{path, p.Message})
	}
	if len(plan.Problems) > 0 || spec.DryRun {
		return plan, importError(spec.DryRun, ErrConflict, plan.Problems)
	}
	done, err := result[Imported](m.Apply(ctx, c))
	if err != nil {
		return plan, err
	}
	plan.Imported = &done
	return plan, nil
}

// importError is an import's refusal, naming every problem; none for a dry run,
// whose plan lists them.
func importError(dryRun bool, kind error, problems []ImportProblem) error {
	if dryRun || len(problems) == 0 {
		return nil
	}
	msgs := make([]string, len(problems))
	for i, p := range problems {
		msgs[i] = strings.TrimPrefix(p.Path+": "+p.Message, ": ")
	}
	return &Error{Kind: kind, Msg: "the import changes nothing: " + strings.Join(msgs, "; ")}
}

// PlanImport says what Import would change and every rule it would break, each
// placed at the import's object ("hosts[3].ip"), changing nothing. The checks are
// the site's rules over the store's objects and the import's together; Import itself
// checks again as it writes.
func (m *IPAM) PlanImport(c Import) ([]Change, []site.Problem) {
	model := m.Model()
	merged := model.Set()
	var problems []site.Problem
	var changes []Change
	exists := func(list string, i int, title string) {
		problems = append(problems, site.Problem{List: list, Index: i, Field: "name", Conflict: true, Message: title + " exists already"})
	}
	n := map[string]int{"subnets": len(merged.Subnets), "hosts": len(merged.Hosts), "records": len(merged.Records)}
	for i, sn := range c.Subnets {
		if _, ok := model.Subnet(sn.Name); ok {
			exists("subnets", i, subnetKind.title(sn))
		}
		changes = append(changes, Change{"+", subnetKind.title(sn)})
		merged.Subnets = append(merged.Subnets, sn)
	}
	for i, h := range c.Hosts {
		if _, ok := model.Host(h.Name); ok {
			exists("hosts", i, hostKind.title(h))
		}
		changes = append(changes, Change{"+", hostKind.title(h)})
		merged.Hosts = append(merged.Hosts, h)
	}
	for i, r := range c.Records {
		if _, ok := model.Record(r.ID()); ok {
			exists("records", i, recordKind.title(r))
		}
		changes = append(changes, Change{"+", recordKind.title(r)})
		merged.Records = append(merged.Records, r)
	}
	for _, p := range merged.Problems() {
		if p.Index < n[p.List] {
			p.Message = "an object infrad holds: " + p.Message
			p.List, p.Index, p.Field = "", 0, ""
		} else {
			p.Index -= n[p.List]
		}
		problems = append(problems, p)
	}
	hostAt, hostOf := map[netip.Addr]site.Host{}, map[site.MAC]site.Host{}
	for _, h := range merged.Hosts {
		hostAt[h.IP] = h
		if !h.MAC.IsZero() {
			hostOf[h.MAC] = h
		}
	}
	for i, l := range c.Leases {
		bad := func(format string, args ...any) {
			problems = append(problems, site.Problem{List: "leases", Index: i, Field: "ip", Conflict: true, Message: fmt.Sprintf(format, args...)})
		}
		if _, ok := merged.SubnetOf(l.IP); !ok {
			bad("%s is in no subnet", l.IP)
			continue
		}
		if h, ok := hostAt[l.IP]; ok {
			if h.MAC != l.MAC {
				bad("%s is the address of host %q", l.IP, h.Name)
			}
			continue // (the client's reservation, which needs no lease)
		}
		if h, ok := hostOf[l.MAC]; ok {
			bad("%s is host %q's, reserved at %s: leave its lease of %s out", l.MAC, h.Name, h.IP, l.IP)
			continue
		}
		if held, ok := model.Lease(l.IP); ok && held.MAC != l.MAC && !held.Ended(c.At) {
			bad("%s is leased to %s until %s", l.IP, held.holder(), held.Expires.UTC().Format(time.RFC3339))
			continue
		}
		changes = append(changes, Change{"+", fmt.Sprintf("lease %s to %s until %s", l.IP, l.MAC, l.Expires.UTC().Format(time.RFC3339))})
	}
	return changes, problems
}

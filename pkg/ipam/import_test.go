package ipam

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/infrad/infrad/pkg/site"
)

// storage is an import of a second network: a subnet, two hosts, a record and a lease.
func storage(now time.Time) ImportSpec {
	return ImportSpec{Kind: "dhcpd",
		Subnets: []site.SubnetSpec{{Name: "storage", CIDR: "10.0.41.0/24", Ranges: []site.RangeSpec{{Kind: "dhcp", Start: "10.0.41.100", End: "10.0.41.199"}}}},
		Hosts:   []site.HostSpec{{Name: "nas", IP: "10.0.41.5", MAC: "52:54:00:00:41:05"}, {Name: "backup", IP: "10.0.41.6"}},
		Records: []site.RecordSpec{{Name: "files", Type: "CNAME", Value: "nas"}},
		Leases:  []LeaseSpec{{IP: "10.0.41.150", MAC: "52:54:00:00:41:50", Hostname: "Laptop_1", Expires: now.Add(time.Hour)}},
	}
}

func TestImportAppliesAllInOneChange(t *testing.T) {
	m, _ := newIPAM(t)
	ctx := WithSource(context.Background(), "token alice")
	plan, err := m.Import(ctx, storage(m.now()))
	if err != nil {
		t.Fatal(err)
	}
	if got := *plan.Imported; got != (Imported{Subnets: 1, Hosts: 2, Records: 1, Leases: 1}) {
		t.Errorf("imported %+v", got)
	}
	mod := m.Model()
	if _, ok := mod.Host("nas"); !ok {
		t.Error("host nas was not made")
	}
	if l, ok := mod.Lease(netip.MustParseAddr("10.0.41.150")); !ok || l.MAC.String() != "52:54:00:00:41:50" || l.Hostname != "laptop-1" {
		t.Errorf("the lease: got %+v, %v", l, ok)
	}
	if got := mod.PTR(netip.MustParseAddr("10.0.41.150")); got != "laptop-1.k8s.example.com." {
		t.Errorf("the imported lease's PTR: got %q", got)
	}
	log, err := m.Changes(context.Background(), ChangeFilter{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	var imports []ChangeEntry
	for _, e := range log.Changes {
		if e.Command == "Import" {
			imports = append(imports, e)
		}
	}
	if len(imports) != 1 || imports[0].Source != "import dhcpd (token alice)" || len(imports[0].Changes) != 5 {
		t.Errorf("the change log: got %+v, want one Import by \"import dhcpd (token alice)\" of five objects", imports)
	}
}

// An import that breaks a rule anywhere changes nothing, and names every problem by
// its place in the import; a dry run says the same, and changes nothing either.
func TestImportIsAllOrNothing(t *testing.T) {
	m, _ := newIPAM(t)
	spec := storage(m.now())
	spec.Hosts = append(spec.Hosts,
		site.HostSpec{Name: "cp01", IP: "10.0.41.7"},                              // a name the site has
		site.HostSpec{Name: "tv", IP: "10.0.40.10"},                               // cp01's address
		site.HostSpec{Name: "printer", IP: "10.0.41.8", MAC: "zz:zz:zz:zz:zz:zz"}, // malformed
	)
	serial := m.Model().Serial()
	_, err := m.Import(context.Background(), spec)
	wantErr(t, err, ErrInvalid, "", "hosts[4].mac", "the import changes nothing")
	spec.Hosts = spec.Hosts[:4]
	for _, dry := range []bool{true, false} {
		spec.DryRun = dry
		plan, err := m.Import(context.Background(), spec)
		var paths []string
		for _, p := range plan.Problems {
			paths = append(paths, p.Path)
		}
		if !slices.Contains(paths, "hosts[2].name") || !slices.Contains(paths, "hosts[3].ip") {
			t.Errorf("dry run %v: problems %v, want hosts[2].name and hosts[3].ip", dry, plan.Problems)
		}
		if dry && err != nil {
			t.Errorf("a dry run's problems are its plan's, not an error: %v", err)
		}
		if !dry {
			wantErr(t, err, ErrConflict, "", "hosts[2].name", "hosts[3].ip", "the import changes nothing")
		}
	}
	if _, ok := m.Model().Subnet("storage"); ok || m.Model().Serial() != serial {
		t.Error("a refused import changed the site")
	}
}

// The write path checks again: what the plan cannot see (a lease another client took
// between the plan and the import) still refuses the whole import.
func TestImportChecksAsItWrites(t *testing.T) {
	m, _ := newIPAM(t)
	now := m.now()
	c := Import{Stamp: Stamp{At: now}, Hosts: []site.Host{{Name: "tv", IP: netip.MustParseAddr("10.0.40.30")}},
		Leases: []ImportedLease{{MAC: site.MAC{0x52, 0x54, 0, 0, 0x40, 0x99}, IP: netip.MustParseAddr("10.0.40.160"), Expires: now.Add(time.Hour)}}}
	putLease(t, m, "10.0.40.160") // another client's
	_, err := m.Apply(context.Background(), c)
	wantErr(t, err, ErrConflict, "leases[0]")
	if _, ok := m.Model().Host("tv"); ok {
		t.Error("host tv of the refused import was made")
	}
}

// Two imports and an API client want the same names and addresses at once, over many
// rounds: one of each wins, whole, and no address or name is held twice.
func TestConcurrentImportsNeverCollide(t *testing.T) {
	m, _ := newIPAM(t)
	for round := range 40 {
		ip := fmt.Sprintf("10.0.40.%d", 30+round)
		mk := func(name string) ImportSpec {
			return ImportSpec{Kind: "dnsmasq", Hosts: []site.HostSpec{{Name: name, IP: ip}, {Name: fmt.Sprintf("%s-b%d", name, round), IP: fmt.Sprintf("10.0.40.%d", 130+round)}}}
		}
		var wg sync.WaitGroup
		errs := make([]error, 3)
		wg.Go(func() { _, errs[0] = m.Import(context.Background(), mk(fmt.Sprintf("a%d", round))) })
		wg.Go(func() { _, errs[1] = m.Import(context.Background(), mk(fmt.Sprintf("b%d", round))) })
		wg.Go(func() {
			_, errs[2] = m.CreateHost(context.Background(), site.HostSpec{Name: fmt.Sprintf("c%d", round), IP: ip})
		})
		wg.Wait()
		wins := 0
		for _, err := range errs {
			if err == nil {
				wins++
			}
		}
		holders := 0
		for _, h := range m.Model().Hosts() {
			if h.IP.String() == ip {
				holders++
			}
			if strings.HasSuffix(h.Name, fmt.Sprintf("-b%d", round)) && errs[0] != nil && errs[1] != nil {
				t.Errorf("round %d: host %s of a refused import was made", round, h.Name)
			}
		}
		if wins != 1 || holders != 1 {
			t.Fatalf("round %d: %d of three won (%v), %d hosts hold %s", round, wins, errs, holders, ip)
		}
	}
}

// FuzzImportSpec: any import body the API could be sent is applied whole or refused
// whole, and every invariant holds after it.
func FuzzImportSpec(f *testing.F) {
	seed, _ := json.Marshal(storage(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)))
	f.Add(seed, false)
	f.Add([]byte(`{"kind":"x","hosts":[{"name":"cp01","ip":"10.0.40.77"}],"leases":[{"ip":"10.0.40.150","mac":"52:54:00:00:40:10","expires":"2027-01-01T00:00:00Z"}]}`), true)
	f.Fuzz(func(t *testing.T, body []byte, dry bool) {
		var spec ImportSpec
		if json.Unmarshal(body, &spec) != nil {
			return
		}
		m, st := newIPAM(t)
		before := m.Model().Serial()
		spec.DryRun = dry
		plan, err := m.Import(context.Background(), spec)
		switch {
		case err == nil && !dry && plan.Imported == nil:
			t.Fatal("an import applied without saying what it made")
		case (err != nil || dry) && m.Model().Serial() != before:
			t.Fatalf("a refused or dry import changed the site: %v", err)
		}
		invariants(t, m.Model(), st, m.now())
	})
}

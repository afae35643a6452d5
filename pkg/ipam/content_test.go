package ipam

import (
	"context"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/infrad/infrad/internal/fixture"
	"github.com/infrad/infrad/pkg/site"
	"github.com/miekg/dns"
)

// node is what DNS answers at name, as "TYPE rdata" lines.
func node(m *Model, name string) []string {
	n, _ := m.Node(name)
	var out []string
	for _, rrs := range n {
		for _, rr := range rrs {
			out = append(out, dns.TypeToString[rr.Header().Rrtype]+" "+rdataOf(rr))
		}
	}
	slices.Sort(out)
	return out
}

func rdataOf(rr dns.RR) string { return rr.String()[len(rr.Header().String()):] }

// TestOperatorRecordTakesALeaseName: a client calls itself www, then the operator
// makes a record www: the name is the record's alone, in the write that made it, and
// the change log says the lease lost it. A PTR record at a lease's address likewise.
func TestOperatorRecordTakesALeaseName(t *testing.T) {
	m, _ := newIPAM(t)
	at := time.Now()
	commitLease(t, m, "52:54:00:aa:00:01", "10.0.40.150", "www", at)
	commitLease(t, m, "52:54:00:aa:00:02", "10.0.40.151", "laptop", at)
	if got := node(m.Model(), "www.k8s.example.com."); !slices.Equal(got, []string{"A 10.0.40.150"}) {
		t.Fatalf("before the record: www answers %q", got)
	}
	if _, err := m.CreateRecord(context.Background(), site.RecordSpec{Name: "www", Type: "A", Value: "10.0.40.100"}); err != nil {
		t.Fatal(err)
	}
	if got := node(m.Model(), "www.k8s.example.com."); !slices.Equal(got, []string{"A 10.0.40.100"}) {
		t.Errorf("www answers %q, want the operator's record alone", got)
	}
	if l, _ := m.Model().Lease(netip.MustParseAddr("10.0.40.150")); l.Hostname != "" {
		t.Errorf("the lease kept its name %q", l.Hostname)
	}
	if got := node(m.Model(), "150.40.0.10.in-addr.arpa."); len(got) != 0 {
		t.Errorf("the lease's address still points at a name: %q", got)
	}
	last := changesOf(t, m, ChangeFilter{})[0]
	if !slices.ContainsFunc(last.Changes, func(o ObjectChange) bool { return o.Kind == "lease" && o.Op == "update" }) {
		t.Errorf("the change log's entry for the record does not show the lease's change: %+v", last.Changes)
	}

	if _, err := m.CreateRecord(context.Background(), site.RecordSpec{Name: "151.40.0.10.in-addr.arpa.", Type: "PTR", Value: "printer"}); err != nil {
		t.Fatal(err)
	}
	if got := node(m.Model(), "151.40.0.10.in-addr.arpa."); !slices.Equal(got, []string{"PTR printer.k8s.example.com."}) {
		t.Errorf("the address answers %q, want the operator's PTR alone", got)
	}
	if got := node(m.Model(), "laptop.k8s.example.com."); len(got) != 0 {
		t.Errorf("laptop still answers %q", got)
	}
	invariants(t, m.Model(), nil, at)
}

// TestClientClaimsNoOperatorName: a client asking for a record's name, a name whose
// address has a PTR record, or the glue name gets its address without the name; a
// reserved client is known by its host's name alone.
func TestClientClaimsNoOperatorName(t *testing.T) {
	m, _ := newIPAM(t)
	at := time.Now()
	if _, err := m.CreateRecord(context.Background(), site.RecordSpec{Name: "152.40.0.10.in-addr.arpa.", Type: "PTR", Value: "printer"}); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ mac, ip, name, keeper string }{
		{"52:54:00:aa:00:01", "10.0.40.150", "registry", "the records at registry.k8s.example.com."},
		{"52:54:00:aa:00:02", "10.0.40.152", "scanner", "the records at 152.40.0.10.in-addr.arpa."},
		{"52:54:00:00:40:10", "10.0.40.10", "my-own-name", ""}, // cp01's reservation
	}
	for _, tc := range tests {
		res, err := m.Apply(context.Background(), CommitLease{Stamp: Stamp{At: at}, Subnet: "vm", MAC: fixture.MAC(t, tc.mac), IP: netip.MustParseAddr(tc.ip), Hostname: tc.name, Expires: at.Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if c := res.(Committed); c.Hostname != "" || c.NameKeptBy != tc.keeper {
			t.Errorf("%s asking for %q: got name %q kept by %q, want none, kept by %q", tc.mac, tc.name, c.Hostname, c.NameKeptBy, tc.keeper)
		}
	}
	if got := node(m.Model(), "my-own-name.k8s.example.com."); len(got) != 0 {
		t.Errorf("a reserved client's own name answers %q", got)
	}
	if got := node(m.Model(), "10.40.0.10.in-addr.arpa."); !slices.Equal(got, []string{"PTR cp01.k8s.example.com."}) {
		t.Errorf("cp01's address answers %q", got)
	}
	invariants(t, m.Model(), nil, at)
}

// TestGlueIsOwned: with the name server at an address no host has, ns.<domain> and
// that address's reverse name are infrad's: a host called ns, a record at ns, a PTR
// at the address are refused, naming the name server. A host at the address makes it
// the name server, and the glue goes.
func TestGlueIsOwned(t *testing.T) {
	set := fixture.Site(t)
	set.DNS = site.ZoneSettings{TTL: 120, NameServers: []netip.Addr{netip.MustParseAddr("10.0.40.2")}}
	m := newOn(t, openStore(t, t.TempDir()+"/infrad.db"))
	if _, err := m.Reconcile("site.yaml", set); err != nil {
		t.Fatal(err)
	}
	if got := node(m.Model(), "ns.k8s.example.com."); !slices.Equal(got, []string{"A 10.0.40.2"}) {
		t.Fatalf("the glue name answers %q", got)
	}
	if got := node(m.Model(), "k8s.example.com."); !slices.Contains(got, "NS ns.k8s.example.com.") {
		t.Fatalf("the apex answers %q", got)
	}
	ctx := context.Background()
	_, err := m.CreateHost(ctx, site.HostSpec{Name: "ns", IP: "10.0.40.30"})
	wantErr(t, err, ErrConflict, "name", "zones' name server", "10.0.40.2")
	_, err = m.CreateRecord(ctx, site.RecordSpec{Name: "ns", Type: "A", Value: "10.0.40.66"})
	wantErr(t, err, ErrConflict, "", "name server")
	_, err = m.CreateRecord(ctx, site.RecordSpec{Name: "2.40.0.10.in-addr.arpa.", Type: "PTR", Value: "evil"})
	wantErr(t, err, ErrConflict, "", "name server")
	err = m.Update(ctx, "k8s.example.com.", nil, []RecordChange{{Add: true, Name: "ns.k8s.example.com.", Type: "AAAA", Value: "fd00::66", TTL: 60}})
	wantErr(t, err, ErrConflict, "", "name server")
	if _, err := m.CreateHost(ctx, site.HostSpec{Name: "infra1", IP: "10.0.40.2"}); err != nil {
		t.Fatal(err)
	}
	if got := node(m.Model(), "k8s.example.com."); !slices.Contains(got, "NS infra1.k8s.example.com.") || slices.Contains(got, "NS ns.k8s.example.com.") {
		t.Errorf("with a host at the name server's address the apex answers %q", got)
	}
	if m.Model().Exists("ns.k8s.example.com.") {
		t.Errorf("the glue name stays once a host is the name server")
	}
}

// TestSettingsAreVersioned: a reload that changes the TTL or the name servers
// raises the serial, and the model kept at the old serial (what an IXFR's old side
// is made from) still answers with the old settings.
func TestSettingsAreVersioned(t *testing.T) {
	m, _ := newIPAM(t)
	set := fixture.Site(t)
	set.DNS.TTL = 300
	if _, err := m.Reconcile("site.yaml", set); err != nil {
		t.Fatal(err)
	}
	before := m.Model()
	for i, change := range []func(*site.Set){
		func(s *site.Set) { s.DNS.TTL = 60 },
		func(s *site.Set) { s.DNS.NameServers = []netip.Addr{netip.MustParseAddr("10.0.40.2")} },
	} {
		change(&set)
		if _, err := m.Reconcile("site.yaml", set); err != nil {
			t.Fatal(err)
		}
		after := m.Model()
		last := changesOf(t, m, ChangeFilter{})[0]
		if !slices.ContainsFunc(last.Changes, func(c ObjectChange) bool {
			return c.Kind == "settings" && c.Key == "dns" && string(c.Before) != string(c.After)
		}) {
			t.Errorf("change %d: the change log's entry does not show the settings: %+v", i, last.Changes)
		}
		if !serialNewer(after.Serial(), before.Serial()) {
			t.Errorf("change %d: the serial stayed %d", i, after.Serial())
		}
		old, ok := m.AtSerial(before.Serial())
		if !ok {
			t.Fatalf("change %d: no model at the old serial", i)
		}
		n, _ := old.Node("cp01.k8s.example.com.")
		if got, want := n[dns.TypeA][0].Header().Ttl, before.TTL(); got != want {
			t.Errorf("change %d: the old serial's model answers TTL %d, want %d", i, got, want)
		}
		before = after
	}
	if got := node(m.Model(), "ns.k8s.example.com."); !slices.Equal(got, []string{"A 10.0.40.2"}) {
		t.Errorf("the new name server's glue: %q", got)
	}
}

func serialNewer(a, b uint32) bool { return a != b && a-b < 1<<31 }

// TestServiceNamesAnswerTheNameServers: the names infrad hands out for itself (the
// CA's, ntp., infrad.) answer the name servers' addresses, unless the site gives one
// an address of its own; a DHCP client asking for one does not get it; other data at
// the name stands beside the derived address.
func TestServiceNamesAnswerTheNameServers(t *testing.T) {
	set := fixture.Site(t)
	set.DNS = site.ZoneSettings{NameServers: []netip.Addr{netip.MustParseAddr("10.0.40.2")},
		Services: []site.Name{"ca.k8s.example.com.", "ntp.k8s.example.com.", "infrad.k8s.example.com."}}
	set.Hosts = append(set.Hosts, site.Host{Name: "ntp", IP: netip.MustParseAddr("10.0.40.12")})
	set.Records = append(set.Records, site.Record{Name: "infrad.k8s.example.com.", Type: "CNAME", Value: "cp01.k8s.example.com."})
	m := newOn(t, openStore(t, t.TempDir()+"/infrad.db"))
	if _, err := m.Reconcile("site.yaml", set); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][]string{
		"ca.k8s.example.com.":     {"A 10.0.40.2"},
		"ntp.k8s.example.com.":    {"A 10.0.40.12"},                // the site's host
		"infrad.k8s.example.com.": {"CNAME cp01.k8s.example.com."}, // the site's record
	} {
		if got := node(m.Model(), name); !slices.Equal(got, want) {
			t.Errorf("%s answers %q, want %q", name, got, want)
		}
	}
	if !slices.Contains(m.Model().Owners("k8s.example.com."), "ca.k8s.example.com.") {
		t.Error("a transfer of the zone leaves out ca.k8s.example.com.")
	}
	at := time.Now()
	res, err := m.Apply(context.Background(), CommitLease{Stamp: Stamp{At: at}, Subnet: "vm", MAC: fixture.MAC(t, "52:54:00:00:40:99"), IP: netip.MustParseAddr("10.0.40.160"), Hostname: "ca", Expires: at.Add(time.Hour)})
	if c, ok := res.(Committed); err != nil || !ok || c.Hostname != "" || !strings.Contains(c.NameKeptBy, "infrad") {
		t.Errorf("a client asking for the CA's name: %+v, %v; want its lease without the name", res, err)
	}
	err = m.Update(context.Background(), "k8s.example.com.", nil, []RecordChange{{Add: true, Name: "ca.k8s.example.com.", Type: "TXT", Value: `"hello"`, TTL: 60}})
	if err != nil {
		t.Fatal(err)
	}
	if got := node(m.Model(), "ca.k8s.example.com."); !slices.Equal(got, []string{"A 10.0.40.2", `TXT "hello"`}) {
		t.Errorf("with a TXT record the CA's name answers %q", got)
	}
	set.DNS.NameServers = nil
	if _, err := m.Reconcile("site.yaml", set); err != nil {
		t.Fatal(err)
	}
	if got := node(m.Model(), "ca.k8s.example.com."); !slices.Equal(got, []string{`TXT "hello"`}) {
		t.Errorf("with no name server's address known the CA's name answers %q", got)
	}
}

// TestDualStackLeaseNames: one machine (one MAC) holds a DHCPv4 lease and a DHCPv6
// lease under one name: the name answers A and AAAA, each address its PTR, and the
// zone's owners (what a transfer carries) list both reverse names. Another machine
// asking for the name in the other family is refused it. An operator's record at the
// name takes it from both leases.
func TestDualStackLeaseNames(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "infrad.db"))
	m := newOn(t, st)
	if _, err := m.Reconcile("site.yaml", universeSite(t)); err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	commitLease(t, m, "52:54:00:aa:00:01", "10.0.40.150", "laptop", at)
	mac := fixture.MAC(t, "52:54:00:aa:00:01")
	six := netip.MustParseAddr("fd00:0:40::150")
	res, err := m.Apply(t.Context(), CommitLease6{Stamp: Stamp{At: at}, Subnet: "vm6", Client: "00030001525400aa0001/00000001", MAC: mac, IP: six, Hostname: "laptop", Expires: at.Add(time.Hour)})
	if err != nil || res.(Committed).Hostname != "laptop" {
		t.Fatalf("the same machine's DHCPv6 lease: %+v, %v", res, err)
	}
	if got := node(m.Model(), "laptop.k8s.example.com."); !slices.Equal(got, []string{"A 10.0.40.150", "AAAA fd00:0:40::150"}) {
		t.Errorf("laptop answers %q", got)
	}
	rev := string(site.ReverseName(six))
	if got := node(m.Model(), rev); !slices.Equal(got, []string{"PTR laptop.k8s.example.com."}) {
		t.Errorf("%s answers %q", rev, got)
	}
	if zone := m.Model().ZoneOf(rev); !slices.Contains(m.Model().Owners(zone), rev) {
		t.Errorf("the zone %s's owners lack %s", zone, rev)
	}
	res, err = m.Apply(t.Context(), CommitLease6{Stamp: Stamp{At: at}, Subnet: "vm6", Client: "0004aabbccdd/00000001", IP: netip.MustParseAddr("fd00:0:40::151"), Hostname: "laptop", Expires: at.Add(time.Hour)})
	if err != nil || res.(Committed).Hostname != "" || res.(Committed).NameKeptBy == "" {
		t.Errorf("another machine asking for laptop: %+v, %v", res, err)
	}
	if _, err := m.CreateRecord(context.Background(), site.RecordSpec{Name: "laptop", Type: "TXT", Value: `"mine"`}); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"10.0.40.150", "fd00:0:40::150"} {
		if l, _ := m.Model().Lease(netip.MustParseAddr(a)); l.Hostname != "" {
			t.Errorf("the lease of %s kept its name %q", a, l.Hostname)
		}
	}
	invariants(t, m.Model(), st, at)
}

package ipam

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/infrad/infrad/internal/fixture"
	"github.com/infrad/infrad/pkg/site"
	"github.com/infrad/infrad/pkg/store"
)

func openStore(t *testing.T, path string) *store.Store {
	t.Helper()
	st, err := store.Open(store.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// newIPAM returns an IPAM whose file owns base's subnets and hosts, and one record.
func newIPAM(t *testing.T) (*IPAM, *store.Store) {
	t.Helper()
	st := openStore(t, filepath.Join(t.TempDir(), "infrad.db"))
	m := newOn(t, st)
	if _, err := m.Reconcile("site.yaml", fixture.Site(t)); err != nil {
		t.Fatal(err)
	}
	return m, st
}

// newOn starts an IPAM on st, with a log of its own (orderedLog), closed when the
// test ends.
func newOn(t testing.TB, st *store.Store) *IPAM {
	t.Helper()
	log := &orderedLog{}
	m, err := New(Options{Store: st, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	log.m, log.last = m, m.Applied()
	t.Cleanup(m.Close)
	return m
}

func wantErr(t *testing.T, err, kind error, field string, words ...string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("got %v, want an *Error of kind %v", err, kind)
	}
	if !errors.Is(err, kind) {
		t.Errorf("got kind %v (%s), want %v", e.Kind, e.Msg, kind)
	}
	if e.Field != field {
		t.Errorf("got field %q, want %q (%s)", e.Field, field, e.Msg)
	}
	for _, w := range words {
		if !strings.Contains(e.Msg, w) {
			t.Errorf("message %q does not name %s", e.Msg, w)
		}
	}
}

func TestCreateHostRules(t *testing.T) {
	m, _ := newIPAM(t)
	h, err := m.CreateHost(context.Background(), site.HostSpec{Name: "W01", IP: "10.0.40.20", MAC: "52-54-00-00-40-20", Role: "worker"})
	if err != nil {
		t.Fatal(err)
	}
	if h.Name != "w01" || h.MAC.String() != "52:54:00:00:40:20" || h.Owner != site.OwnerAPI {
		t.Errorf("got %+v, want a normalised API-owned host", h)
	}
	tests := []struct {
		name  string
		spec  site.HostSpec
		kind  error
		field string
		words []string
	}{
		{"same name", site.HostSpec{Name: "w01", IP: "10.0.40.21"}, ErrConflict, "name", []string{`"w01"`}},
		{"same name as a file host", site.HostSpec{Name: "cp01", IP: "10.0.40.21"}, ErrConflict, "name", []string{`"cp01"`}},
		{"same IP", site.HostSpec{Name: "w02", IP: "10.0.40.10"}, ErrConflict, "ip", []string{"10.0.40.10", `"cp01"`}},
		{"same MAC", site.HostSpec{Name: "w02", IP: "10.0.40.21", MAC: "52:54:00:00:40:20"}, ErrConflict, "mac", []string{`"w01"`}},
		{"in a reserved range", site.HostSpec{Name: "w02", IP: "10.0.40.105"}, ErrConflict, "ip", []string{"reserved range", `"metallb"`}},
		{"on the gateway", site.HostSpec{Name: "w02", IP: "10.0.40.1"}, ErrConflict, "ip", []string{"gateway", `"vm"`}},
		{"outside every subnet", site.HostSpec{Name: "w02", IP: "172.16.0.1"}, ErrInvalid, "ip", []string{"outside every subnet"}},
		{"malformed MAC", site.HostSpec{Name: "w02", IP: "10.0.40.21", MAC: "zz"}, ErrInvalid, "mac", []string{`"zz"`}},
		{"malformed IP", site.HostSpec{Name: "w02", IP: "10.0.40.300"}, ErrInvalid, "ip", []string{`"10.0.40.300"`}},
		{"bad name", site.HostSpec{Name: "w_02", IP: "10.0.40.21"}, ErrInvalid, "name", []string{`"w_02"`}},
		{"name of a record", site.HostSpec{Name: "api", IP: "10.0.40.21"}, ErrConflict, "", []string{`"api"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := m.CreateHost(context.Background(), tc.spec)
			wantErr(t, err, tc.kind, tc.field, tc.words...)
		})
	}
	hosts, _ := m.Hosts()
	if len(hosts) != 3 {
		t.Errorf("got %d hosts, want 3: a refused change must write nothing", len(hosts))
	}
}

func TestFileOwnedObjectsAreReadOnly(t *testing.T) {
	m, _ := newIPAM(t)
	_, err := m.UpdateHost(context.Background(), "cp01", site.HostSpec{IP: "10.0.40.30"})
	wantErr(t, err, ErrOwnedByFile, "", `"cp01"`, "site.yaml")
	wantErr(t, m.DeleteHost(context.Background(), "cp01"), ErrOwnedByFile, "", `"cp01"`)
	wantErr(t, m.DeleteSubnet(context.Background(), "pods"), ErrOwnedByFile, "", `"pods"`)
	records, _ := m.Records()
	wantErr(t, m.DeleteRecord(context.Background(), records[0].ID()), ErrOwnedByFile, "")
	wantErr(t, m.DeleteHost(context.Background(), "nope"), ErrNotFound, "")
}

func TestUpdateAndDeleteAPIHost(t *testing.T) {
	m, _ := newIPAM(t)
	if _, err := m.CreateHost(context.Background(), site.HostSpec{Name: "w01", IP: "10.0.40.20"}); err != nil {
		t.Fatal(err)
	}
	h, err := m.UpdateHost(context.Background(), "w01", site.HostSpec{IP: "10.0.40.21", Role: "worker"})
	if err != nil || h.IP.String() != "10.0.40.21" {
		t.Fatalf("got %+v %v, want the new address", h, err)
	}
	_, err = m.UpdateHost(context.Background(), "w01", site.HostSpec{Name: "cp01", IP: "10.0.40.21"})
	wantErr(t, err, ErrConflict, "name", `"cp01"`)
	_, err = m.UpdateHost(context.Background(), "cp02", site.HostSpec{Name: "cp09", IP: "10.0.40.11"})
	wantErr(t, err, ErrOwnedByFile, "", `"cp02"`)
	// A rename keeps the address: one change, the old name's records gone with it.
	if h, err := m.UpdateHost(context.Background(), "w01", site.HostSpec{Name: "w02", IP: "10.0.40.21"}); err != nil || h.Name != "w02" {
		t.Fatalf("rename w01 to w02: %+v %v", h, err)
	}
	md := m.Model()
	if _, ok := md.Host("w01"); ok {
		t.Error("w01 is still there after the rename")
	}
	if md.NameExists(md.FQDN("w01")) || !md.NameExists(md.FQDN("w02")) {
		t.Error("DNS has w01's name, or not w02's")
	}
	if got, ok := md.HostAt(netip.MustParseAddr("10.0.40.21")); !ok || got.Name != "w02" {
		t.Errorf("10.0.40.21 is %+v, want w02's", got)
	}
	_, err = m.UpdateHost(context.Background(), "w02", site.HostSpec{IP: "10.0.40.11"})
	wantErr(t, err, ErrConflict, "ip", `"cp02"`)
	if err := m.DeleteHost(context.Background(), "w02"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Host("w02"); !errors.Is(err, ErrNotFound) {
		t.Errorf("got %v after delete, want not found", err)
	}
}

func TestSubnetLifecycle(t *testing.T) {
	m, _ := newIPAM(t)
	_, err := m.CreateSubnet(context.Background(), site.SubnetSpec{Name: "lab", CIDR: "10.0.40.128/25"})
	wantErr(t, err, ErrConflict, "cidr", `"lab"`, `"vm"`, "10.0.40.0/24")
	_, err = m.CreateSubnet(context.Background(), site.SubnetSpec{Name: "lab", CIDR: "10.0.50.7/24"})
	wantErr(t, err, ErrInvalid, "cidr", "did you mean 10.0.50.0/24")

	sn, err := m.CreateSubnet(context.Background(), site.SubnetSpec{Name: "lab", CIDR: "10.0.50.0/24", Gateway: "10.0.50.1",
		Ranges: []site.RangeSpec{{Kind: "reserved", Name: "vip", Start: "10.0.50.5", End: "10.0.50.9"}}})
	if err != nil || sn.Purpose != site.PurposeNodes {
		t.Fatalf("got %+v %v", sn, err)
	}
	_, err = m.UpdateSubnet(context.Background(), "lab", site.SubnetSpec{CIDR: "10.0.50.0/24", Ranges: []site.RangeSpec{
		{Kind: "dhcp", Start: "10.0.50.100", End: "10.0.50.200"}, {Kind: "reserved", Name: "vip", Start: "10.0.50.150", End: "10.0.50.160"}}})
	wantErr(t, err, ErrConflict, "ranges[1]", `"vip"`, "10.0.50.100-10.0.50.200")

	if _, err := m.CreateHost(context.Background(), site.HostSpec{Name: "w50", IP: "10.0.50.20"}); err != nil {
		t.Fatal(err)
	}
	wantErr(t, m.DeleteSubnet(context.Background(), "lab"), ErrConflict, "", `"lab"`, `"w50"`)
	if err := m.DeleteHost(context.Background(), "w50"); err != nil {
		t.Fatal(err)
	}
	putLease(t, m, "10.0.50.33")
	wantErr(t, m.DeleteSubnet(context.Background(), "lab"), ErrConflict, "", `"lab"`, "10.0.50.33")
	if err := m.ReleaseLease(context.Background(), netip.MustParseAddr("10.0.50.33")); err != nil {
		t.Fatal(err)
	}
	if err := m.DeleteSubnet(context.Background(), "lab"); err != nil {
		t.Errorf("got %v, want an empty subnet deleted", err)
	}
}

// putLease writes a lease through the write path, unchecked: a lease that a range
// since narrowed left where it was.
func putLease(t *testing.T, m *IPAM, ip string) {
	t.Helper()
	l := Lease{IP: netip.MustParseAddr(ip), MAC: fixture.MAC(t, "52:54:00:99:99:99"), Expires: time.Now().Add(time.Hour)}
	if _, err := m.Apply(t.Context(), rawLease{l}); err != nil {
		t.Fatal(err)
	}
}

type rawLease struct{ l Lease }

func (c rawLease) apply(t *txn) (any, error) { t.putLease(c.l); return nil, nil }
func (c rawLease) time() time.Time           { return c.l.Expires }
func (c rawLease) source() string            { return "" }

func TestRecords(t *testing.T) {
	m, _ := newIPAM(t)
	r, err := m.CreateRecord(context.Background(), site.RecordSpec{Name: "grafana", Type: "cname", Value: "cp01"})
	if err != nil || r.Name != "grafana.k8s.example.com." || r.Value != "cp01.k8s.example.com." {
		t.Fatalf("got %+v %v", r, err)
	}
	_, err = m.CreateRecord(context.Background(), site.RecordSpec{Name: "grafana", Type: "CNAME", Value: "cp01"})
	wantErr(t, err, ErrConflict, "name", "exists already", r.ID())
	_, err = m.CreateRecord(context.Background(), site.RecordSpec{Name: "grafana", Type: "TXT", Value: "x"})
	wantErr(t, err, ErrConflict, "", "CNAME")
	_, err = m.CreateRecord(context.Background(), site.RecordSpec{Name: "cp02", Type: "A", Value: "10.0.40.99"})
	wantErr(t, err, ErrConflict, "", `"cp02"`)
	_, err = m.CreateRecord(context.Background(), site.RecordSpec{Name: "x.example.org.", Type: "A", Value: "10.0.40.99"})
	wantErr(t, err, ErrInvalid, "name", "outside the site's zones")
	_, err = m.CreateRecord(context.Background(), site.RecordSpec{Name: "77.40.0.10.in-addr.arpa.", Type: "PTR", Value: "printer"})
	if err != nil {
		t.Errorf("a PTR in a subnet's reverse zone: got %v", err)
	}
	// A host's address has one name: its PTR is the host's.
	_, err = m.CreateRecord(context.Background(), site.RecordSpec{Name: "10.40.0.10.in-addr.arpa.", Type: "PTR", Value: "other"})
	wantErr(t, err, ErrConflict, "", `reverse name of host "cp01"`)
	if err := m.DeleteRecord(context.Background(), r.ID()); err != nil {
		t.Fatal(err)
	}
}

func TestAllocateLowestFree(t *testing.T) {
	m, _ := newIPAM(t)
	putLease(t, m, "10.0.40.3")
	var got []string
	for i := range 4 {
		h, err := m.Allocate(context.Background(), "vm", site.HostSpec{Name: fmt.Sprintf("n%d", i), Role: "worker"})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, h.IP.String())
	}
	// .0 network, .1 gateway, .3 leased; .10 and .11 are hosts.
	if want := []string{"10.0.40.2", "10.0.40.4", "10.0.40.5", "10.0.40.6"}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	_, err := m.Allocate(context.Background(), "pods", site.HostSpec{Name: "p"})
	wantErr(t, err, ErrInvalid, "", `"pods"`)
	_, err = m.Allocate(context.Background(), "nope", site.HostSpec{Name: "p"})
	wantErr(t, err, ErrNotFound, "")
	_, err = m.Allocate(context.Background(), "vm", site.HostSpec{Name: "p", IP: "10.0.40.9"})
	wantErr(t, err, ErrInvalid, "ip")
}

// TestAllocateDualStack: a host given its IPv4 address and allocated in an IPv6 subnet
// gets the subnet's lowest free address as its ip6; an IPv6 ip, or an ip6, is refused.
func TestAllocateDualStack(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "infrad.db"))
	m := newOn(t, st)
	if _, err := m.Reconcile("site.yaml", universeSite(t)); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	h, err := m.Allocate(ctx, "vm6", site.HostSpec{Name: "ds1", IP: "10.0.40.30"})
	if err != nil || h.IP.String() != "10.0.40.30" || h.IP6.String() != "fd00:0:40::1" {
		t.Fatalf("got %+v, %v: want 10.0.40.30 and fd00:0:40::1", h, err)
	}
	if h, err = m.Allocate(ctx, "vm6", site.HostSpec{Name: "ds2", IP: "10.0.40.31"}); err != nil || h.IP6.String() != "fd00:0:40::2" {
		t.Errorf("the next: %+v, %v: want fd00:0:40::2", h, err)
	}
	_, err = m.Allocate(ctx, "vm6", site.HostSpec{Name: "ds3", IP: "fd00:0:40::9"})
	wantErr(t, err, ErrInvalid, "ip")
	_, err = m.Allocate(ctx, "vm6", site.HostSpec{Name: "ds3", IP: "10.0.40.32", IP6: "fd00:0:40::9"})
	wantErr(t, err, ErrInvalid, "ip6")
	_, err = m.Allocate(ctx, "vm6", site.HostSpec{Name: "ds3", IP: "10.0.40.30"})
	wantErr(t, err, ErrConflict, "ip", "ds1")
}

func TestAllocateExhausted(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "infrad.db"))
	m := newOn(t, st)
	tiny := site.Set{Domain: "k8s.example.com.", Subnets: []site.Subnet{{Name: "tiny", CIDR: netip.MustParsePrefix("10.1.0.0/30"), Purpose: site.PurposeNodes}}}
	if _, err := m.Reconcile("site.yaml", tiny); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if _, err := m.Allocate(context.Background(), "tiny", site.HostSpec{Name: fmt.Sprintf("n%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := m.Allocate(context.Background(), "tiny", site.HostSpec{Name: "n2"})
	wantErr(t, err, ErrConflict, "", "no free address")
}

func TestConcurrentAllocateNeverCollides(t *testing.T) {
	m, _ := newIPAM(t)
	const n = 100
	ips := make([]netip.Addr, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			h, err := m.Allocate(context.Background(), "vm", site.HostSpec{Name: fmt.Sprintf("node%03d", i)})
			ips[i], errs[i] = h.IP, err
		})
	}
	wg.Wait()
	seen := map[netip.Addr]int{}
	for i, ip := range ips {
		if errs[i] != nil {
			t.Fatalf("allocate %d: %v", i, errs[i])
		}
		if j, dup := seen[ip]; dup {
			t.Fatalf("node%03d and node%03d both got %s", i, j, ip)
		}
		seen[ip] = i
	}
	hosts, _ := m.Hosts()
	if len(hosts) != n+2 {
		t.Errorf("got %d hosts, want %d", len(hosts), n+2)
	}
}

func TestReconcileTouchesOnlyFileObjects(t *testing.T) {
	m, _ := newIPAM(t)
	if _, err := m.CreateHost(context.Background(), site.HostSpec{Name: "w01", IP: "10.0.40.20"}); err != nil {
		t.Fatal(err)
	}
	file := fixture.Site(t)
	file.Hosts[0].Role = "control-plane"                                                                // ~ cp01
	file.Hosts = append(file.Hosts[:1], site.Host{Name: "cp03", IP: netip.MustParseAddr("10.0.40.12")}) // - cp02, + cp03
	changes, err := m.Reconcile("site.yaml", file)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range changes {
		got = append(got, c.String())
	}
	if want := []string{`~ host "cp01"`, `+ host "cp03"`, `- host "cp02"`}; !slices.Equal(got, want) {
		t.Errorf("got changes %v, want %v", got, want)
	}
	hosts, _ := m.Hosts()
	var names []string
	for _, h := range hosts {
		names = append(names, h.Name+":"+string(h.Owner))
	}
	if want := []string{"cp01:file", "cp03:file", "w01:api"}; !slices.Equal(names, want) {
		t.Errorf("got hosts %v, want %v", names, want)
	}
	again, err := m.Reconcile("site.yaml", file)
	if err != nil || len(again) != 0 {
		t.Errorf("reconciling the same file again: got %v %v, want no change", again, err)
	}
}

// The model keeps the digest of the file it applied last, in the store: a box that
// starts on the same file can skip the reconcile, and any change to the file, or to
// its name, makes another digest.
func TestReconcileKeepsTheDigestOfItsFile(t *testing.T) {
	m, st := newIPAM(t)
	file := fixture.Site(t)
	want := FileDigest("site.yaml", file)
	if got := m.Model().Shape().Digest; got != want {
		t.Fatalf("the model's digest is %q, want the file's, %q", got, want)
	}
	m.Close()
	if got := newOn(t, st).Model().Shape().Digest; got != want {
		t.Errorf("after a restart the digest is %q, want %q", got, want)
	}
	changed := fixture.Site(t)
	changed.Hosts[0].Comment = "rack 2"
	moreZones := fixture.Site(t)
	moreZones.Zones = append(moreZones.Zones, "extra.lab.test.")
	for what, d := range map[string]string{
		"a comment":       FileDigest("site.yaml", changed),
		"the zones":       FileDigest("site.yaml", moreZones),
		"the file's name": FileDigest("other.yaml", file),
	} {
		if d == want {
			t.Errorf("a change of %s keeps the digest", what)
		}
	}
}

func TestReconcileRefusesConflictsWithAPIObjects(t *testing.T) {
	m, st := newIPAM(t)
	if _, err := m.CreateHost(context.Background(), site.HostSpec{Name: "w01", IP: "10.0.40.20"}); err != nil {
		t.Fatal(err)
	}
	rev := st.Revision()
	tests := []struct {
		name  string
		edit  func(s *site.Set)
		path  string // "" for a problem about an API object
		words []string
	}{
		{"file host on an API host's address", func(s *site.Set) {
			s.Hosts = append(s.Hosts, site.Host{Name: "cp09", IP: netip.MustParseAddr("10.0.40.20")})
		}, "hosts[2].ip", []string{`"w01"`}},
		{"file host with an API host's name", func(s *site.Set) {
			s.Hosts = append(s.Hosts, site.Host{Name: "w01", IP: netip.MustParseAddr("10.0.40.21")})
		}, "hosts[2]", []string{`"w01"`, "made through the API"}},
		{"file drops the subnet of an API host", func(s *site.Set) {
			s.Subnets = s.Subnets[1:]
			s.Hosts, s.Records = nil, nil
		}, "", []string{"made through the API", "10.0.40.20"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			file := fixture.Site(t)
			tc.edit(&file)
			_, err := m.Reconcile("site.yaml", file)
			var re *ReconcileError
			if !errors.As(err, &re) {
				t.Fatalf("got %v, want a ReconcileError", err)
			}
			p := re.Problems[0]
			if path := p.Path(); p.List == "" && tc.path != "" || p.List != "" && path != tc.path {
				t.Errorf("got %s, want it at %q", p, tc.path)
			}
			for _, w := range tc.words {
				if !strings.Contains(p.Message, w) {
					t.Errorf("message %q does not name %s", p.Message, w)
				}
			}
		})
	}
	if st.Revision() != rev {
		t.Errorf("a refused reconcile wrote to the store")
	}
}

func TestObjectsSurviveReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "infrad.db")
	st, err := store.Open(store.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	m := newOn(t, st)
	if _, err := m.Reconcile("site.yaml", fixture.Site(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := m.CreateHost(context.Background(), site.HostSpec{Name: "w01", IP: "10.0.40.20", MAC: "52:54:00:00:40:20"}); err != nil {
		t.Fatal(err)
	}
	m.Close()
	st.Close()
	m = newOn(t, openStore(t, path))
	h, err := m.Host("w01")
	if err != nil || h.IP.String() != "10.0.40.20" || h.MAC.String() != "52:54:00:00:40:20" || h.Owner != site.OwnerAPI {
		t.Errorf("after reopen: got %+v %v", h, err)
	}
}

// TestZonesAfterReopen: a restart reconciles a site file that changes no object, only
// the zones the model knows (they are not in the store): the model with them is still
// published.
func TestZonesAfterReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "infrad.db")
	st := openStore(t, path)
	m := newOn(t, st)
	if _, err := m.Reconcile("site.yaml", fixture.Site(t)); err != nil {
		t.Fatal(err)
	}
	serial := m.Model().Serial()
	m.Close()
	st.Close()
	m = newOn(t, openStore(t, path))
	if _, err := m.Reconcile("site.yaml", fixture.Site(t)); err != nil {
		t.Fatal(err)
	}
	if got := m.Model().Domain(); got != "k8s.example.com." {
		t.Errorf("after reopen: the published domain is %q", got)
	}
	if got := m.Model().Serial(); !(got > serial) {
		t.Errorf("after reopen: serial %d, want more than %d", got, serial)
	}
}

func TestLeaseJSON(t *testing.T) {
	type plain Lease
	for _, l := range []Lease{
		{IP: netip.MustParseAddr("10.0.40.150"), MAC: fixture.MAC(t, "52:54:00:00:01:50"), Hostname: "laptop-01", Expires: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)},
		{IP: netip.MustParseAddr("10.0.40.151"), Expires: time.Date(2026, 12, 1, 10, 0, 0, 5, time.FixedZone("x", 3600)), Declined: true},
		{IP: netip.MustParseAddr("fd00::1"), MAC: fixture.MAC(t, "52:54:00:00:01:51"), Hostname: `odd"name`, Expires: time.Unix(0, 0).UTC()},
	} {
		got, err := json.Marshal(l)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(plain(l))
		if string(got) != string(want) {
			t.Errorf("got %s, want %s", got, want)
		}
	}
}

// TestLeaseNamesAndTheSerial: a renewal that keeps its hostname leaves the zones'
// serial alone (no NOTIFY for nothing); a new name raises it. A host's own machine
// asking for the host's name is not a clash; another machine asking is.
func TestLeaseNamesAndTheSerial(t *testing.T) {
	m, _ := newIPAM(t)
	at := time.Now()
	commit := func(mac, ip, name string) Committed {
		t.Helper()
		res, err := m.Apply(t.Context(), CommitLease{Stamp: Stamp{At: at}, Subnet: "vm", MAC: fixture.MAC(t, mac),
			IP: netip.MustParseAddr(ip), Hostname: name, Expires: at.Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		return res.(Committed)
	}
	commit("52:54:00:00:01:50", "10.0.40.150", "laptop")
	serial := m.Model().Serial()
	at = at.Add(10 * time.Second)
	commit("52:54:00:00:01:50", "10.0.40.150", "laptop")
	if got := m.Model().Serial(); got != serial {
		t.Errorf("a renewal keeping its name: serial %d, want %d still", got, serial)
	}
	commit("52:54:00:00:01:50", "10.0.40.150", "laptop2")
	if got := m.Model().Serial(); got == serial {
		t.Errorf("a renewal with a new name: serial still %d", got)
	}
	if res := commit("52:54:00:00:40:10", "10.0.40.10", "cp01"); res.Hostname != "" || res.NameKeptBy != "" {
		t.Errorf("cp01's own machine asking for cp01: got %+v, want no name and no clash", res)
	}
	if res := commit("52:54:00:00:01:51", "10.0.40.151", "cp01"); res.Hostname != "" || res.NameKeptBy != `host "cp01"` {
		t.Errorf("another machine asking for cp01: got %+v, want the host to keep it", res)
	}
}

// TestReleasedAddressWaits: on a site that three boxes serve, a lease ended early
// (its client's RELEASE, an admin's delete, its client moving) holds its address for
// no one else until every box has applied the end (SettleEnds through its index) or
// the lease's committed expiry: a box cut off from the others may renew it until
// then. Its client may take it again; its names go at once. On one box the address
// is free at once.
func TestReleasedAddressWaits(t *testing.T) {
	u := universe{now: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	a, b, ip, other := u.mac(0), u.mac(1), u.ip(3), u.ip(4)
	at := Stamp{At: u.now}
	commit := func(m *IPAM, mac site.MAC, ip netip.Addr) error {
		_, err := m.Apply(t.Context(), CommitLease{Stamp: at, Subnet: "vm", MAC: mac, IP: ip, Hostname: "laptop", Expires: u.now.Add(time.Hour)})
		return err
	}
	adminDelete := func(m *IPAM) error {
		_, err := m.Apply(t.Context(), ReleaseLease{Stamp: at, IP: ip})
		return err
	}
	open := func(t *testing.T, servers int) (*IPAM, *store.Store) {
		st := openStore(t, filepath.Join(t.TempDir(), "infrad.db"))
		m := newOn(t, st)
		if _, err := m.Reconcile("site.yaml", fixture.Site(t)); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Apply(t.Context(), SetDHCPServers{Stamp: at, Servers: servers}); err != nil {
			t.Fatal(err)
		}
		if got := m.Model().Shape().DHCPServers; got != servers {
			t.Fatalf("the model says %d DHCP servers, want %d", got, servers)
		}
		return m, st
	}
	ends := []struct {
		name string
		end  func(m *IPAM) error
	}{
		{"release", func(m *IPAM) error {
			_, err := m.Apply(t.Context(), ReleaseLease{Stamp: at, IP: ip, MAC: a, Expires: u.now.Add(time.Hour)})
			return err
		}},
		{"release with a renewal in flight", func(m *IPAM) error {
			_, err := m.Apply(t.Context(), ReleaseClientLease{Stamp: at, IP: ip, MAC: a, Expires: []time.Time{u.now.Add(2 * time.Hour), u.now.Add(time.Hour)}})
			return err
		}},
		{"admin delete", func(m *IPAM) error { return adminDelete(m) }},
		{"client moves", func(m *IPAM) error { return commit(m, a, other) }},
	}
	for _, tc := range ends {
		t.Run(tc.name, func(t *testing.T) {
			m, st := open(t, 3)
			if err := commit(m, a, ip); err != nil {
				t.Fatal(err)
			}
			if _, ok := m.Model().Node("laptop.k8s.example.com."); !ok {
				t.Fatal("the lease's name does not answer")
			}
			if err := tc.end(m); err != nil {
				t.Fatal(err)
			}
			l, _ := m.Model().Lease(ip)
			if l.Released == 0 || l.MAC != a || l.Hostname != "" || !l.Expires.Equal(u.now.Add(time.Hour)) {
				t.Fatalf("after the end the address holds %+v, want a released lease of %s, unnamed, until the committed expiry", l, a)
			}
			if got, _ := m.Model().LeaseOf(a); got.IP == ip {
				t.Errorf("the released lease is still its client's lease")
			}
			if tc.name == "release" {
				if n, ok := m.Model().Node("laptop.k8s.example.com."); ok {
					t.Errorf("the released lease's name still answers: %v", n)
				}
			}
			wantErr(t, commit(m, b, ip), ErrConflict, "", "not this client's")
			wantErr(t, adminDelete(m), ErrConflict, "", "released already", "every node")

			// A box that starts again on the store waits as well.
			m.Close()
			m = newOn(t, st)
			if _, err := m.Apply(t.Context(), Reconcile{Stamp: at, Source: "site.yaml", File: fixture.Site(t)}); err != nil {
				t.Fatal(err)
			}
			if got := m.Model().Shape().DHCPServers; got != 3 {
				t.Fatalf("loaded and reconciled again, the model says %d DHCP servers, want 3", got)
			}
			if _, err := m.Apply(t.Context(), SettleEnds{Stamp: at, Through: l.Released - 1}); err != nil {
				t.Fatal(err)
			}
			wantErr(t, commit(m, b, ip), ErrConflict, "", "not this client's")
			if _, err := m.Apply(t.Context(), SettleEnds{Stamp: at, Through: l.Released}); err != nil {
				t.Fatal(err)
			}
			if err := commit(m, b, ip); err != nil {
				t.Errorf("after every box applied the end, another client: %v", err)
			}
			invariants(t, m.Model(), st, u.now)
		})
	}
	t.Run("its client takes it again", func(t *testing.T) {
		m, st := open(t, 3)
		if err := commit(m, a, ip); err != nil {
			t.Fatal(err)
		}
		if err := adminDelete(m); err != nil {
			t.Fatal(err)
		}
		if l, _ := m.Model().Lease(ip); l.Released == 0 {
			t.Fatalf("got %+v, want the address released and waiting", l)
		}
		if err := commit(m, a, ip); err != nil {
			t.Errorf("the client that released it: %v", err)
		}
		if l, _ := m.Model().Lease(ip); l.Released != 0 || l.MAC != a {
			t.Errorf("got %+v, want the client's lease again", l)
		}
		invariants(t, m.Model(), st, u.now)
	})
	t.Run("expiry frees it", func(t *testing.T) {
		m, _ := open(t, 3)
		if err := commit(m, a, ip); err != nil {
			t.Fatal(err)
		}
		if err := adminDelete(m); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Apply(t.Context(), ExpireLeases{Stamp: Stamp{At: u.now.Add(time.Hour)}}); err != nil {
			t.Fatal(err)
		}
		if _, ok := m.Model().Lease(ip); ok || m.Model().Released() != 0 {
			t.Errorf("the released lease outlived its expiry")
		}
	})
	t.Run("one box", func(t *testing.T) {
		m, _ := open(t, 0)
		if err := commit(m, a, ip); err != nil {
			t.Fatal(err)
		}
		if err := adminDelete(m); err != nil {
			t.Fatal(err)
		}
		if err := commit(m, b, ip); err != nil {
			t.Errorf("on one box, another client after the release: %v", err)
		}
	})
}

// TestReleaseClientLease: a client's RELEASE ends the lease of the grant it names,
// however renewed since (by another node, or by a renewal applied late), and a lease
// whose expiry is one of those it names (a commit in flight, or the committed lease
// for one granted before grants were kept); it leaves a lease granted again after it.
// Grants are kept once TrackGrants says so, across a restart too.
func TestReleaseClientLease(t *testing.T) {
	u := universe{now: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	a, b, ip := u.mac(0), u.mac(1), u.ip(3)
	at := Stamp{At: u.now}
	committed, renewed, again := u.now.Add(time.Hour), u.now.Add(2*time.Hour), u.now.Add(3*time.Hour)
	path := filepath.Join(t.TempDir(), "infrad.db")
	st := openStore(t, path)
	m := newOn(t, st)
	if _, err := m.Reconcile("site.yaml", fixture.Site(t)); err != nil {
		t.Fatal(err)
	}
	lease := func(expires time.Time, renewal bool) Lease {
		t.Helper()
		res, err := m.Apply(t.Context(), CommitLease{Stamp: at, Subnet: "vm", MAC: a, IP: ip, Expires: expires, Renewal: renewal})
		if err != nil {
			t.Fatal(err)
		}
		return res.(Committed).Lease
	}
	release := func(c ReleaseClientLease) error {
		c.Stamp, c.IP = at, ip
		if c.MAC.IsZero() {
			c.MAC = a
		}
		_, err := m.Apply(t.Context(), c)
		return err
	}

	// Before grants are kept: the expiries tell the lease.
	if l := lease(committed, false); l.Granted != 0 {
		t.Fatalf("a grant kept before TrackGrants: %+v", l)
	}
	lease(renewed, true) // the renewal in flight, applied before the RELEASE
	if err := release(ReleaseClientLease{Expires: []time.Time{renewed, committed}}); err != nil {
		t.Errorf("the release of the lease a renewal in flight made: %v", err)
	}
	lease(again, false) // granted after the RELEASE, which is applied late
	if err := release(ReleaseClientLease{Expires: []time.Time{renewed, committed}}); !errors.Is(err, ErrNotFound) {
		t.Errorf("a late release of a lease granted again: %v, want ErrNotFound", err)
	}
	if _, err := m.Apply(t.Context(), TrackGrants{Stamp: at}); err != nil {
		t.Fatal(err)
	}
	m.Close()
	st.Close()
	st = openStore(t, path)
	m = newOn(t, st)
	if !m.Model().Shape().Grants {
		t.Fatal("grants are not kept after a restart")
	}

	// Grants kept: a renewal keeps the grant, a new grant makes another.
	g := lease(committed, false).Granted
	if g == 0 {
		t.Fatal("a grant not kept")
	}
	if l := lease(renewed, true); l.Granted != g {
		t.Errorf("a renewal changed the grant from %d to %d", g, l.Granted)
	}
	if err := release(ReleaseClientLease{Granted: g}); err != nil {
		t.Errorf("the release of a grant renewed since: %v", err)
	}
	if _, ok := m.Model().Lease(ip); ok {
		t.Error("the lease outlived the release")
	}
	if _, err := m.Apply(t.Context(), CommitLease{Stamp: at, Subnet: "vm", MAC: a, IP: ip, Expires: again, Renewal: true}); !errors.Is(err, ErrConflict) {
		t.Errorf("a renewal applied after the release: %v, want ErrConflict (the lease has ended)", err)
	}
	g2 := lease(again, false).Granted // the client asks again after the release
	if g2 == g || g2 == 0 {
		t.Errorf("a lease granted after its release has grant %d (was %d)", g2, g)
	}
	if err := release(ReleaseClientLease{Granted: g}); !errors.Is(err, ErrNotFound) {
		t.Errorf("a late release of a lease granted again: %v, want ErrNotFound", err)
	}
	if g3 := lease(again.Add(time.Hour), false).Granted; g3 == g2 {
		t.Error("the client's new REQUEST (not as the holder) kept the grant")
	}
	if err := release(ReleaseClientLease{MAC: b, Granted: g2}); !errors.Is(err, ErrNotFound) {
		t.Errorf("another client's release: %v, want ErrNotFound", err)
	}
	if _, err := m.Apply(t.Context(), ReleaseClientLease{Stamp: at, IP: ip, Granted: g2}); !errors.Is(err, ErrInvalid) {
		t.Errorf("a release naming no client: %v, want ErrInvalid", err)
	}
	if err := release(ReleaseClientLease{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("a release naming no lease: %v, want ErrInvalid", err)
	}
	if _, ok := m.Model().Lease(ip); !ok {
		t.Error("the lease granted after the release was ended")
	}
}

// TestLateCommitDoesNotMoveItsClient: a client's REQUEST for one address went
// unanswered (its node stopped waiting for the commit); the client asked again and was
// granted another; then the first commit is applied after all, late. It is refused:
// the client holds the second address, which must not be ended under it. A client
// that asks for another address later than its lease was granted moves as before.
func TestLateCommitDoesNotMoveItsClient(t *testing.T) {
	u := universe{now: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	a, first, second := u.mac(0), u.ip(3), u.ip(4)
	m, _ := newIPAM(t)
	for _, c := range []Command{SetDHCPServers{Stamp: Stamp{At: u.now}, Servers: 3}, TrackGrants{Stamp: Stamp{At: u.now}}} {
		if _, err := m.Apply(t.Context(), c); err != nil {
			t.Fatal(err)
		}
	}
	commit := func(ip netip.Addr, made time.Time) error {
		_, err := m.Apply(t.Context(), CommitLease{Stamp: Stamp{At: made}, Subnet: "vm", MAC: a, IP: ip, Expires: made.Add(time.Hour)})
		return err
	}
	late := u.now
	if err := commit(second, late.Add(3*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := commit(first, late); !errors.Is(err, ErrConflict) {
		t.Errorf("the late commit of %s: %v, want ErrConflict", first, err)
	}
	if l, ok := m.Model().LeaseOf(a); !ok || l.IP != second {
		t.Errorf("the client's lease: %+v %v, want %s", l, ok, second)
	}
	if err := commit(first, late.Add(time.Minute)); err != nil {
		t.Errorf("the client moving to %s: %v", first, err)
	}
	if l, ok := m.Model().LeaseOf(a); !ok || l.IP != first {
		t.Errorf("the client's lease after it moved: %+v %v, want %s", l, ok, first)
	}
}

// TestBootHostKeepsTheSerial: a machine that says it booted changes its host's
// state, not what DNS serves: the serial stays, and a second call changes nothing.
func TestBootHostKeepsTheSerial(t *testing.T) {
	m, _ := newIPAM(t)
	serial := m.Model().Serial()
	at := time.Now().Add(time.Minute).Truncate(time.Second)
	boot := func(booted bool) site.Host {
		t.Helper()
		res, err := m.Apply(t.Context(), BootHost{Stamp: Stamp{At: at, By: "boot callback"}, Name: "cp01", Booted: booted})
		if err != nil {
			t.Fatal(err)
		}
		return res.(site.Host)
	}
	if h := boot(true); !h.Booted.Equal(at) {
		t.Errorf("booted: got %v, want %v", h.Booted, at)
	}
	at = at.Add(time.Minute)
	if h := boot(true); h.Booted.Equal(at) {
		t.Errorf("a second callback moved booted to %v", h.Booted)
	}
	if h, _ := m.Model().Host("cp01"); h.Booted.IsZero() {
		t.Error("the model has cp01 not booted")
	}
	if h := boot(false); !h.Booted.IsZero() {
		t.Errorf("re-armed: got booted %v", h.Booted)
	}
	if got := m.Model().Serial(); got != serial {
		t.Errorf("serial %d after three BootHosts, want %d still: DNS serves what it did", got, serial)
	}
	if _, err := m.Apply(t.Context(), BootHost{Stamp: Stamp{At: at}, Name: "nosuch", Booted: true}); !errors.Is(err, ErrNotFound) {
		t.Errorf("an unknown host: got %v, want not found", err)
	}
}

// TestPiSerialIsOneHosts: a Raspberry Pi's serial maps its TFTP folder to one host,
// so a second host with it is refused, naming the first.
func TestPiSerialIsOneHosts(t *testing.T) {
	m, _ := newIPAM(t)
	put := func(name, ip, mac string) error {
		_, err := m.Apply(t.Context(), PutHost{Stamp: Stamp{At: time.Now()}, Create: true,
			Host: site.Host{Name: name, IP: netip.MustParseAddr(ip), MAC: fixture.MAC(t, mac), PiSerial: "a1b2c3d4"}})
		return err
	}
	if err := put("pi01", "10.0.40.31", "dc:a6:32:00:00:31"); err != nil {
		t.Fatal(err)
	}
	err := put("pi02", "10.0.40.32", "dc:a6:32:00:00:32")
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), `"pi01"`) {
		t.Errorf("a second host with pi01's serial: got %v, want a conflict naming pi01", err)
	}
}

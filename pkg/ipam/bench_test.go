package ipam

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/infrad/infrad/pkg/site"
	"github.com/infrad/infrad/pkg/store"
)

// The cost of one write against the size of the site. Each benchmark fills a store
// with hosts (and leases) in one transaction, opens IPAM on it, then times writes:
// through the whole write path (check, bbolt commit with fsync, publish), and the
// apply alone (check and model change, no disk), which is the part that could grow
// with the site.

var sizes = []int{1_000, 30_000, 100_000}

func BenchmarkHostWrite(b *testing.B) {
	for _, n := range sizes {
		b.Run(fmt.Sprintf("hosts=%d", n), func(b *testing.B) {
			m := bigSite(b, n, 0)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if _, err := m.CreateHost(context.Background(), site.HostSpec{Name: fmt.Sprintf("new%d", i), IP: addrAt(200_000 + i).String()}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkHostApply(b *testing.B) {
	for _, n := range sizes {
		b.Run(fmt.Sprintf("hosts=%d", n), func(b *testing.B) {
			m := bigSite(b, n, 0)
			t := newTxn(m.Model(), m.Model().leases.clone(), endingsOf(m.Model()))
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				t.begin(time.Now(), 0)
				cmd := PutHost{Host: site.Host{Name: fmt.Sprintf("new%d", i), IP: addrAt(200_000 + i)}, Create: true}
				if _, err := cmd.apply(t); err != nil {
					b.Fatal(err)
				}
				t.end(cmd)
				t.entries = t.entries[:0] // the commit would write them
			}
		})
	}
}

func BenchmarkLeaseCommit(b *testing.B) {
	for _, leases := range []int{1_000, 500_000} {
		b.Run(fmt.Sprintf("hosts=1000,leases=%d", leases), func(b *testing.B) {
			m := bigSite(b, 1000, leases)
			now := time.Now()
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				c := CommitLease{Stamp: Stamp{At: now}, Subnet: "big", MAC: macAt(1_000_000 + i), IP: freeLeaseAt(i), Expires: now.Add(time.Hour)}
				if _, err := m.Apply(b.Context(), c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkLeaseApply(b *testing.B) {
	for _, leases := range []int{1_000, 500_000} {
		b.Run(fmt.Sprintf("hosts=1000,leases=%d", leases), func(b *testing.B) {
			m := bigSite(b, 1000, leases)
			t := newTxn(m.Model(), m.Model().leases.clone(), endingsOf(m.Model()))
			now := time.Now()
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if i%20_000 == 0 && i > 0 { // the free addresses are used up: start again from the model
					t = newTxn(m.Model(), m.Model().leases.clone(), t.ends)
				}
				t.begin(now, 0)
				c := CommitLease{Stamp: Stamp{At: now}, Subnet: "big", MAC: macAt(1_000_000 + i), IP: freeLeaseAt(i), Expires: now.Add(time.Hour)}
				if _, err := c.apply(t); err != nil {
					b.Fatal(err)
				}
				t.end(c)
				t.entries = t.entries[:0] // the commit would write them
			}
		})
	}
}

// freeLeaseAt is the i-th address of the range's tail, past every lease bigSite makes.
func freeLeaseAt(i int) netip.Addr {
	v := 170<<8 + i%20_000
	return netip.AddrFrom4([4]byte{10, 15, byte(v >> 8), byte(v)})
}

// addrAt is the i-th address of 10.0.0.0/8, from 10.0.1.0.
func addrAt(i int) netip.Addr {
	v := 256 + i
	return netip.AddrFrom4([4]byte{10, byte(v >> 16), byte(v >> 8), byte(v)})
}

func macAt(i int) site.MAC { return site.MAC{0x52, 0x54, 0, byte(i >> 16), byte(i >> 8), byte(i)} }

// bigSite is a store with one /8 subnet whose DHCP range is 10.8.0.0-10.15.255.255,
// hosts hosts from 10.0.1.0 and leases leases from 10.8.0.0, written in one
// transaction; then IPAM on it, with the site applied.
func bigSite(b *testing.B, hosts, leases int) *IPAM {
	b.Helper()
	st, err := store.Open(store.Options{Path: filepath.Join(b.TempDir(), "infrad.db")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	sn := site.Subnet{Name: "big", CIDR: netip.MustParsePrefix("10.0.0.0/8"), Purpose: site.PurposeNodes, Owner: site.OwnerFile,
		Ranges: []site.Range{{Kind: site.RangeDHCP, Start: netip.MustParseAddr("10.8.0.0"), End: netip.MustParseAddr("10.15.255.255")}}}
	expires := time.Now().Add(24 * time.Hour).Truncate(time.Second)
	// In chunks: bbolt splits its pages only at commit, so one huge transaction is slow.
	write := func(n int, put func(tx *store.Tx, i int) error) {
		for from := 0; from < n; from += 10_000 {
			err := st.Update(func(tx *store.Tx) error {
				for i := from; i < min(n, from+10_000); i++ {
					if err := put(tx, i); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	write(1, func(tx *store.Tx, _ int) error { return store.Put(tx, store.BucketSubnets, sn.Name, sn) })
	write(hosts, func(tx *store.Tx, i int) error {
		h := site.Host{Name: fmt.Sprintf("h%d", i), IP: addrAt(i), MAC: macAt(i), Owner: site.OwnerAPI}
		return store.Put(tx, store.BucketHosts, h.Name, h)
	})
	write(leases, func(tx *store.Tx, i int) error {
		ip := netip.AddrFrom4([4]byte{10, byte(8 + i>>16), byte(i >> 8), byte(i)})
		l := Lease{IP: ip, MAC: macAt(2_000_000 + i), Hostname: fmt.Sprintf("l%d", i), Expires: expires}
		return store.Put(tx, store.BucketLeases, ip.String(), l)
	})
	m := newOn(b, st)
	m.Apply(b.Context(), setShape{&Shape{Domain: "big.test.", Source: "bench", Subnets: []site.Subnet{sn}}})
	return m
}

// setShape sets the domain without a site file's reconcile (which checks the whole
// site once, and is not what is measured).
type setShape struct{ sh *Shape }

func (c setShape) apply(t *txn) (any, error) { t.setShape(c.sh); return nil, nil }
func (c setShape) time() time.Time           { return time.Now() }
func (c setShape) source() string            { return "" }

// BenchmarkSiteCheck is a whole site's rules (a site file's validation and its
// reconcile), with a name server the glue answers for and a PTR record: every rule
// must stay linear in the site.
func BenchmarkSiteCheck(b *testing.B) {
	for _, n := range sizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			s := site.Set{Domain: "k8s.example.com.", DNS: site.ZoneSettings{NameServers: []netip.Addr{netip.MustParseAddr("10.0.0.2")}},
				Subnets: []site.Subnet{{Name: "big", CIDR: netip.MustParsePrefix("10.0.0.0/14"), Purpose: site.PurposeNodes}},
				Records: []site.Record{{Name: "9.0.0.10.in-addr.arpa.", Type: "PTR", Value: "printer.k8s.example.com."}}}
			a := netip.MustParseAddr("10.0.1.0")
			for i := range n {
				s.Hosts = append(s.Hosts, site.Host{Name: fmt.Sprintf("h%d", i), IP: a})
				a = a.Next()
			}
			for b.Loop() {
				if p := s.Problems(); len(p) > 0 {
					b.Fatal(p[0])
				}
			}
		})
	}
}

// BenchmarkImport is one import of 1,000 hosts (plan and apply, one transaction)
// into a site of n hosts: what a move costs against the site it moves into.
func BenchmarkImport(b *testing.B) {
	for _, n := range []int{1_000, 100_000} {
		b.Run(fmt.Sprintf("hosts=%d", n), func(b *testing.B) {
			m := bigSite(b, n, 0)
			for i := 0; b.Loop(); i++ {
				spec := ImportSpec{Kind: "dnsmasq"}
				for j := range 1000 {
					spec.Hosts = append(spec.Hosts, site.HostSpec{Name: fmt.Sprintf("imp%d-%d", i, j), IP: addrAt(200_000 + i*1000 + j).String()})
				}
				if _, err := m.Import(context.Background(), spec); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

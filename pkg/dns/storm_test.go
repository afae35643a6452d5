package dns

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/infrad/infrad/internal/testenv"
	"github.com/infrad/infrad/pkg/ipam"
	"github.com/infrad/infrad/pkg/site"
)

// TestStormKeepsNamesAndAddressesTrue races the three kinds of writer over the same
// few names and addresses: API allocations and deletions of hosts, DHCP commits and
// releases of leases, and TSIG-signed RFC 2136 updates sent to the DNS listener. Then
// every host and every named lease answers exactly its A and PTR, no address is held
// twice, no record stands at a host's or lease's name, and no PTR points at an address
// nothing holds.
func TestStormKeepsNamesAndAddressesTrue(t *testing.T) {
	testenv.Need(t, "dig")
	s := start(t, "")
	names := []string{"w1", "w2", "w3", "laptop", "printer"}
	leaseIPs := []string{"10.0.40.150", "10.0.40.151", "10.0.40.152"}
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 7))
			for range 60 {
				name := names[r.IntN(len(names))]
				switch g % 3 {
				case 0: // the API
					if r.IntN(2) == 0 {
						s.ipam.Allocate(context.Background(), "vm", site.HostSpec{Name: name})
					} else {
						s.ipam.DeleteHost(context.Background(), name)
					}
				case 1: // DHCP
					ip := netip.MustParseAddr(leaseIPs[r.IntN(len(leaseIPs))])
					mac := site.MAC{0x52, 0x54, 0, 0, 0x99, byte(r.IntN(4))}
					now := time.Now()
					if r.IntN(3) == 0 {
						s.ipam.Apply(t.Context(), ipam.ReleaseLease{Stamp: ipam.Stamp{At: now}, IP: ip, MAC: mac})
					} else {
						s.ipam.Apply(t.Context(), ipam.CommitLease{Stamp: ipam.Stamp{At: now}, Subnet: "vm", MAC: mac, IP: ip, Hostname: name, Expires: now.Add(time.Hour)})
					}
				default: // RFC 2136, over the wire
					fqdn := name + ".k8s.example.com."
					m := new(dns.Msg).SetUpdate("k8s.example.com.")
					if r.IntN(2) == 0 {
						rr, _ := dns.NewRR(fmt.Sprintf("%s 300 IN A 10.0.40.%d", fqdn, 30+r.IntN(5)))
						m.Insert([]dns.RR{rr})
					} else {
						m.RemoveName([]dns.RR{&dns.A{Hdr: dns.RR_Header{Name: fqdn}}})
					}
					m.SetTsig("external-dns.", dns.HmacSHA256, 300, time.Now().Unix())
					c := &dns.Client{TsigSecret: map[string]string{"external-dns.": tsigSecret}, Timeout: 3 * time.Second}
					c.Exchange(m, s.addr)
				}
			}
		})
	}
	wg.Wait()

	model := s.ipam.Model()
	held := map[netip.Addr]string{}
	for _, h := range model.Hosts() {
		if prev, ok := held[h.IP]; ok {
			t.Errorf("%s is held by %s and host %s", h.IP, prev, h.Name)
		}
		held[h.IP] = "host " + h.Name
		s.wantAddress(t, h.Name, h.IP)
	}
	now := time.Now()
	for _, l := range model.Leases() {
		if l.Ended(now) {
			continue
		}
		if prev, ok := held[l.IP]; ok {
			t.Errorf("%s is held by %s and the lease of %s", l.IP, prev, l.MAC)
		}
		held[l.IP] = "lease " + l.MAC.String()
		if l.Hostname != "" {
			s.wantAddress(t, l.Hostname, l.IP)
		}
	}
	// Nothing points at an address that nothing holds.
	for i := 2; i < 255; i++ {
		a := netip.AddrFrom4([4]byte{10, 0, 40, byte(i)})
		if _, ok := held[a]; ok {
			continue
		}
		if got := s.answers(t, "-x", a.String()); len(got) > 0 {
			t.Errorf("the PTR of %s, which nothing holds, answers %v", a, got)
		}
	}
}

// wantAddress checks that name answers exactly a, and a's PTR exactly name.
func (s *server) wantAddress(t *testing.T, name string, a netip.Addr) {
	t.Helper()
	fqdn := name + ".k8s.example.com."
	typ := "A"
	if a.Is6() {
		typ = "AAAA"
	}
	if got := s.answers(t, fqdn, typ); !slices.Equal(got, []string{a.String()}) {
		t.Errorf("%s: got A %v, want %s alone", fqdn, got, a)
	}
	if got := s.answers(t, "-x", a.String()); !slices.Equal(got, []string{fqdn}) {
		t.Errorf("PTR of %s: got %v, want %s alone", a, got, fqdn)
	}
}

package testenv

import (
	"net"
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

// StubDNS serves DNS on a free loopback UDP port until t ends: every A query for a
// name in zone ("." for any) is answered with addr, as a recursive server would (RA
// set). It stands for the upstreams and site resolvers that tests may not reach.
func StubDNS(t testing.TB, zone string, addr netip.Addr) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.RecursionAvailable = true
		if q := r.Question[0]; q.Qtype == dns.TypeA && dns.IsSubDomain(zone, q.Name) {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: addr.AsSlice()})
		}
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().(*net.UDPAddr).AddrPort()
}

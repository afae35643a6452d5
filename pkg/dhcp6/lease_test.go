package dhcp6

import (
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"
	"github.com/insomniacslk/dhcp/rfc1035label"

	"github.com/infrad/infrad/internal/sitetest"
	"github.com/infrad/infrad/pkg/ipam"
	"github.com/infrad/infrad/pkg/site"
)

const poolSite = `domain: lab.test
dns: {listen: ["[::]:53"]}
dhcp: {lease_time: 1h}
subnets:
  - name: lab6
    cidr: "fd00:77::/64"
    dhcp6: stateful
    ranges: [{kind: dhcp, start: "fd00:77::100", end: "fd00:77::103"}]
    delegate: {prefix: "fd00:100::/62", length: 64}
hosts:
  - {name: cp01, ip: "fd00:77::10", mac: "52:54:00:77:00:10"}
`

func newPool(t testing.TB) (*Service, *ipam.IPAM, site.Subnet, *time.Time) {
	t.Helper()
	m, cfg := sitetest.IPAM(t, []byte(poolSite))
	sn, _ := m.Model().Subnet("lab6")
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	return New(Options{Site: cfg, IPAM: m, Now: func() time.Time { return now }}), m, sn, &now
}

// client is a DHCPv6 client of the tests: its DUID (DUID-LL of mac) and its name.
type client struct {
	mac  net.HardwareAddr
	name string
}

func (c client) msg(t testing.TB, typ dhcpv6.MessageType, addr netip.Addr, mods ...dhcpv6.Modifier) *dhcpv6.Message {
	m, err := dhcpv6.NewMessage(append([]dhcpv6.Modifier{
		dhcpv6.WithClientID(&dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: c.mac}),
		func(d dhcpv6.DHCPv6) { d.(*dhcpv6.Message).MessageType = typ },
	}, mods...)...)
	if err != nil {
		t.Fatal(err)
	}
	ia := &dhcpv6.OptIANA{IaId: [4]byte{0, 0, 0, 1}}
	if addr.IsValid() {
		ia.Options.Add(&dhcpv6.OptIAAddress{IPv6Addr: addr.AsSlice()})
	}
	m.AddOption(ia)
	if c.name != "" {
		m.AddOption(&dhcpv6.OptFQDN{DomainName: &rfc1035label.Labels{Labels: []string{c.name}}})
	}
	if typ != dhcpv6.MessageTypeSolicit && typ != dhcpv6.MessageTypeRebind {
		m.AddOption(dhcpv6.OptServerID(duid))
	}
	return m
}

// got is the address of the reply's IA_NA and its status ("" when Success or none).
func got(t testing.TB, reply *dhcpv6.Message) (netip.Addr, string) {
	t.Helper()
	if reply == nil {
		t.Fatal("no reply")
	}
	ia := reply.Options.OneIANA()
	if ia == nil {
		t.Fatalf("no IA_NA in %v", reply)
	}
	var a netip.Addr
	if o := ia.Options.OneAddress(); o != nil {
		a, _ = netip.AddrFromSlice(o.IPv6Addr)
	}
	st := ""
	if s := ia.Options.Status(); s != nil && s.StatusCode != iana.StatusSuccess {
		st = s.StatusCode.String()
	}
	return a, st
}

// TestPoolLease walks a client through a lease: an Advertise commits nothing; the
// Request commits the address with its name, so DNS has its AAAA and PTR before the
// Reply; a Renew extends it; a Release ends it; a Renew after that is told NoBinding.
func TestPoolLease(t *testing.T) {
	s, m, sn, now := newPool(t)
	c := client{mac: net.HardwareAddr{2, 0, 0, 0, 0, 7}, name: "laptop"}
	adv, _ := s.reply(t.Context(), sn, own, duid, netip.Addr{}, site.MAC{}, c.msg(t, dhcpv6.MessageTypeSolicit, netip.Addr{}))
	if adv.Type() != dhcpv6.MessageTypeAdvertise {
		t.Fatalf("got %s, want an Advertise", adv.Type())
	}
	offered, st := got(t, adv)
	if !offered.IsValid() || !site.InDHCPRange(sn, offered) || st != "" {
		t.Fatalf("offered %s (%s), want an address of the range", offered, st)
	}
	if n := len(m.Leases()); n != 0 {
		t.Fatalf("an Advertise committed %d leases", n)
	}
	reply, _ := s.reply(t.Context(), sn, own, duid, netip.Addr{}, site.MAC{}, c.msg(t, dhcpv6.MessageTypeRequest, offered))
	if a, st := got(t, reply); a != offered || st != "" {
		t.Fatalf("the Request got %s (%s), want %s", a, st, offered)
	}
	if f := reply.Options.FQDN(); f == nil || f.Flags != 0x03 || f.DomainName.String() != "[laptop.lab.test]" {
		t.Errorf("the Reply's FQDN option: %v, want laptop.lab.test with S and O set", f)
	}
	model := m.Model()
	if a, _ := model.AddressOf("laptop.lab.test.", true); a != offered {
		t.Errorf("laptop's AAAA: got %s, want %s", a, offered)
	}
	if ptr := model.PTR(offered); ptr != "laptop.lab.test." {
		t.Errorf("%s's PTR: got %q, want laptop.lab.test.", offered, ptr)
	}
	l, _ := model.Lease(offered)
	*now = now.Add(30 * time.Minute)
	reply, _ = s.reply(t.Context(), sn, own, duid, netip.Addr{}, site.MAC{}, c.msg(t, dhcpv6.MessageTypeRenew, offered))
	if a, st := got(t, reply); a != offered || st != "" {
		t.Fatalf("the Renew got %s (%s), want %s", a, st, offered)
	}
	if renewed, _ := m.Model().Lease(offered); !renewed.Expires.After(l.Expires) || renewed.Hostname != "laptop" {
		t.Errorf("renewed: %+v, was %+v", renewed, l)
	}
	reply, _ = s.reply(t.Context(), sn, own, duid, netip.Addr{}, site.MAC{}, c.msg(t, dhcpv6.MessageTypeRelease, offered))
	if st := reply.Options.Status(); st == nil || st.StatusCode != iana.StatusSuccess {
		t.Errorf("the Release's status: %v", st)
	}
	if _, ok := m.Model().Lease(offered); ok {
		t.Error("the released lease is still there")
	}
	if a, _ := m.Model().AddressOf("laptop.lab.test.", true); a.IsValid() {
		t.Errorf("laptop still resolves to %s", a)
	}
	reply, _ = s.reply(t.Context(), sn, own, duid, netip.Addr{}, site.MAC{}, c.msg(t, dhcpv6.MessageTypeRenew, offered))
	if _, st := got(t, reply); st != iana.StatusNoBinding.String() {
		t.Errorf("a Renew of the released lease: got %q, want NoBinding", st)
	}
}

// TestRapidCommit: a Solicit with rapid commit is answered with a Reply that says
// so, and its lease is committed.
func TestRapidCommit(t *testing.T) {
	s, m, sn, _ := newPool(t)
	c := client{mac: net.HardwareAddr{2, 0, 0, 0, 0, 8}}
	reply, _ := s.reply(t.Context(), sn, own, duid, netip.Addr{}, site.MAC{}, c.msg(t, dhcpv6.MessageTypeSolicit, netip.Addr{}, dhcpv6.WithRapidCommit))
	if reply.Type() != dhcpv6.MessageTypeReply || reply.GetOneOption(dhcpv6.OptionRapidCommit) == nil {
		t.Fatalf("got %s, want a Reply with rapid commit", reply)
	}
	a, _ := got(t, reply)
	if l, ok := m.Model().Lease(a); !ok || l.Client == "" {
		t.Errorf("the lease of %s: %+v, %v", a, l, ok)
	}
}

// TestNoAddressTwice races as many clients as the pool has addresses, and then three
// times as many, each soliciting and requesting at once, many rounds: no address is
// given to two; every address is given (a client whose pick another took meanwhile
// picks again); every client that got none was told NoAddrsAvail.
func TestNoAddressTwice(t *testing.T) {
	for round := range 40 {
		clients := []int{4, 12}[round%2]
		s, m, sn, _ := newPool(t)
		var mu sync.Mutex
		holders := map[netip.Addr]int{}
		refused := 0
		var wg, solicited sync.WaitGroup
		solicited.Add(clients)
		for i := range clients {
			wg.Go(func() {
				c := client{mac: net.HardwareAddr{2, byte(round), byte(i * 37), byte(i * 91), byte(round * 7), byte(i)}, name: fmt.Sprintf("c%d", i)}
				adv, _ := s.reply(t.Context(), sn, own, duid, netip.Addr{}, site.MAC{}, c.msg(t, dhcpv6.MessageTypeSolicit, netip.Addr{}))
				offered, _ := got(t, adv)
				solicited.Done()
				solicited.Wait() // every client has its offer: they collide, and request at once
				reply, _ := s.reply(t.Context(), sn, own, duid, netip.Addr{}, site.MAC{}, c.msg(t, dhcpv6.MessageTypeRequest, offered))
				a, st := got(t, reply)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case a.IsValid() && st == "":
					if prev, ok := holders[a]; ok {
						t.Errorf("round %d: %s given to clients %d and %d", round, a, prev, i)
					}
					holders[a] = i
				case st == iana.StatusNoAddrsAvail.String():
					refused++
				default:
					t.Errorf("round %d: client %d got %s (%s)", round, i, a, st)
				}
			})
		}
		wg.Wait()
		if len(holders) != 4 || refused != clients-4 {
			t.Fatalf("round %d: %d clients got addresses and %d were refused, want 4 and %d", round, len(holders), refused, clients-4)
		}
		for a, i := range holders {
			if l, ok := m.Model().Lease(a); !ok || l.Hostname != fmt.Sprintf("c%d", i) {
				t.Errorf("round %d: the lease of %s is %+v, want client %d's", round, a, l, i)
			}
		}
	}
}

// TestPrefixDelegation: a router asking for a prefix (IA_PD) beside its address is
// offered one of the pool's /64s, then granted it, recorded as its lease with the
// prefix's length; it renews it, releases it; and the pool of four runs out.
func TestPrefixDelegation(t *testing.T) {
	s, m, sn, _ := newPool(t)
	withPD := func(typ dhcpv6.MessageType, mac byte, p netip.Prefix) *dhcpv6.Message {
		msg := client{mac: net.HardwareAddr{2, 0, 0, 0, 1, mac}}.msg(t, typ, netip.Addr{})
		pd := &dhcpv6.OptIAPD{IaId: [4]byte{0, 0, 0, 9}}
		if p.IsValid() {
			pd.Options.Add(&dhcpv6.OptIAPrefix{Prefix: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 128)}})
		}
		msg.AddOption(pd)
		return msg
	}
	prefixOf := func(reply *dhcpv6.Message) (netip.Prefix, string) {
		t.Helper()
		pds := reply.Options.IAPD()
		if len(pds) != 1 {
			t.Fatalf("got %d IA_PDs in %v", len(pds), reply)
		}
		if st := pds[0].Options.Status(); st != nil && st.StatusCode != iana.StatusSuccess {
			return netip.Prefix{}, st.StatusCode.String()
		}
		ps := pds[0].Options.Prefixes()
		if len(ps) != 1 {
			t.Fatalf("got %d prefixes in %v", len(ps), pds[0])
		}
		a, _ := netip.AddrFromSlice(ps[0].Prefix.IP)
		bits, _ := ps[0].Prefix.Mask.Size()
		return netip.PrefixFrom(a, bits), ""
	}
	ask := func(typ dhcpv6.MessageType, mac byte, p netip.Prefix) (netip.Prefix, string) {
		reply, _ := s.reply(t.Context(), sn, own, duid, netip.Addr{}, site.MAC{}, withPD(typ, mac, p))
		return prefixOf(reply)
	}
	pool := netip.MustParsePrefix("fd00:100::/62")
	offered, st := ask(dhcpv6.MessageTypeSolicit, 1, netip.Prefix{})
	if st != "" || offered.Bits() != 64 || !pool.Contains(offered.Addr()) {
		t.Fatalf("offered %s (%s), want a /64 of %s", offered, st, pool)
	}
	if got, _ := ask(dhcpv6.MessageTypeRequest, 1, offered); got != offered {
		t.Fatalf("the Request got %s, want %s", got, offered)
	}
	l, ok := m.Model().Lease(offered.Addr())
	if !ok || l.Length != 64 || !strings.HasSuffix(l.Client, "/pd") || l.Hostname != "" {
		t.Fatalf("the delegated prefix's lease: %+v, %v", l, ok)
	}
	if got, _ := ask(dhcpv6.MessageTypeRenew, 1, offered); got != offered {
		t.Errorf("the Renew got %s, want %s", got, offered)
	}
	for mac := byte(2); mac <= 4; mac++ {
		p, st := ask(dhcpv6.MessageTypeSolicit, mac, netip.Prefix{})
		if got, _ := ask(dhcpv6.MessageTypeRequest, mac, p); st != "" || got != p || got == offered {
			t.Errorf("router %d: got %s (%s)", mac, got, st)
		}
	}
	if _, st := ask(dhcpv6.MessageTypeSolicit, 5, netip.Prefix{}); st != iana.StatusNoPrefixAvail.String() {
		t.Errorf("a fifth router: %q, want NoPrefixAvail", st)
	}
	if reply, _ := s.reply(t.Context(), sn, own, duid, netip.Addr{}, site.MAC{}, withPD(dhcpv6.MessageTypeRelease, 1, offered)); reply == nil {
		t.Fatal("no reply to the Release")
	}
	if _, ok := m.Model().Lease(offered.Addr()); ok {
		t.Error("the released prefix is still leased")
	}
}

// TestWithoutQuorum: a box cut off from its cluster's quorum grants nothing new (a new
// client is not answered: a box with the quorum answers it) and still answers a
// reserved client; one behind the log, or evicted, answers no new client either.
func TestWithoutQuorum(t *testing.T) {
	m, cfg := sitetest.IPAM(t, []byte(poolSite))
	sn, _ := m.Model().Subnet("lab6")
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"no quorum", Options{Quorum: func() bool { return false }}},
		{"behind the log", Options{CaughtUp: func() bool { return false }}},
		{"another node's client", Options{Share: func() (int, int) { return 0, 2 }}},
	} {
		tc.opts.Site, tc.opts.IPAM = cfg, m
		s := New(tc.opts)
		fresh := client{mac: net.HardwareAddr{2, 0, 0, 0, 9, 0}}
		for i := byte(1); tc.opts.Share != nil && s.mine(hexDUID(fresh.mac)); i++ {
			fresh.mac[5] = i // a client whose DUID hashes to the other node's share
		}
		// A Request names its server: the node the client chose answers it, whoever's
		// share the client is, once it can commit.
		typs := []dhcpv6.MessageType{dhcpv6.MessageTypeSolicit, dhcpv6.MessageTypeRequest}
		if tc.opts.Share != nil {
			typs = typs[:1]
		}
		for _, typ := range typs {
			if reply, _ := s.reply(t.Context(), sn, own, duid, netip.Addr{}, site.MAC{}, fresh.msg(t, typ, netip.Addr{})); reply != nil {
				t.Errorf("%s: a new client's %s was answered: %v", tc.name, typ, reply)
			}
		}
		reserved := client{mac: net.HardwareAddr{0x52, 0x54, 0, 0x77, 0, 0x10}}
		reply, _ := s.reply(t.Context(), sn, own, duid, netip.Addr{}, site.MAC{}, reserved.msg(t, dhcpv6.MessageTypeSolicit, netip.Addr{}))
		if a, _ := got(t, reply); a.String() != "fd00:77::10" {
			t.Errorf("%s: the reserved client got %s", tc.name, a)
		}
	}
	if n := len(m.Leases()); n != 0 {
		t.Errorf("%d leases were granted", n)
	}
}

// hexDUID is the DUID-LL of mac in hex, as the service keys its client.
func hexDUID(mac net.HardwareAddr) string {
	return hex.EncodeToString((&dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: mac}).ToBytes())
}

package importer

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/infrad/infrad/pkg/site"
)

// zones reads BIND zone files ([ORIGIN=]FILE) and zone transfers
// (axfr://SERVER[:PORT]/ZONE).
func (b *builder) zones(ctx context.Context, sources []string) error {
	for _, src := range sources {
		var rrs []positioned
		var origin string
		var err error
		if strings.HasPrefix(src, "axfr://") {
			origin, rrs, err = b.transfer(ctx, src)
		} else {
			origin, rrs, err = b.zoneFile(src)
		}
		if err != nil {
			return err
		}
		b.zone(origin, rrs)
	}
	return nil
}

type positioned struct {
	Pos
	rr dns.RR
}

// zoneFile parses a zone file; its origin is given as ORIGIN=FILE, else the file's
// $ORIGIN or its name (db.example.com, example.com.zone).
func (b *builder) zoneFile(src string) (string, []positioned, error) {
	origin, path, given := strings.Cut(src, "=")
	if !given {
		path = src
		base := filepath.Base(path)
		base = strings.TrimPrefix(base, "db.")
		for _, suf := range []string{".zone", ".db", ".hosts"} {
			base = strings.TrimSuffix(base, suf)
		}
		origin = base
	}
	data, err := readSource(path)
	if err != nil {
		return "", nil, err
	}
	origin = dns.Fqdn(strings.ToLower(origin))
	if !given && !strings.Contains(string(data), "$ORIGIN") {
		b.notef(Pos{path, 0}, "the zone's origin is taken from the file's name: %s (write ZONE=FILE to give another)", origin)
	}
	zp := dns.NewZoneParser(strings.NewReader(string(data)), origin, path)
	zp.SetIncludeAllowed(false) // ($INCLUDE would open any path, /dev/zero too: an error names it)
	var rrs []positioned
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		rrs = append(rrs, positioned{Pos{path, 0}, rr})
	}
	if err := zp.Err(); err != nil {
		return "", nil, fmt.Errorf("%s: %v", path, strings.TrimPrefix(err.Error(), "dns: "))
	}
	lineOf(string(data), path, rrs) // (the parser does not tell an RR's line)
	if len(rrs) == 0 || rrs[0].rr.Header().Rrtype != dns.TypeSOA {
		return "", nil, fmt.Errorf("%s: a zone file begins with its SOA record", path)
	}
	return rrs[0].rr.Header().Name, rrs, nil
}

// lineOf places each RR at the line of the file that holds it: the n-th record line
// (one that is not blank, a comment, a directive or a continuation).
func lineOf(text, path string, rrs []positioned) {
	i := 0
	depth := 0
	for n, l := range strings.Split(text, "\n") {
		code, _, _ := strings.Cut(l, ";")
		trimmed := strings.TrimSpace(code)
		starts := depth == 0 && trimmed != "" && !strings.HasPrefix(trimmed, "$")
		depth += strings.Count(code, "(") - strings.Count(code, ")")
		if starts && i < len(rrs) && rrs[i].File == path {
			rrs[i].Line = n + 1
			i++
		}
	}
}

// transfer takes a zone from a server: axfr://SERVER[:PORT]/ZONE, signed with the TSIG
// key of Options.TSIG ("name:algorithm:secret") when given.
func (b *builder) transfer(ctx context.Context, src string) (string, []positioned, error) {
	u, err := url.Parse(src)
	if err != nil || u.Host == "" || strings.Trim(u.Path, "/") == "" {
		return "", nil, fmt.Errorf("%q is not axfr://SERVER[:PORT]/ZONE", src)
	}
	server := u.Host
	if _, _, err := net.SplitHostPort(server); err != nil {
		server = net.JoinHostPort(strings.Trim(server, "[]"), "53")
	}
	zone := dns.Fqdn(strings.ToLower(strings.Trim(u.Path, "/")))
	m := new(dns.Msg)
	m.SetAxfr(zone)
	tr := &dns.Transfer{DialTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second}
	if b.opts.TSIG != "" {
		parts := strings.SplitN(b.opts.TSIG, ":", 3)
		if len(parts) != 3 {
			return "", nil, fmt.Errorf("--tsig %q is not NAME:ALGORITHM:SECRET", b.opts.TSIG)
		}
		name, alg := dns.Fqdn(parts[0]), dns.Fqdn(strings.ToLower(parts[1]))
		tr.TsigSecret = map[string]string{name: parts[2]}
		m.SetTsig(name, alg, 300, time.Now().Unix())
	}
	if d, ok := ctx.Deadline(); ok {
		tr.ReadTimeout = time.Until(d)
	}
	env, err := tr.In(m, server)
	if err != nil {
		return "", nil, fmt.Errorf("transfer %s from %s: %w", zone, server, err)
	}
	var rrs []positioned
	for e := range env {
		if e.Error != nil {
			return "", nil, fmt.Errorf("transfer %s from %s: %w", zone, server, e.Error)
		}
		for _, rr := range e.RR {
			rrs = append(rrs, positioned{Pos{src, 0}, rr})
		}
	}
	if len(rrs) < 2 {
		return "", nil, fmt.Errorf("transfer %s from %s: the server sent no zone", zone, server)
	}
	rrs = rrs[:len(rrs)-1] // the closing SOA
	for i := range rrs {
		rrs[i].Line = i + 1 // the transfer's n-th record
	}
	return zone, rrs, nil
}

// zone translates a zone's records: the apex SOA and NS are infrad's own; an address
// in a subnet of the site, a name's only one of its family, makes the name a host (its
// reverse name follows from it); every other record is a record.
func (b *builder) zone(origin string, rrs []positioned) {
	reverse := strings.HasSuffix(origin, ".in-addr.arpa.") || strings.HasSuffix(origin, ".ip6.arpa.")
	if !reverse {
		if b.s.Domain == "" {
			b.s.Domain = strings.TrimSuffix(origin, ".")
		} else if !strings.EqualFold(b.s.Domain+".", origin) && !slices.Contains(b.s.Zones, strings.TrimSuffix(origin, ".")) {
			b.s.Zones = append(b.s.Zones, strings.TrimSuffix(origin, "."))
		}
	}
	// The TTL most records have is the site's; the others keep theirs.
	count := map[uint32]int{}
	for _, p := range rrs {
		count[p.rr.Header().Ttl]++
	}
	ttl := uint32(0)
	for t, n := range count {
		if n > count[ttl] || (n == count[ttl] && t < ttl) {
			ttl = t
		}
	}
	if b.s.TTL == 0 && !reverse && b.opts.TTL == 0 {
		b.s.TTL = int(ttl)
	}
	siteTTL := uint32(b.s.TTL)
	if b.opts.TTL != 0 {
		siteTTL = uint32(b.opts.TTL)
	}
	// How many addresses of each family each name has.
	addrs := map[string][2]int{}
	for _, p := range rrs {
		h := p.rr.Header()
		if h.Rrtype == dns.TypeA || h.Rrtype == dns.TypeAAAA {
			n := addrs[h.Name]
			n[btoi(h.Rrtype == dns.TypeAAAA)]++
			addrs[h.Name] = n
		}
	}
	nets := slices.Clone(b.opts.Subnets)
	for _, sn := range b.subnets {
		if p, err := netip.ParsePrefix(sn.v.CIDR); err == nil {
			nets = append(nets, p)
		}
	}
	if len(nets) == 0 && len(addrs) > 0 && !reverse {
		b.notef(Pos{rrs[0].File, 0}, "no subnet is known, so every address record stays a record: import into a site file with its subnets (-c, --to) or into a running infrad (--api) to make the names in them hosts, whose PTR records follow")
	}
	for _, p := range rrs {
		rr := p.rr
		h := rr.Header()
		var ttlp *int
		if h.Ttl != siteTTL {
			t := int(h.Ttl)
			ttlp = &t
		}
		typ := dns.TypeToString[h.Rrtype]
		switch {
		case h.Rrtype == dns.TypeSOA:
			continue // infrad's own, with its serial
		case h.Rrtype == dns.TypeNS && h.Name == origin:
			b.notef(p.Pos, "the zone's NS %s: infrad names its own name servers (dns.advertise, the cluster's nodes); left out", rr.(*dns.NS).Ns)
			continue
		case h.Rrtype == dns.TypeA || h.Rrtype == dns.TypeAAAA:
			ip := addrOf(rr)
			inSubnet := slices.ContainsFunc(nets, func(p netip.Prefix) bool { return p.Contains(ip) })
			n := addrs[h.Name]
			single := n[btoi(ip.Is6())] == 1
			host := strings.TrimSuffix(h.Name, "."+origin)
			// A name at the zone's usual TTL may be a host (served at the site's TTL);
			// one with a TTL of its own keeps it, as a record.
			if inSubnet && single && h.Ttl == ttl && !strings.Contains(host, ".") && h.Name != origin && !strings.HasPrefix(host, "*") {
				if ttlp != nil {
					b.notef(p.Pos, "%s: served at TTL %d, as a host at the site's (%d)", h.Name, h.Ttl, siteTTL)
				}
				b.host(p.Pos, hostItem{HostSpec: hostAt(ip, h.Name)})
				continue
			}
			b.record(p.Pos, site.RecordSpec{Name: h.Name, Type: typ, Value: ip.String(), TTL: ttlp})
		case h.Rrtype == dns.TypePTR && reverse:
			b.reversePTR(p, rr.(*dns.PTR), ttlp)
		case slices.Contains(site.RecordTypes, typ):
			value := strings.TrimSpace(strings.TrimPrefix(rr.String(), h.String()))
			b.record(p.Pos, site.RecordSpec{Name: h.Name, Type: typ, Value: value, TTL: ttlp})
		default:
			b.notef(p.Pos, "%s record of %s: not translated (infrad's records are %s)", typ, h.Name, strings.Join(site.RecordTypes, ", "))
		}
	}
}

// reversePTR keeps a reverse zone's PTR unless it is what a host of the import
// derives; finish then drops those whose host did not come to be.
func (b *builder) reversePTR(p positioned, ptr *dns.PTR, ttl *int) {
	if ip, err := addrOfReverse(ptr.Hdr.Name); err == nil {
		if i, ok := b.hostAt[ip.String()]; ok && strings.EqualFold(dns.Fqdn(b.hosts[i].v.Name), ptr.Ptr) {
			return // the host's reverse name follows from it
		}
	}
	b.record(p.Pos, site.RecordSpec{Name: ptr.Hdr.Name, Type: "PTR", Value: ptr.Ptr, TTL: ttl})
}

func addrOf(rr dns.RR) netip.Addr {
	switch r := rr.(type) {
	case *dns.A:
		a, _ := netip.AddrFromSlice(r.A.To4())
		return a
	case *dns.AAAA:
		a, _ := netip.AddrFromSlice(r.AAAA)
		return a
	}
	return netip.Addr{}
}

// addrOfReverse is the address a reverse name stands for.
func addrOfReverse(name string) (netip.Addr, error) {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if v4, ok := strings.CutSuffix(name, ".in-addr.arpa"); ok {
		l := strings.Split(v4, ".")
		slices.Reverse(l)
		return netip.ParseAddr(strings.Join(l, "."))
	}
	if v6, ok := strings.CutSuffix(name, ".ip6.arpa"); ok {
		l := strings.Split(v6, ".")
		if len(l) != 32 {
			return netip.Addr{}, fmt.Errorf("not a whole address")
		}
		slices.Reverse(l)
		var sb strings.Builder
		for i, n := range l {
			if i > 0 && i%4 == 0 {
				sb.WriteByte(':')
			}
			sb.WriteString(n)
		}
		return netip.ParseAddr(sb.String())
	}
	return netip.Addr{}, fmt.Errorf("not a reverse name")
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

package config

import (
	"encoding/base64"
	"fmt"
	"math"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/infrad/infrad/pkg/site"
)

// validator turns a file into a Site, collecting every mistake with its key path.
type validator struct {
	shape *shape
	errs  Errors
	bad   []string // paths already reported: problems at, under or above them are noise
}

func (v *validator) errorf(path, format string, args ...any) {
	if v.related(path) {
		return
	}
	v.errs = append(v.errs, Error{File: v.shape.file, Line: v.shape.lines.line(path), Path: path, Msg: fmt.Sprintf(format, args...)})
	v.bad = append(v.bad, path)
}

// related reports whether path is at, under or above a path already reported.
func (v *validator) related(path string) bool {
	under := func(a, b string) bool {
		return a == b || strings.HasPrefix(a, b+".") || strings.HasPrefix(a, b+"[")
	}
	for _, b := range v.bad {
		if under(path, b) || under(b, path) {
			return true
		}
	}
	return false
}

func (v *validator) site(f *file) *Site {
	s := &Site{DataDir: orDefault(f.DataDir, DefaultDataDir), MaxDeletes: -1}
	if f.MaxDeletes != nil {
		if *f.MaxDeletes < 0 {
			v.errorf("max_deletes", "%d is not a number of objects", *f.MaxDeletes)
		}
		s.MaxDeletes = *f.MaxDeletes
	}
	if d := f.ChangeLog.Days; d != nil {
		if *d < 1 || *d > 3650 {
			v.errorf("change_log.days", "%d: keep the change log from 1 to 3650 days (default %d)", *d, site.DefaultChangeDays)
		}
		s.ChangeLog.Days = *d
	}
	if n := f.ChangeLog.Entries; n != nil {
		if *n < 100 || *n > 10_000_000 {
			v.errorf("change_log.entries", "%d: keep from 100 to 10,000,000 entries (default %d)", *n, site.DefaultChangeEntries)
		}
		s.ChangeLog.Entries = *n
	}
	if f.Domain == "" {
		v.errorf("domain", "the site needs a domain, such as k8s.example.com")
	} else if d, err := site.ParseZone(f.Domain); err != nil {
		v.errorf("domain", "%v", err)
	} else {
		s.Domain = d
	}
	s.API.Listen = v.listen("api.listen", orDefault(f.API.Listen, DefaultAPIListen))
	s.API.RateLimit = v.rate("api.rate_limit", f.API.RateLimit, DefaultAPIRateLimit)
	s.Subnets = parseSpecs(v, "subnets", f.Subnets, site.SubnetSpec.Parse)
	s.Hosts = parseSpecs(v, "hosts", f.Hosts, site.HostSpec.Parse)
	s.DNS = v.dns(&f.DNS, s)
	s.NTP = v.ntp(&f.NTP)
	s.DHCP = v.dhcp(&f.DHCP)
	s.CA = v.ca(&f.CA, s.Domain)
	s.Boot = v.boot(&f.Boot)
	s.SSH = v.ssh(&f.SSH)
	s.Kubernetes = v.kubernetes(&f.Kubernetes, s)
	s.MetalLB = v.metallb(&f.MetalLB)
	s.Cluster = v.cluster(f.Cluster)
	set := s.IPAM()
	for _, p := range set.Problems() {
		v.errorf(FilePath(p), "%s", p.Message)
	}
	return s
}

// FilePath is where an IPAM problem about a site-file object stands in the file:
// records are under dns.
func FilePath(p site.Problem) string {
	if p.List == "records" {
		return "dns." + p.Path()
	}
	return p.Path()
}

func (v *validator) dns(f *fileDNS, s *Site) DNS {
	d := DNS{TTL: DefaultTTL}
	listen := f.Listen
	if listen == nil {
		listen = []string{DefaultDNSListen}
	} else if len(listen) == 0 {
		v.errorf("dns.listen", "DNS needs at least one address to listen on (leave the key out for %s)", DefaultDNSListen)
	}
	for i, l := range listen {
		d.Listen = append(d.Listen, v.listen(fmt.Sprintf("dns.listen[%d]", i), l))
	}
	if f.Advertise != "" {
		d.Advertise = v.addr("dns.advertise", f.Advertise)
	} else {
		for _, l := range d.Listen {
			if a := l.Addr(); a.IsValid() && !a.IsUnspecified() {
				d.Advertise = a
				break
			}
		}
	}
	for i, z := range f.Zones {
		at := fmt.Sprintf("dns.zones[%d]", i)
		name, err := site.ParseZone(z)
		switch {
		case err != nil:
			v.errorf(at, "%v", err)
		case name == s.Domain:
			v.errorf(at, "%s is the site's domain, which is served already", name)
		case slices.Contains(d.Zones, name):
			v.errorf(at, "%s is listed twice", name)
		default:
			d.Zones = append(d.Zones, name)
		}
	}
	d.Forwarders = v.servers("dns.forwarders", f.Forwarders)
	if f.RecursionAllow == nil {
		d.RecursionAllow = defaultRecursionAllow(s.Subnets)
	}
	for i, p := range f.RecursionAllow {
		d.RecursionAllow = append(d.RecursionAllow, v.prefix(fmt.Sprintf("dns.recursion_allow[%d]", i), p))
	}
	if f.TTL != nil {
		d.TTL = v.ttl("dns.ttl", *f.TTL, 1)
	}
	d.Secondaries = v.servers("dns.secondaries", f.Secondaries)
	for i, p := range f.TransferFrom {
		d.TransferFrom = append(d.TransferFrom, v.prefix(fmt.Sprintf("dns.transfer_from[%d]", i), p))
	}
	d.TSIGKeys = v.tsigKeys(f.TSIGKeys)
	d.RateLimit = v.rate("dns.rate_limit", f.RateLimit, 0)
	d.DNSSEC = f.DNSSEC
	if f.DNSSECKSK != "" {
		d.KSKLife = v.duration("dns.dnssec_ksk", f.DNSSECKSK, 0, 30*24*time.Hour) // a roll takes days
	}
	if s.Domain == "" {
		return d // records are relative to the domain: nothing to check them against
	}
	d.Records = parseSpecs(v, "dns.records", f.Records, func(r site.RecordSpec) (site.Record, []site.FieldError) {
		return r.Parse(s.Domain)
	})
	return d
}

// defaultRecursionAllow lets the site's own networks and this machine resolve names
// outside our zones, and no one else.
func defaultRecursionAllow(subnets []site.Subnet) []netip.Prefix {
	allow := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	for _, sn := range subnets {
		if sn.CIDR.IsValid() {
			allow = append(allow, sn.CIDR)
		}
	}
	return allow
}

func (v *validator) tsigKeys(keys []fileTSIGKey) []TSIGKey {
	var out []TSIGKey
	for i, k := range keys {
		at := fmt.Sprintf("dns.tsig_keys[%d]", i)
		name, err := site.ParseZone(k.Name)
		if err != nil {
			v.errorf(at+".name", "%v", err)
		} else if slices.ContainsFunc(out, func(o TSIGKey) bool { return o.Name == name }) {
			v.errorf(at+".name", "key %s is defined twice", name)
		}
		alg := strings.ToLower(k.Algorithm)
		if !slices.Contains(TSIGAlgorithms, alg) {
			v.errorf(at+".algorithm", "%q is not one of %s", k.Algorithm, strings.Join(TSIGAlgorithms, ", "))
		}
		if k.Secret == "" {
			v.errorf(at+".secret", "the key has no secret")
		} else if _, err := base64.StdEncoding.DecodeString(k.Secret); err != nil {
			v.errorf(at+".secret", "the secret is not base64 (tsig-keygen or 'openssl rand -base64 32' make one)")
		}
		out = append(out, TSIGKey{Name: name, Algorithm: alg, Secret: k.Secret, Transfer: k.Transfer == nil || *k.Transfer})
	}
	return out
}

func (v *validator) ntp(f *fileNTP) NTP {
	n := NTP{Upstream: f.Upstream}
	listen := f.Listen
	if listen == nil {
		listen = []string{DefaultNTPListen}
	} else if len(listen) == 0 {
		v.errorf("ntp.listen", "NTP needs at least one address to listen on (leave the key out for %s)", DefaultNTPListen)
	}
	for i, l := range listen {
		n.Listen = append(n.Listen, v.listen(fmt.Sprintf("ntp.listen[%d]", i), l))
	}
	for i, u := range f.Upstream {
		if err := checkServer(u); err != nil {
			v.errorf(fmt.Sprintf("ntp.upstream[%d]", i), "%v", err)
		}
	}
	if f.LocalStratum != nil {
		if s := *f.LocalStratum; s < 1 || s > 15 {
			v.errorf("ntp.local_stratum", "%d is not a stratum from 1 to 15", s)
		} else {
			n.LocalStratum = s
		}
	}
	if f.Chronyd != "none" {
		n.Chronyd = v.listen("ntp.chronyd", orDefault(f.Chronyd, DefaultChronyd))
	}
	n.MaxOffset = v.duration("ntp.max_offset", f.MaxOffset, DefaultMaxOffset, time.Millisecond)
	n.RateLimit = v.rate("ntp.rate_limit", f.RateLimit, DefaultRateLimit)
	n.NTS = f.NTS
	switch {
	case f.NTSListen != nil && !f.NTS:
		v.errorf("ntp.nts_listen", "NTS is off: set ntp.nts: true, or leave nts_listen out")
	case f.NTSListen == nil && f.NTS: // by default, beside each NTP address
		for _, l := range n.Listen {
			if l.IsValid() {
				n.NTSListen = append(n.NTSListen, netip.AddrPortFrom(l.Addr(), DefaultNTSPort))
			}
		}
	case f.NTS && len(f.NTSListen) == 0:
		v.errorf("ntp.nts_listen", "NTS needs an address for its key establishment (leave the key out for port %d beside each NTP address)", DefaultNTSPort)
	}
	for i, l := range f.NTSListen {
		n.NTSListen = append(n.NTSListen, v.listen(fmt.Sprintf("ntp.nts_listen[%d]", i), l))
	}
	return n
}

func (v *validator) dhcp(f *fileDHCP) DHCP {
	d := DHCP{
		LeaseTime:      v.duration("dhcp.lease_time", f.LeaseTime, DefaultLeaseTime, 10*time.Second),
		RateLimit:      v.rate("dhcp.rate_limit", f.RateLimit, DefaultDHCPRateLimit),
		RelayRateLimit: v.rate("dhcp.relay_rate_limit", f.RelayRateLimit, 0),
		Mode:           orDefault(f.Mode, DHCPServer),
	}
	if d.Mode != DHCPServer && d.Mode != DHCPProxy {
		v.errorf("dhcp.mode", "%q is not a mode: server (hand out addresses) or proxy (answer network boot clients only, beside another DHCP server)", f.Mode)
	}
	for i, name := range f.Interfaces {
		at := fmt.Sprintf("dhcp.interfaces[%d]", i)
		switch {
		case name == "" || len(name) > 15 || strings.ContainsAny(name, "/: \t"):
			v.errorf(at, "%q is not an interface name", name)
		case slices.Contains(d.Interfaces, name):
			v.errorf(at, "interface %s is listed twice", name)
		default:
			d.Interfaces = append(d.Interfaces, name)
		}
	}
	return d
}

func (v *validator) boot(f *fileBoot) Boot {
	b := Boot{Root: f.Root, Profiles: f.Profiles}
	if b.Root != "" && !filepath.IsAbs(b.Root) {
		v.errorf("boot.root", "%q is not an absolute path", b.Root)
	}
	b.HTTPListen = v.listen("boot.http_listen", orDefault(f.HTTPListen, DefaultBootHTTP))
	b.TFTPListen = v.listen("boot.tftp_listen", orDefault(f.TFTPListen, DefaultTFTPListen))
	names := map[string]bool{}
	for i, p := range f.Profiles {
		at := fmt.Sprintf("boot.profiles[%d]", i)
		for _, e := range p.Check() {
			v.errorf(at+"."+e.Field, "%s", e.Msg)
		}
		if names[p.Name] {
			v.errorf(at+".name", "profile %q is defined twice", p.Name)
		}
		names[p.Name] = true
	}
	return b
}

func (v *validator) ssh(f *fileSSH) SSH {
	count := func(key string, n *int, def, most int, unit time.Duration, what string) time.Duration {
		if n == nil {
			return time.Duration(def) * unit
		}
		if *n < 1 || *n > most {
			v.errorf(key, "%d: give from 1 to %d %s (default %d)", *n, most, what, def)
		}
		return time.Duration(*n) * unit
	}
	return SSH{
		HostCertLife: count("ssh.host_cert_days", f.HostCertDays, DefaultHostCertDays, 366, 24*time.Hour, "days"),
		UserCertLife: count("ssh.user_cert_hours", f.UserCertHours, DefaultUserCertHours, 24*7, time.Hour, "hours"),
	}
}

func (v *validator) ca(f *fileCA, domain site.Name) CA {
	c := CA{
		Listen:       v.listen("ca.listen", orDefault(f.Listen, DefaultCAListen)),
		CertLifetime: v.duration("ca.cert_lifetime", f.CertLifetime, DefaultCertLifetime, time.Hour),

		ExternalAccountBinding: f.ACMEEAB,
	}
	if f.HTTP01Port != nil {
		if p := *f.HTTP01Port; p < 1 || p > 65535 {
			v.errorf("ca.http01_port", "%d is not a port", p)
		} else {
			c.HTTP01Port = p
		}
	}
	if f.Name == "" {
		if domain != "" {
			c.Name = "ca." + domain
		}
		return c
	}
	name, err := site.ParseZone(f.Name)
	if err != nil {
		v.errorf("ca.name", "%v", err)
	}
	c.Name = name
	return c
}

// parseSpecs parses the specs of one list of the file, reporting each malformed field
// with its key path.
func parseSpecs[S, T any](v *validator, list string, specs []S, parse func(S) (T, []site.FieldError)) []T {
	out := make([]T, len(specs))
	for i, spec := range specs {
		var errs []site.FieldError
		out[i], errs = parse(spec)
		for _, e := range errs {
			v.errorf(fmt.Sprintf("%s[%d].%s", list, i, e.Field), "%s", e.Msg)
		}
	}
	return out
}

func (v *validator) addr(at, s string) netip.Addr {
	a, err := site.ParseAddr(s)
	if err != nil {
		v.errorf(at, "%v", err)
	}
	return a
}

func (v *validator) listen(at, s string) netip.AddrPort {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		v.errorf(at, "%q is not an address with a port, such as 0.0.0.0:53 or [::]:53", s)
	}
	return ap
}

// prefix parses a CIDR; a bare address stands for itself (/32 or /128).
func (v *validator) prefix(at, s string) netip.Prefix {
	if a, err := site.ParseAddr(s); err == nil {
		return netip.PrefixFrom(a, a.BitLen())
	}
	p, err := site.ParseCIDR(s)
	if err != nil {
		v.errorf(at, "%v", err)
	}
	return p
}

func (v *validator) ttl(at string, n, least int) uint32 {
	if n < least || n > math.MaxInt32 {
		v.errorf(at, "%d is not a TTL from %d to %d seconds", n, least, math.MaxInt32)
		return 0
	}
	return uint32(n)
}

// duration parses "12h", "90m" or "90d" (days), falling back to def when s is empty.
func (v *validator) duration(at, s string, def, least time.Duration) time.Duration {
	if s == "" {
		return def
	}
	d, err := parseDuration(s)
	if err != nil {
		v.errorf(at, "%q is not a duration, such as 12h, 90m or 90d", s)
		return def
	}
	if d < least {
		v.errorf(at, "%s is shorter than %s", s, least)
	}
	return d
}

func parseDuration(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 || n > math.MaxInt64/int(24*time.Hour) {
			return 0, fmt.Errorf("bad number of days %q", days)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

// servers parses a list of DNS servers, "ip" or "ip:port", port 53 by default.
func (v *validator) servers(list string, ss []string) []netip.AddrPort {
	var out []netip.AddrPort
	for i, s := range ss {
		ap, err := parseHostPort(s, 53)
		if err != nil {
			v.errorf(fmt.Sprintf("%s[%d]", list, i), "%v", err)
			continue
		}
		out = append(out, ap)
	}
	return out
}

// parseHostPort parses "192.0.2.53", "192.0.2.53:5353", "2001:db8::53" or
// "[2001:db8::53]:5353", giving port def when none is written.
func parseHostPort(s string, def uint16) (netip.AddrPort, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.AddrPortFrom(a, def), nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%q is not an IP address with an optional port", s)
	}
	return ap, nil
}

// checkServer checks an NTP upstream: an IP address or hostname, with an optional port.
func checkServer(s string) error {
	if _, err := parseHostPort(s, 123); err == nil {
		return nil
	}
	host, port, found := strings.Cut(s, ":")
	if found {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%q has no valid port after the colon", s)
		}
	}
	if _, err := site.ParseZone(host); err != nil {
		return fmt.Errorf("%q is neither an IP address nor a hostname", s)
	}
	return nil
}

// rate reads a per-second limit: def when it is absent, 0 for none.
func (v *validator) rate(at string, n *int, def int) int {
	if n == nil {
		return def
	}
	if *n < 0 {
		v.errorf(at, "%d is not a number a second (0 for no limit)", *n)
		return def
	}
	return *n
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Package config reads the site file. It parses the YAML strictly (an unknown key is a
// mistake), applies defaults and validates everything at once, naming each mistake with
// its key path and line. What it returns is typed: addresses are netip values, hosts
// and subnets are ipam objects, and ipam's own rules have passed.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/infrad/infrad/pkg/site"
	"go.yaml.in/yaml/v3"
)

// Site is a validated site file.
type Site struct {
	Source  string    // the file it was read from
	Domain  site.Name // the forward zone hosts live in
	DataDir string
	API     API
	DNS     DNS
	NTP     NTP
	DHCP    DHCP
	CA      CA
	Boot    Boot
	SSH     SSH
	Subnets []site.Subnet
	Hosts   []site.Host
	// What the exports tell a cluster's tools: kubeadm's endpoint, MetalLB's BGP.
	Kubernetes Kubernetes
	MetalLB    MetalLB
	Cluster    *Cluster // nil: one box
	// MaxDeletes is the change budget: a reload that would remove more objects of the
	// site file than this is refused. Negative: no limit.
	MaxDeletes int
	// ChangeLog bounds the change log (zero fields: ipam's defaults, 90 days and
	// 100,000 entries).
	ChangeLog site.ChangeLimits

	lines lines // where each key path stands in the file
}

// ErrorAt places a mistake found after validation, such as a conflict with an object
// made through the API, at its key path and line in the site file.
func (s *Site) ErrorAt(path, msg string) Error {
	return Error{File: s.Source, Line: s.lines.line(path), Path: path, Msg: msg}
}

// API is where the REST API and the UI listen.
type API struct {
	Listen    netip.AddrPort
	RateLimit int // requests a second per client (twice that at once); 0: no limit
}

// DNS configures the DNS service.
type DNS struct {
	Listen         []netip.AddrPort
	Advertise      netip.Addr  // where secondaries and clients reach us: the NS glue; may be zero
	Zones          []site.Name // authoritative zones besides Domain
	Forwarders     []netip.AddrPort
	RecursionAllow []netip.Prefix   // who may have names outside our zones resolved
	TTL            uint32           // for answers without a TTL of their own; > 0
	Secondaries    []netip.AddrPort // notified of every change, at the port (53 by default); may transfer unsigned from their address
	TransferFrom   []netip.Prefix   // further sources that may transfer the zones unsigned
	TSIGKeys       []TSIGKey
	Records        []site.Record
	RateLimit      int  // authoritative answers a second per client (twice that at once); 0: no limit
	DNSSEC         bool // sign the zones (online, with keys kept in the store)
	// KSKLife is how long a KSK signs before it is rolled (dns.dnssec_ksk); 0: rolled
	// on command only.
	KSKLife time.Duration
}

// TSIGKey is a shared secret that signs zone transfers and dynamic updates.
type TSIGKey struct {
	Name      site.Name
	Algorithm string // one of TSIGAlgorithms
	Secret    string // base64, as nsupdate and external-dns take it
	Transfer  bool   // a transfer signed with the key is served from any address
}

// TSIGAlgorithms are the HMACs a TSIG key may use.
var TSIGAlgorithms = []string{"hmac-md5", "hmac-sha1", "hmac-sha224", "hmac-sha256", "hmac-sha384", "hmac-sha512"}

// NTP configures the time service.
type NTP struct {
	Listen       []netip.AddrPort
	Upstream     []string       // host or host:port
	LocalStratum int            // 0: do not serve the local clock when no source is reachable
	Chronyd      netip.AddrPort // a co-located chronyd's command port; zero: none is asked
	MaxOffset    time.Duration  // past this from the upstreams, infrad says it is unsynchronised
	RateLimit    int            // requests per second per client before a KoD RATE; 0: no limit
	// NTS serves Network Time Security (RFC 8915): its key establishment on NTSListen,
	// NTS-protected NTP on Listen.
	NTS       bool
	NTSListen []netip.AddrPort
}

// DHCP configures the DHCP service.
type DHCP struct {
	Mode           string   // DHCPServer (the default) or DHCPProxy
	Interfaces     []string // none: the service is idle
	LeaseTime      time.Duration
	RateLimit      int // messages a second per client MAC (twice that at once); 0: no limit
	RelayRateLimit int // messages a second per relay agent (giaddr); 0: no limit
}

// The DHCP modes: a server hands out the site's addresses; a proxy (proxyDHCP) leaves
// that to the site's router and answers network boot clients only, with where they
// boot from.
const (
	DHCPServer = "server"
	DHCPProxy  = "proxy"
)

// CA configures the ACME certificate authority.
type CA struct {
	Listen       netip.AddrPort
	Name         site.Name // the CA's own DNS name: https://<name>/acme/acme/directory
	CertLifetime time.Duration
	HTTP01Port   int // where http-01 challenges are fetched; ACME says 80 (0 here)
	// ExternalAccountBinding makes every new ACME account show one of the CA's EAB
	// keys (RFC 8555 §7.3.4), made through the API (ca.acme_eab).
	ExternalAccountBinding bool
}

// Boot configures network boot: the profiles hosts and subnets name, and the TFTP
// server and HTTP endpoint that serve their files. Without profiles it serves nothing.
type Boot struct {
	Root       string         // TFTP and HTTP serve files only below it; "": BootRoot's default
	HTTPListen netip.AddrPort // the token-free boot endpoint: scripts, files, the callback
	TFTPListen netip.AddrPort // TFTP, for firmware that fetches iPXE by PXE
	Profiles   []site.BootProfile
}

// SSH bounds the SSH certificates the site's CA signs.
type SSH struct {
	HostCertLife time.Duration // a host certificate's, renewed at a third left
	UserCertLife time.Duration // the longest a user certificate may ask for (and its default)
}

// AnswersAt reports whether infrad's DNS answers at a on port 53, where a node's
// resolver asks (what router advertisements and DHCPv6 give nodes).
func (d DNS) AnswersAt(a netip.Addr) bool { return listensAt(d.Listen, a, 53) }

// AnswersAt reports whether infrad's NTP answers at a on port 123, where a node's
// client asks (what DHCPv6 gives nodes).
func (n NTP) AnswersAt(a netip.Addr) bool { return listensAt(n.Listen, a, 123) }

// listensAt reports whether one of listen is a on port: a itself, or the unspecified
// address of a's family.
func listensAt(listen []netip.AddrPort, a netip.Addr, port uint16) bool {
	return slices.ContainsFunc(listen, func(l netip.AddrPort) bool {
		return l.Port() == port && (l.Addr() == a || l.Addr().IsUnspecified() && l.Addr().Is6() == a.Is6())
	})
}

// BootRoot is where network boot's files are: boot.root, else <data_dir>/boot (the
// data directory as it is when asked: serve's --data may move it).
func (s *Site) BootRoot() string {
	if s.Boot.Root != "" {
		return s.Boot.Root
	}
	return filepath.Join(s.DataDir, "boot")
}

// ProfileNames are the names of the site's boot profiles.
func (b Boot) ProfileNames() []string {
	var names []string
	for _, p := range b.Profiles {
		names = append(names, p.Name)
	}
	return names
}

// Defaults for keys the site file leaves out.
const (
	DefaultDataDir       = "/var/lib/infrad"
	DefaultAPIListen     = "127.0.0.1:8080"
	DefaultDNSListen     = "0.0.0.0:53"
	DefaultNTPListen     = "0.0.0.0:123"
	DefaultCAListen      = "0.0.0.0:443"
	DefaultTTL           = 300
	DefaultLeaseTime     = 12 * time.Hour
	DefaultCertLifetime  = 90 * 24 * time.Hour
	DefaultHostCertDays  = 30 // ssh.host_cert_days
	DefaultUserCertHours = 8  // ssh.user_cert_hours
	DefaultChronyd       = "127.0.0.1:323"
	DefaultNTSPort       = 4460 // NTS-KE (RFC 8915 §4)
	DefaultMaxOffset     = 100 * time.Millisecond
	DefaultRateLimit     = 16 // NTP requests a second per client
	DefaultAPIRateLimit  = 50
	DefaultDHCPRateLimit = 10
	DefaultBootHTTP      = "0.0.0.0:8081"
	DefaultTFTPListen    = "0.0.0.0:69"
)

// IPAM returns the site's address objects as an ipam.Set.
func (s *Site) IPAM() site.Set {
	return site.Set{Domain: s.Domain, Zones: s.DNS.Zones, Subnets: s.Subnets, Hosts: s.Hosts, Records: s.DNS.Records, Changes: s.ChangeLog, Boot: s.Boot.ProfileNames(),
		DNS: site.ZoneSettings{TTL: s.DNS.TTL, NameServers: s.NameServers(), Signed: s.DNS.DNSSEC, Services: s.ServiceNames()}}
}

// ServiceNames are the names infrad hands out for itself that its zones serve: the
// CA's (the ACME directory's host), and ntp.<domain> and infrad.<domain>, which the
// NTS-KE and API certificates carry. A name outside the zones is left out (Warnings
// names it).
func (s *Site) ServiceNames() []site.Name {
	var out []site.Name
	for _, n := range []site.Name{s.CA.Name, "ntp." + s.Domain, "infrad." + s.Domain} {
		if s.inZones(n) && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// inZones reports whether n is in one of the site's forward zones.
func (s *Site) inZones(n site.Name) bool {
	return slices.ContainsFunc(append([]site.Name{s.Domain}, s.DNS.Zones...), n.IsIn)
}

// NameServers are the addresses the zones name as their servers': a cluster's serving
// nodes (every node's site file says the same), else the one box's dns.advertise.
func (s *Site) NameServers() []netip.Addr {
	if s.Cluster != nil {
		var out []netip.Addr
		for _, n := range s.Cluster.Serving() {
			out = append(out, n.Address)
		}
		return out
	}
	if s.DNS.Advertise.IsValid() {
		return []netip.Addr{s.DNS.Advertise}
	}
	return nil
}

// Load reads and validates the site file at path. A validation failure is an Errors.
func Load(path string) (*Site, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read site file: %w", err)
	}
	return Parse(path, data)
}

// Parse validates a site file's contents; name is used in error messages. Every mistake
// found is returned at once, as an Errors in file order.
func Parse(name string, data []byte) (*Site, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	err := dec.Decode(&doc)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, Errors{syntaxError(name, err)}
	}
	if len(doc.Content) == 0 {
		return nil, Errors{{File: name, Msg: "the site file is empty"}}
	}
	sh := newShape(name)
	sh.walk(doc.Content[0], reflect.TypeFor[file](), "")

	var f file
	// Shape errors were reported with their key paths above; the decoder's own
	// errors for the same values say less, so they are dropped.
	var typeErr *yaml.TypeError
	if err := doc.Content[0].Decode(&f); err != nil && !errors.As(err, &typeErr) {
		return nil, Errors{{File: name, Msg: err.Error()}}
	}
	v := validator{shape: sh, bad: sh.bad}
	site := v.site(&f)
	site.Source, site.lines = name, sh.lines
	errs := append(sh.errs, v.errs...)
	if len(errs) > 0 {
		errs.sort()
		return nil, errs
	}
	return site, nil
}

// syntaxError places a YAML parse error ("yaml: line 4: did not find expected key").
func syntaxError(file string, err error) Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	var line int
	if _, scanErr := fmt.Sscanf(msg, "line %d:", &line); scanErr == nil {
		_, msg, _ = strings.Cut(msg, ": ")
	}
	return Error{File: file, Line: line, Msg: msg}
}

package importer

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/infrad/infrad/pkg/site"
)

// Kea's configuration, as kea-dhcp4.conf and kea-dhcp6.conf say it (the keys an
// import reads; the others are named).
type (
	keaConfig struct {
		Dhcp4 *keaServer `json:"Dhcp4"`
		Dhcp6 *keaServer `json:"Dhcp6"`
	}
	keaServer struct {
		ValidLifetime  int              `json:"valid-lifetime"`
		OptionData     []keaOption      `json:"option-data"`
		Subnet4        []keaSubnet      `json:"subnet4"`
		Subnet6        []keaSubnet      `json:"subnet6"`
		SharedNetworks []keaShared      `json:"shared-networks"`
		Reservations   []keaReservation `json:"reservations"`
	}
	keaShared struct {
		Name       string      `json:"name"`
		OptionData []keaOption `json:"option-data"`
		Subnet4    []keaSubnet `json:"subnet4"`
		Subnet6    []keaSubnet `json:"subnet6"`
	}
	keaSubnet struct {
		Subnet       string           `json:"subnet"`
		Pools        []keaPool        `json:"pools"`
		PDPools      []keaPDPool      `json:"pd-pools"`
		OptionData   []keaOption      `json:"option-data"`
		Reservations []keaReservation `json:"reservations"`
		NextServer   string           `json:"next-server"`
		BootFile     string           `json:"boot-file-name"`
	}
	keaPool struct {
		Pool string `json:"pool"`
	}
	keaPDPool struct {
		Prefix       string `json:"prefix"`
		PrefixLen    int    `json:"prefix-len"`
		DelegatedLen int    `json:"delegated-len"`
	}
	keaOption struct {
		Name string `json:"name"`
		Code int    `json:"code"`
		Data string `json:"data"`
	}
	keaReservation struct {
		HWAddress   string      `json:"hw-address"`
		DUID        string      `json:"duid"`
		ClientID    string      `json:"client-id"`
		IPAddress   string      `json:"ip-address"`
		IPAddresses []string    `json:"ip-addresses"`
		Hostname    string      `json:"hostname"`
		OptionData  []keaOption `json:"option-data"`
		NextServer  string      `json:"next-server"`
		BootFile    string      `json:"boot-file-name"`
	}
)

// keaRead are the keys of Dhcp4 and Dhcp6 the import reads; keaOwn those of Kea's
// own running, which a site has no counterpart for.
var (
	keaRead = []string{"valid-lifetime", "option-data", "subnet4", "subnet6", "shared-networks", "reservations"}
	keaOwn  = []string{"interfaces-config", "lease-database", "hosts-database", "control-socket", "loggers", "hooks-libraries",
		"multi-threading", "dhcp-ddns", "expired-leases-processing", "sanity-checks", "renew-timer", "rebind-timer",
		"max-valid-lifetime", "min-valid-lifetime", "preferred-lifetime", "authoritative", "host-reservation-identifiers",
		"server-id", "dhcp4o6-port", "dhcp-queue-control", "calculate-tee-times", "t1-percent", "t2-percent", "option-def"}
)

// kea reads Kea's configuration files (kea-dhcp4.conf, kea-dhcp6.conf) and lease
// files (kea-leases4.csv).
func (b *builder) kea(files []string) error {
	for _, f := range files {
		data, err := readSource(f)
		if err != nil {
			return err
		}
		if leases, err := b.keaLeaseFile(f, data); leases || err != nil {
			if err != nil {
				return err
			}
			continue
		}
		if err := b.keaConfig(f, data); err != nil {
			return err
		}
	}
	return nil
}

// keaLeaseFile reads data when it is one of Kea's lease files (the dhcpd import
// takes them too): kea-leases4.csv's live leases are kept, kea-leases6.csv is said.
func (b *builder) keaLeaseFile(path string, data []byte) (bool, error) {
	switch {
	case bytes.HasPrefix(data, []byte("address,duid,")):
		b.notef(Pos{path, 0}, "DHCPv6 leases are not imported (the client asks again and gets an address)")
		return true, nil
	case bytes.HasPrefix(data, []byte("address,hwaddr,")):
		return true, b.keaLeases(path, data)
	}
	return false, nil
}

func (b *builder) keaConfig(path string, data []byte) error {
	clean := stripComments(data)
	var conf keaConfig
	dec := json.NewDecoder(bytes.NewReader(clean))
	if err := dec.Decode(&conf); err != nil {
		line := 1
		if se, ok := err.(*json.SyntaxError); ok {
			line += bytes.Count(clean[:min(int(se.Offset), len(clean))], []byte("\n"))
		}
		return fmt.Errorf("%s:%d: not Kea's JSON: %v", path, line, err)
	}
	if conf.Dhcp4 == nil && conf.Dhcp6 == nil {
		return fmt.Errorf("%s: neither Dhcp4 nor Dhcp6: not a configuration of Kea's DHCP servers", path)
	}
	// Where a key or value stands: the line that first holds it (the decoder does not
	// tell).
	lines := strings.Split(string(data), "\n")
	pos := func(s string) Pos {
		for i, l := range lines {
			if strings.Contains(l, s) {
				return Pos{path, i + 1}
			}
		}
		return Pos{path, 0}
	}
	var top map[string]map[string]json.RawMessage
	json.Unmarshal(clean, &top)
	for _, server := range []string{"Dhcp4", "Dhcp6"} {
		s := map[string]*keaServer{"Dhcp4": conf.Dhcp4, "Dhcp6": conf.Dhcp6}[server]
		if s == nil {
			continue
		}
		for key := range top[server] {
			switch {
			case slices.Contains(keaRead, key):
			case slices.Contains(keaOwn, key):
				b.notef(pos(`"`+key+`"`), "%s.%s: left out (a setting of Kea's own)", server, key)
			default:
				b.notef(pos(`"`+key+`"`), "%s.%s: not translated (infrad has no counterpart)", server, key)
			}
		}
		switch lt := duration(time.Duration(s.ValidLifetime) * time.Second); {
		case s.ValidLifetime <= 0:
		case b.s.LeaseTime == "":
			b.s.LeaseTime = lt
		case b.s.LeaseTime != lt:
			b.notef(pos(`"valid-lifetime"`), "%s.valid-lifetime %s: infrad has one lease time for the site, %s is kept", server, lt, b.s.LeaseTime)
		}
		global := b.keaOptions(s.OptionData, pos)
		for _, sn := range s.Subnet4 {
			b.keaSubnet(sn, "", global, pos)
		}
		for _, sn := range s.Subnet6 {
			b.keaSubnet(sn, "", global, pos)
		}
		for _, sh := range s.SharedNetworks {
			opts := merged(global, b.keaOptions(sh.OptionData, pos))
			for i, sn := range append(sh.Subnet4, sh.Subnet6...) {
				name := sh.Name
				if i > 0 {
					name = fmt.Sprintf("%s-%d", sh.Name, i+1)
				}
				b.keaSubnet(sn, name, opts, pos)
			}
		}
		for _, r := range s.Reservations {
			b.keaReservation(r, pos)
		}
	}
	return nil
}

// keaSubnet translates a subnet4 or subnet6: its pools, its router, its options, its
// reservations.
func (b *builder) keaSubnet(k keaSubnet, name string, inherited site.DHCPOptionsSpec, pos func(string) Pos) {
	p := pos(`"` + k.Subnet + `"`)
	cidr, err := netip.ParsePrefix(k.Subnet)
	if err != nil {
		b.notef(p, "subnet %q is not a network: left out", k.Subnet)
		return
	}
	cidr = cidr.Masked()
	sn := site.SubnetSpec{Name: subnetName(name, cidr), CIDR: cidr.String()}
	for _, pool := range k.Pools {
		var first, last string
		if a, z, ok := strings.Cut(pool.Pool, "-"); ok {
			first, last = strings.TrimSpace(a), strings.TrimSpace(z)
		} else if pp, err := netip.ParsePrefix(strings.TrimSpace(pool.Pool)); err == nil {
			first, last = pp.Masked().Addr().String(), lastOf(pp).String()
		} else {
			b.notef(pos(pool.Pool), "pool %q: not FIRST - LAST or a prefix: left out", pool.Pool)
			continue
		}
		sn.Ranges = append(sn.Ranges, site.RangeSpec{Kind: "dhcp", Start: first, End: last})
	}
	if cidr.Addr().Is6() {
		sn.DHCP6 = "stateless"
		if len(sn.Ranges) > 0 {
			sn.DHCP6 = "stateful"
		}
		for i, pd := range k.PDPools {
			if i > 0 {
				b.notef(pos(pd.Prefix), "a second pd-pool of %s: left out (a subnet delegates from one block)", cidr)
				continue
			}
			sn.Delegate = &site.DelegationSpec{Prefix: fmt.Sprintf("%s/%d", pd.Prefix, pd.PrefixLen), Length: pd.DelegatedLen}
		}
	}
	opts := merged(inherited, b.keaOptions(k.OptionData, pos))
	for _, o := range k.OptionData {
		if o.Name == "routers" || o.Code == 3 {
			if a, err := netip.ParseAddr(strings.TrimSpace(strings.Split(o.Data, ",")[0])); err == nil && cidr.Contains(a) {
				sn.Gateway = a.String()
			}
		}
	}
	opts.NextServer, opts.BootFile = cmp.Or(k.NextServer, opts.NextServer), cmp.Or(k.BootFile, opts.BootFile)
	if anyOptions(opts) {
		sn.DHCP = &opts
	}
	b.subnet(p, sn)
	for _, r := range k.Reservations {
		b.keaReservation(r, pos)
	}
}

// keaReservation is a host: its MAC (or a DHCPv6 client's DUID), address and name.
func (b *builder) keaReservation(r keaReservation, pos func(string) Pos) {
	key := cmp.Or(r.HWAddress, r.DUID, r.ClientID, r.IPAddress)
	p := pos(key)
	h := hostItem{HostSpec: site.HostSpec{Name: r.Hostname, MAC: strings.ToLower(r.HWAddress), IP: r.IPAddress}}
	if r.DUID != "" {
		if duid, err := site.ParseDUID(r.DUID); err == nil {
			h.DUID = duid
		}
	}
	if r.ClientID != "" && r.HWAddress == "" {
		b.notef(p, "a reservation by client-id %s: not translated (infrad reserves by MAC, or by a DHCPv6 client's DUID)", r.ClientID)
		return
	}
	if h.IP == "" && len(r.IPAddresses) > 0 {
		h.IP = r.IPAddresses[0]
		if len(r.IPAddresses) > 1 {
			b.notef(p, "the reservation of %s holds %d addresses: %s is kept", key, len(r.IPAddresses), h.IP)
		}
	}
	if o := b.keaOptions(r.OptionData, pos); anyOptions(o) || r.NextServer != "" || r.BootFile != "" {
		o.NextServer, o.BootFile = cmp.Or(r.NextServer, o.NextServer), cmp.Or(r.BootFile, o.BootFile)
		h.DHCP = &o
	}
	b.host(p, h)
}

// keaOptions translates option-data into the options infrad sends; the rest is named.
func (b *builder) keaOptions(opts []keaOption, pos func(string) Pos) site.DHCPOptionsSpec {
	var o site.DHCPOptionsSpec
	list := func(s string) []string {
		var out []string
		for _, f := range strings.Split(s, ",") {
			if f = strings.Trim(strings.TrimSpace(f), `"`); f != "" {
				out = append(out, f)
			}
		}
		return out
	}
	for _, k := range opts {
		switch {
		case k.Name == "domain-name-servers" || k.Name == "dns-servers" || k.Code == 6:
			o.DNS = list(k.Data)
		case k.Name == "ntp-servers" || k.Name == "sntp-servers" || k.Code == 42:
			o.NTP = list(k.Data)
		case k.Name == "domain-search" || k.Code == 119:
			o.Search = list(k.Data)
		case k.Name == "interface-mtu" || k.Code == 26:
			o.MTU = atoi(strings.TrimSpace(k.Data))
		case k.Name == "tftp-server-name" || k.Code == 66:
			o.NextServer = strings.TrimSpace(k.Data)
		case k.Name == "boot-file-name" || k.Code == 67:
			o.BootFile = strings.TrimSpace(k.Data)
		case k.Name == "domain-name" || k.Code == 15:
			if b.s.Domain == "" {
				b.s.Domain = strings.TrimSpace(k.Data)
			}
		case k.Name == "routers" || k.Code == 3:
			// a subnet's gateway: read with it
		default:
			b.notef(pos(`"`+cmp.Or(k.Name, fmt.Sprint(k.Code))+`"`), "option %s: not translated (infrad's DHCP options are dns, ntp, domain_search, mtu, next_server, boot_file and the gateway)", cmp.Or(k.Name, fmt.Sprint(k.Code)))
		}
	}
	return o
}

// lastOf is the last address of p.
func lastOf(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(a)*8; i++ {
		a[i/8] |= 0x80 >> (i % 8)
	}
	last, _ := netip.AddrFromSlice(a)
	return last
}

// stripComments removes what Kea's JSON allows beside JSON: # and // comments to the
// end of the line, /* */ comments, outside strings; line breaks stay, so lines count.
func stripComments(data []byte) []byte {
	var out bytes.Buffer
	inString := false
	for i := 0; i < len(data); i++ {
		c := data[i]
		switch {
		case inString:
			out.WriteByte(c)
			if c == '\\' && i+1 < len(data) {
				i++
				out.WriteByte(data[i])
			} else if c == '"' {
				inString = false
			}
		case c == '"':
			inString = true
			out.WriteByte(c)
		case c == '#' || c == '/' && i+1 < len(data) && data[i+1] == '/':
			for i < len(data) && data[i] != '\n' {
				i++
			}
			if i < len(data) {
				out.WriteByte('\n')
			}
		case c == '/' && i+1 < len(data) && data[i+1] == '*':
			i += 2
			for i+1 < len(data) && !(data[i] == '*' && data[i+1] == '/') {
				if data[i] == '\n' {
					out.WriteByte('\n')
				}
				i++
			}
			i++
		default:
			out.WriteByte(c)
		}
	}
	return out.Bytes()
}

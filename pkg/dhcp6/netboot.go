package dhcp6

import (
	"bytes"
	"net/netip"
	"slices"

	"github.com/insomniacslk/dhcp/dhcpv6"

	"github.com/infrad/infrad/pkg/boot"
	"github.com/infrad/infrad/pkg/ipam"
	"github.com/infrad/infrad/pkg/site"
)

// Booter is the boot service, as DHCPv6 sees it: which profile a machine boots from,
// and where its endpoint is (dhcp.Booter's methods that DHCPv6 asks).
type Booter interface {
	BootsFrom(m *ipam.Model, mac site.MAC, sn site.Subnet) string // "": none
	Endpoint(local netip.Addr) string                             // http://addr:port
}

// netboot is the boot file URL (option 59, RFC 5970) for a network boot client whose
// machine boots from a profile: iPXE (user class "iPXE") gets its script's URL, UEFI
// HTTP boot (vendor class "HTTPClient") the URL of the iPXE binary for its
// architecture (option 61), and httpClient says to echo its vendor class, as the
// firmware requires. "" for any other client, a machine that boots from no profile
// (its host's, by its DUID or MAC, else its subnet's), or a boot endpoint that does
// not listen on IPv6 (boot.http_listen). infrad is this box's address as the client
// reaches it.
func (s *Service) netboot(x *exchange, infrad netip.Addr) (url string, httpClient bool) {
	cfg := s.site.Load()
	if s.opts.Boot == nil || len(cfg.Boot.Profiles) == 0 || cfg.Boot.HTTPListen.Addr().Is4() || !infrad.IsValid() {
		return "", false
	}
	ipxe := slices.ContainsFunc(x.m.Options.UserClasses(), func(c []byte) bool { return bytes.Contains(c, []byte("iPXE")) })
	for _, vc := range x.m.Options.VendorClasses() {
		httpClient = httpClient || slices.ContainsFunc(vc.Data, func(d []byte) bool { return bytes.HasPrefix(d, []byte("HTTPClient")) })
	}
	if !ipxe && !httpClient {
		return "", false
	}
	m := s.ipam.Model()
	mac := x.mac
	if h, ok := m.HostWithDUID(x.duid); ok && !h.MAC.IsZero() {
		mac = h.MAC
	}
	if s.opts.Boot.BootsFrom(m, mac, x.sn) == "" {
		return "", false
	}
	endpoint := s.opts.Boot.Endpoint(infrad)
	if ipxe {
		if mac.IsZero() {
			return "", false // its script is found by its MAC
		}
		return endpoint + boot.ScriptPath + boot.MACPath(mac), false
	}
	var loader string
	if archs := x.m.Options.ArchTypes(); len(archs) > 0 {
		loader = boot.LoaderFor(archs[0])
	}
	if loader == "" {
		return "", false
	}
	return endpoint + boot.FilesPath + loader, true
}

// httpClientClass is the vendor class UEFI HTTP boot needs echoed (RFC 5970 §3.4; the
// UEFI specification's "HTTPClient", enterprise number 343, Intel's).
var httpClientClass = &dhcpv6.OptVendorClass{EnterpriseNumber: 343, Data: [][]byte{[]byte("HTTPClient")}}

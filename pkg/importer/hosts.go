package importer

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"strings"

	"github.com/infrad/infrad/pkg/site"
)

// hostsFile reads a hosts file (/etc/hosts's format: an address, its name, its
// aliases), as dnsmasq's addn-hosts and Pi-hole's custom.list are. from is where the
// file was named; zero when it was given itself.
func (b *builder) hostsFile(path string, from Pos) error {
	data, err := readSource(path)
	if err != nil {
		if from.File != "" {
			return fmt.Errorf("%s: %w", from, err)
		}
		return err
	}
	return b.hostLines(path, data)
}

func (b *builder) hostLines(path string, data []byte) error {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		if err := b.hostLine(Pos{path, n}, sc.Text()); err != nil {
			return err
		}
	}
	return sc.Err()
}

// hostLine is one line of a hosts file: an address, a name and its aliases.
func (b *builder) hostLine(p Pos, line string) error {
	line, _, _ = strings.Cut(line, "#")
	f := strings.Fields(line)
	if len(f) == 0 {
		return nil
	}
	a, err := netip.ParseAddr(f[0])
	if err != nil || len(f) < 2 {
		return fmt.Errorf("%s: %q is not an address followed by names", p, strings.TrimSpace(line))
	}
	if a.IsLoopback() || a.IsUnspecified() || a.IsMulticast() || a.IsLinkLocalUnicast() {
		b.notef(p, "%s (%s) is this machine's own or a special address: left out", a, strings.Join(f[1:], " "))
		return nil
	}
	b.host(p, hostItem{HostSpec: hostAt(a, f[1]), aliases: f[2:]})
	return nil
}

// ethersFile reads /etc/ethers: a MAC and an address or a name, a line.
func (b *builder) ethers(path string, data []byte) error {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		p := Pos{path, n}
		mac, err := site.ParseMAC(f[0])
		if err != nil || len(f) != 2 {
			return fmt.Errorf("%s: %q is not a MAC followed by an address or a name", p, strings.TrimSpace(line))
		}
		h := hostItem{HostSpec: site.HostSpec{MAC: mac.String()}}
		if a, err := netip.ParseAddr(f[1]); err == nil {
			h.IP = a.String()
		} else {
			h.Name = f[1]
		}
		b.host(p, h)
	}
	return sc.Err()
}

// hostAt is a host of one address: an IPv4 one is its ip, an IPv6 one too (a host
// of IPv6 alone) until an IPv4 one of the same name makes it its ip6.
func hostAt(a netip.Addr, name string) site.HostSpec {
	return site.HostSpec{Name: name, IP: a.String()}
}

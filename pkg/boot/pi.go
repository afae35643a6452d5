package boot

import (
	"bytes"
	"io"
	"io/fs"
	"net/netip"
	"path"
	"strings"

	"github.com/infrad/infrad/pkg/site"
)

// A Raspberry Pi 4 or 5 netboots without iPXE: its bootloader takes a DHCP offer
// whose option 43 says "Raspberry Pi Boot", then fetches its files over TFTP from
// next-server, each below a folder named by its serial number (the last 8 hex
// digits): <serial>/start4.elf, <serial>/config.txt, <serial>/cmdline.txt, ...
// infrad maps the folder to the host with that pi_serial: every file comes from its
// profile's pi folder, but cmdline.txt, which is made from the profile's cmdline for
// the host, so that each Pi gets its own.

// PiOption43 is the option 43 the Pi's bootloader looks for: PXE's discovery control
// (sub-option 6: 3), a menu prompt (10: "PXE"), and a boot menu entry (9) named
// "Raspberry Pi Boot", as dnsmasq's pxe-service=0,"Raspberry Pi Boot" writes them.
var PiOption43 = append(append([]byte{6, 1, 3, 10, 4, 0, 'P', 'X', 'E', 9, 20, 0, 0, 17}, "Raspberry Pi Boot"...), 255)

// piFile opens what a Pi asks for as <serial>/<file>, when a host has that serial
// and boots from a pi profile; ok is false when none does (the name is then a plain
// file of the root). local is the address the request came to, for the templates'
// BootURL.
func (s *Service) piFile(name string, client, local netip.Addr) (rc io.ReadCloser, size int64, ok bool, err error) {
	serial, file, found := strings.Cut(strings.TrimPrefix(path.Clean("/"+name), "/"), "/")
	if !found || len(serial) != 8 || strings.Trim(strings.ToLower(serial), "0123456789abcdef") != "" {
		return nil, 0, false, nil
	}
	serial = strings.ToLower(serial)
	m := s.ipam.Model()
	var h site.Host
	for _, x := range m.Hosts() { // a Pi fetches a dozen files: no index is kept for them
		if x.PiSerial == serial {
			h = x
			break
		}
	}
	if h.PiSerial != serial {
		return nil, 0, false, nil
	}
	p, ok := s.Profile(hostBootsFrom(m, h, site.Subnet{}))
	if !ok || p.Pi == "" {
		return nil, 0, true, fs.ErrNotExist // a Pi that boots from no Pi profile
	}
	if file == "cmdline.txt" && p.Cmdline != "" {
		v := s.vars(h.Name, h.IP, h.MAC, local)
		text, err := site.Render(p.Cmdline, v)
		if err != nil {
			return nil, 0, true, err
		}
		b := []byte(strings.TrimSpace(text) + "\n")
		s.note(Event{Step: "tftp", Client: client, MAC: h.MAC, File: name})
		return io.NopCloser(bytes.NewReader(b)), int64(len(b)), true, nil
	}
	f, err := s.open(path.Join(p.Pi, file))
	if err != nil {
		return nil, 0, true, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, true, err
	}
	return f, fi.Size(), true, nil
}

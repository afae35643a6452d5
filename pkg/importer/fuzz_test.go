package importer

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// FuzzRead feeds every reader what users' files might hold, and more: a source is
// read or refused with an error, never a panic, and what is read writes a site file.
func FuzzRead(f *testing.F) {
	for _, seed := range []struct{ kind, file string }{
		{"dnsmasq", "dnsmasq/dnsmasq.conf"}, {"dnsmasq", "dnsmasq/lab.hosts"}, {"dnsmasq", "dnsmasq/ethers"},
		{"dhcpd", "dhcpd/dhcpd.conf"}, {"dhcpd", "dhcpd/dhcpd.leases"}, {"kea", "kea/kea-leases4.csv"},
		{"zone", "zone/db.lab.test"}, {"pihole", "pihole6/pihole.toml"}, {"pihole", "pihole5/setupVars.conf"},
		{"netbox", "netbox/ip-addresses.csv"}, {"kea", "kea/kea-dhcp4.conf"},
	} {
		data, err := os.ReadFile(filepath.Join("testdata", seed.file))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(seed.kind, filepath.Base(seed.file), data)
	}
	f.Fuzz(func(t *testing.T, kind, name string, data []byte) {
		if !strings.Contains("dnsmasq dhcpd kea zone pihole netbox", kind) || kind == "" || strings.ContainsAny(name, "/\x00") || name == "" || name == "." || name == ".." {
			return
		}
		dir := t.TempDir()
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return
		}
		source := path
		if kind == "zone" {
			source = "lab.test=" + path
		}
		var s *Site
		var err error
		done := make(chan struct{})
		go func() { s, err = Read(context.Background(), kind, []string{source}, Options{Now: now}); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s %q: still reading after 10 s", kind, data)
		}
		if err != nil {
			return
		}
		if _, err := s.WriteInto(nil); err != nil {
			t.Errorf("read, but not written: %v", err)
		}
	})
}

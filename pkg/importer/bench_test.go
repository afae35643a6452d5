package importer

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkReadDnsmasq reads a dnsmasq.conf of n reservations whose addresses a hosts
// file of n lines gives, and writes the site file: the cost of a move against the
// site's size.
func BenchmarkReadDnsmasq(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 50_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			dir := b.TempDir()
			var conf, hosts strings.Builder
			fmt.Fprintf(&conf, "domain=lab.test\ndhcp-range=10.0.0.10,10.0.0.250,255.0.0.0,12h\naddn-hosts=%s\n", filepath.Join(dir, "hosts"))
			for i := range n {
				fmt.Fprintf(&conf, "dhcp-host=02:00:00:%02x:%02x:%02x,node%d\n", i>>16, i>>8&0xff, i&0xff, i)
				fmt.Fprintf(&hosts, "10.%d.%d.%d node%d\n", 1+i>>16, i>>8&0xff, i&0xff, i)
			}
			os.WriteFile(filepath.Join(dir, "dnsmasq.conf"), []byte(conf.String()), 0o644)
			os.WriteFile(filepath.Join(dir, "hosts"), []byte(hosts.String()), 0o644)
			b.ResetTimer()
			for b.Loop() {
				s, err := Read(context.Background(), "dnsmasq", []string{filepath.Join(dir, "dnsmasq.conf")}, Options{})
				if err != nil {
					b.Fatal(err)
				}
				if len(s.Hosts) != n {
					b.Fatalf("%d hosts, want %d", len(s.Hosts), n)
				}
				if _, err := s.WriteInto(nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

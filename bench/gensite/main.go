// Command gensite makes a site of a given size for bench/scale.sh: a site file with
// HOSTS hosts in DIR/site.yaml, and a data directory DIR/data whose store holds that
// file's objects and LEASES DHCP leases, written through infrad's own write path (the
// IPAM writer, many commits at once) as a box that has served the site would hold them.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/infrad/infrad/pkg/cluster"
	"github.com/infrad/infrad/pkg/config"
	"github.com/infrad/infrad/pkg/daemon"
	"github.com/infrad/infrad/pkg/ipam"
	"github.com/infrad/infrad/pkg/site"
)

func main() {
	hosts := flag.Int("hosts", 1000, "hosts in the site file")
	leases := flag.Int("leases", 1000, "DHCP leases in the store")
	dir := flag.String("dir", "", "where site.yaml and data/ go")
	iface := flag.String("interface", "s0", "the DHCP interface the site serves")
	flag.Parse()
	if *dir == "" || *hosts > 1<<22 || *leases > 1<<23 {
		fmt.Fprintln(os.Stderr, "usage: gensite -dir DIR [-hosts N] [-leases N] (at most 4M hosts, 8M leases)")
		os.Exit(2)
	}
	if err := run(*dir, *hosts, *leases, *iface); err != nil {
		fmt.Fprintln(os.Stderr, "gensite:", err)
		os.Exit(1)
	}
}

// The site: one /8, hosts from 10.0.0.1 up, DHCP from 10.128.0.0 up, the server at
// 10.255.255.254 (bench/scale.sh gives its interface that address).
func siteFile(dir string, hosts int, iface string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `domain: scale.example
data_dir: %s
api: {listen: "127.0.0.1:8080", rate_limit: 0}
dns: {listen: ["127.0.0.1:1053"], advertise: 10.255.255.254}
ntp: {listen: ["127.0.0.1:1123"], local_stratum: 10, chronyd: none}
ca: {listen: "127.0.0.1:8443"}
dhcp: {interfaces: [%s], lease_time: 24h, rate_limit: 0}
subnets:
  - name: lan
    cidr: 10.0.0.0/8
    gateway: 10.255.255.254
    ranges: [{kind: dhcp, start: 10.128.0.0, end: 10.254.255.255}]
hosts:
`, filepath.Join(dir, "data"), iface)
	for i := 1; i <= hosts; i++ {
		fmt.Fprintf(&b, "  - {name: h%07d, ip: 10.%d.%d.%d, mac: \"02:00:%02x:%02x:%02x:%02x\"}\n",
			i, i>>16&0xff, i>>8&0xff, i&0xff, i>>24&0xff, i>>16&0xff, i>>8&0xff, i&0xff)
	}
	return b.String()
}

func run(dir string, hosts, leases int, iface string) error {
	path := filepath.Join(dir, "site.yaml")
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(path, []byte(siteFile(dir, hosts, iface)), 0o644); err != nil {
		return err
	}
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	data := filepath.Join(dir, "data")
	m, _, closeAll, err := cluster.OpenOneBox(cfg, data, filepath.Join(data, daemon.StoreFile), slog.New(slog.DiscardHandler), nil)
	if err != nil {
		return err
	}
	defer closeAll()
	if _, err := m.Reconcile(cfg.Source, cfg.IPAM()); err != nil {
		return err
	}

	// Leases from 10.128.0.0 up, a day long, every tenth with a hostname; 256 writers
	// at once, so the writer commits them in full batches.
	start, now := netip.MustParseAddr("10.128.0.0").As4(), time.Now()
	var next, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range 256 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= leases {
					return
				}
				n := uint32(start[0])<<24 | uint32(start[1])<<16 | uint32(i)
				c := ipam.CommitLease{Stamp: ipam.Stamp{At: now}, Subnet: "lan",
					MAC: site.MAC{0x06, 0, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)},
					IP:  netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), Expires: now.Add(24 * time.Hour).Truncate(time.Second)}
				if i%10 == 0 {
					c.Hostname = fmt.Sprintf("dyn%07d", i)
				}
				if _, err := m.Apply(context.Background(), c); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		})
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		return fmt.Errorf("%d leases refused, the first: %v", n, firstErr.Load())
	}
	fmt.Printf("%s: %d hosts, %d leases in %s\n", dir, hosts, leases, time.Since(now).Round(time.Millisecond))
	return nil
}

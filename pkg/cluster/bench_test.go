package cluster

import (
	"context"
	"log/slog"
	"net/netip"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/infrad/infrad/pkg/config"
	"github.com/infrad/infrad/pkg/ipam"
	"github.com/infrad/infrad/pkg/site"
)

const benchSite = `domain: lab.test
subnets:
  - name: lab
    cidr: 10.0.0.0/8
    ranges:
      - {kind: dhcp, start: 10.1.0.0, end: 10.200.255.255}
`

// startBox starts a cluster of one on a fresh data directory and applies the bench
// site.
func startBox(tb testing.TB) *ipam.IPAM {
	tb.Helper()
	site, err := config.Parse("site.yaml", []byte(benchSite))
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	m, _, closeAll, err := OpenOneBox(site, dir, filepath.Join(dir, "infrad.db"), slog.New(slog.DiscardHandler), nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { closeAll() })
	if _, err := m.Reconcile(site.Source, site.IPAM()); err != nil {
		tb.Fatal(err)
	}
	return m
}

// BenchmarkCommitLease commits fresh leases from many clients at once through a
// cluster of one: Raft's log, fsync'ed, then the writer.
func BenchmarkCommitLease(b *testing.B) {
	b.Run("one-box-raft", func(b *testing.B) {
		m := startBox(b)
		var next atomic.Uint32
		now := time.Now()
		b.SetParallelism(64)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := next.Add(1)
				mac := site.MAC{0x52, 0x54, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}
				ip := netip.AddrFrom4([4]byte{10, 1 + byte(i>>16), byte(i >> 8), byte(i)})
				_, err := m.Apply(context.Background(), ipam.CommitLease{Stamp: ipam.Stamp{At: now}, Subnet: "lab", MAC: mac, IP: ip, Expires: now.Add(time.Hour)})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

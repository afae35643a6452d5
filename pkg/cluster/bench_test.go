package cluster

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/infrad/infrad/pkg/config"
	"github.com/infrad/infrad/pkg/ipam"
	"github.com/infrad/infrad/pkg/site"
	"github.com/infrad/infrad/pkg/store"
)

const benchSite = `domain: lab.test
subnets:
  - name: lab
    cidr: 10.0.0.0/8
    ranges:
      - {kind: dhcp, start: 10.1.0.0, end: 10.200.255.255}
`

// startBox starts a cluster of one on a fresh data directory, or, without log, the
// write path alone, and applies the bench site.
func startBox(b *testing.B, log bool) *ipam.IPAM {
	b.Helper()
	site, err := config.Parse("site.yaml", []byte(benchSite))
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	st, err := store.Open(store.Options{Path: filepath.Join(dir, "infrad.db"), NoSync: log, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	opts := ipam.Options{Store: st}
	var n *Node
	if log {
		if n, err = New(Options{Site: site, DataDir: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}); err != nil {
			b.Fatal(err)
		}
		opts.Log, opts.Origin = n, n.Name()
	}
	m, err := ipam.New(opts)
	if err != nil {
		b.Fatal(err)
	}
	if n != nil {
		if err := n.Start(st, m); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { n.Stop() })
	}
	b.Cleanup(m.Close)
	if _, err := m.Reconcile(site.Source, site.IPAM()); err != nil {
		b.Fatal(err)
	}
	return m
}

// BenchmarkCommitLease commits fresh leases from many clients at once: through the
// write path alone (as before the cluster), and through a cluster of one (Raft's log,
// fsync'ed, then the writer).
func BenchmarkCommitLease(b *testing.B) {
	for _, c := range []struct {
		name string
		log  bool
	}{{"writer", false}, {"one-box-raft", true}} {
		b.Run(c.name, func(b *testing.B) {
			m := startBox(b, c.log)
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
}

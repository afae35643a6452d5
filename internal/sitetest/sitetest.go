// Package sitetest starts what the service tests share: a site file parsed, a store
// in a temporary directory, and IPAM's write path on a cluster of one box (Raft's log
// in the same directory, as infrad serve runs it), with the site applied.
package sitetest

import (
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/infrad/infrad/pkg/cluster"
	"github.com/infrad/infrad/pkg/config"
	"github.com/infrad/infrad/pkg/ipam"
	"github.com/infrad/infrad/pkg/store"
)

// IPAM parses siteYAML, opens a fresh store and applies the site to it. Everything is
// closed when the test ends.
func IPAM(t testing.TB, siteYAML []byte) (*ipam.IPAM, *config.Site) {
	t.Helper()
	m, _, site := Open(t, siteYAML)
	return m, site
}

// Open is IPAM, with the store too.
func Open(t testing.TB, siteYAML []byte) (*ipam.IPAM, *store.Store, *config.Site) {
	t.Helper()
	site, err := config.Parse("site.yaml", siteYAML)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	m, st, closeAll, err := cluster.OpenOneBox(site, dir, filepath.Join(dir, "infrad.db"), slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeAll() })
	if _, err := m.Reconcile(site.Source, site.IPAM()); err != nil {
		t.Fatal(err)
	}
	return m, st, site
}

// Reload applies site to m, as a reload of the site file does.
func Reload(t testing.TB, m *ipam.IPAM, site *config.Site) {
	t.Helper()
	if _, err := m.Reconcile(site.Source, site.IPAM()); err != nil {
		t.Fatal(err)
	}
}

// Package sitetest starts what the service tests share: a site file parsed, a store
// in a temporary directory, and IPAM's write path with the site applied.
package sitetest

import (
	"path/filepath"
	"testing"

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
	st, err := store.Open(store.Options{Path: filepath.Join(t.TempDir(), "infrad.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	m, err := ipam.New(ipam.Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
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

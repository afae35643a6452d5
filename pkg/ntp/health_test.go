package ntp

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/infrad/infrad/internal/testenv"
	"github.com/infrad/infrad/pkg/config"
	"github.com/infrad/infrad/pkg/service"
)

// TestSocketLostThenRecovered closes the service's socket under it, as a dying
// interface or a stray close would: the readiness table says failed and why, the
// Manager restarts the service, and clients get answers again.
func TestSocketLostThenRecovered(t *testing.T) {
	port := testenv.FreePort(t)
	site, err := config.Parse("site.yaml", fmt.Appendf(nil, "domain: lab.test\nntp: {listen: [\"127.0.0.1:%d\"], local_stratum: 10, chronyd: none}\n", port))
	if err != nil {
		t.Fatal(err)
	}
	s := New(Options{Site: site, Registry: prometheus.NewRegistry(), Interval: 100 * time.Millisecond})
	m, err := service.New(service.Options{Check: 20 * time.Millisecond, MinBackoff: 20 * time.Millisecond}, service.Unit{Service: s})
	if err != nil {
		t.Fatal(err)
	}
	m.Start(t.Context())
	t.Cleanup(func() { m.Stop(context.Background()) })
	testenv.WaitFor(t, "ntp ready", m.Ready)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	ask(t, addr, 4)

	s.mu.Lock()
	s.conns[0].Close() // under it: not through Stop
	s.mu.Unlock()
	testenv.WaitFor(t, "ntp failed, saying why", func() bool {
		st := m.Status()[0]
		return st.State == service.StateFailed && strings.Contains(st.LastError, "closed under the service")
	})
	testenv.WaitFor(t, "ntp ready again", m.Ready)
	if resp := ask(t, addr, 4); leap(resp) != 0 {
		t.Errorf("after the restart: got leap %d, want 0", leap(resp))
	}
}

// TestUnsynchronisedIsNotReady: with no time source the service serves leap 3, and
// says so: degraded (not ready, and not restarted), with the reason.
func TestUnsynchronisedIsNotReady(t *testing.T) {
	s, _ := start(t, "  chronyd: none\n")
	h := s.Health()
	if h.State != service.StateDegraded || !strings.Contains(h.LastError, "no time source") {
		t.Errorf("got %+v, want degraded with the reason", h)
	}
}

// TestReloadedRateLimitApplies: a SIGHUP that sets ntp.rate_limit limits at once.
func TestReloadedRateLimitApplies(t *testing.T) {
	s, addr := start(t, "  chronyd: none\n  local_stratum: 10\n  rate_limit: 0\n")
	for range 10 {
		if resp := ask(t, addr, 4); resp.Stratum == 0 {
			t.Fatal("a KoD without a limit")
		}
	}
	site, err := config.Parse("site.yaml", fmt.Appendf(nil, "domain: lab.test\nntp:\n  listen: [%q]\n  chronyd: none\n  local_stratum: 10\n  rate_limit: 1\n", addr))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(site); err != nil {
		t.Fatal(err)
	}
	kod := false
	for range 10 {
		if resp := ask(t, addr, 4); resp.Stratum == 0 {
			kod = true
		}
	}
	if !kod {
		t.Error("ten requests at once after rate_limit: 1 was reloaded: no KoD RATE")
	}
}

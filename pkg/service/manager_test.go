package service

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/infrad/infrad/internal/testenv"
)

// journal records the Start and Stop calls of fake services, in order.
type journal struct {
	mu      sync.Mutex
	entries []string
}

func (j *journal) add(s string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.entries = append(j.entries, s)
}

func (j *journal) list() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.entries)
}

type fake struct {
	name     string
	j        *journal
	mu       sync.Mutex
	failures int   // Start fails this many times first
	err      error // the error it fails with
	health   Health
}

func (f *fake) Name() string { return f.name }

func (f *fake) Start(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failures > 0 {
		f.failures--
		f.j.add("fail " + f.name)
		return f.err
	}
	f.j.add("start " + f.name)
	return nil
}

func (f *fake) Stop(ctx context.Context) error { f.j.add("stop " + f.name); return nil }

func (f *fake) Health() Health {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.health
}

func (f *fake) heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures = 0
}

func states(m *Manager) map[string]State {
	out := map[string]State{}
	for _, s := range m.Status() {
		out[s.Name] = s.State
	}
	return out
}

func newManager(t *testing.T, units ...Unit) *Manager {
	t.Helper()
	m, err := New(Options{MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}, units...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestStartOrderAndReverseStop(t *testing.T) {
	j := &journal{}
	ntp, dns, dhcp, api := &fake{name: "ntp", j: j}, &fake{name: "dns", j: j}, &fake{name: "dhcp", j: j}, &fake{name: "api", j: j}
	m := newManager(t,
		Unit{Service: ntp},
		Unit{Service: dns, Needs: []string{"ntp"}},
		Unit{Service: dhcp, Needs: []string{"dns"}},
		Unit{Service: api, Needs: []string{"dhcp"}},
	)
	m.Start(t.Context())
	testenv.WaitFor(t, "every service ready", m.Ready)
	if got, want := j.list(), []string{"start ntp", "start dns", "start dhcp", "start api"}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	var names []string
	for _, s := range m.Status() {
		names = append(names, s.Name)
	}
	if want := []string{"ntp", "dns", "dhcp", "api"}; !slices.Equal(names, want) {
		t.Errorf("got status order %v, want %v", names, want)
	}
	if err := m.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got, want := j.list()[4:], []string{"stop api", "stop dhcp", "stop dns", "stop ntp"}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for name, s := range states(m) {
		if s != StateStopped {
			t.Errorf("%s: got %s after Stop, want stopped", name, s)
		}
	}
}

func TestFailedStartIsRetriedAndDependentsWait(t *testing.T) {
	j := &journal{}
	dns := &fake{name: "dns", j: j, failures: 1 << 30, err: errors.New("bind 0.0.0.0:53: address in use")}
	dhcp := &fake{name: "dhcp", j: j}
	ntp := &fake{name: "ntp", j: j}
	m := newManager(t,
		Unit{Service: ntp},
		Unit{Service: dns},
		Unit{Service: dhcp, Needs: []string{"dns"}},
	)
	m.Start(t.Context())
	defer m.Stop(context.Background())

	testenv.WaitFor(t, "a few retries of dns", func() bool {
		return len(slices.DeleteFunc(j.list(), func(e string) bool { return e != "fail dns" })) >= 3
	})
	got := states(m)
	if got["ntp"] != StateReady || got["dns"] != StateFailed || got["dhcp"] != StateWaiting {
		t.Errorf("got %v, want ntp ready, dns failed, dhcp waiting", got)
	}
	for _, s := range m.Status() {
		if s.Name == "dns" && s.LastError != "bind 0.0.0.0:53: address in use" {
			t.Errorf("got last error %q, want the start error", s.LastError)
		}
	}
	if m.Ready() {
		t.Errorf("Ready with dns failed")
	}

	dns.heal()
	testenv.WaitFor(t, "dns and then dhcp ready", m.Ready)
	entries := j.list()
	if slices.Index(entries, "start dhcp") < slices.Index(entries, "start dns") {
		t.Errorf("dhcp started before dns: %v", entries)
	}
}

func TestStopEndsRetryingAndStopsOnlyStarted(t *testing.T) {
	j := &journal{}
	ntp := &fake{name: "ntp", j: j}
	dns := &fake{name: "dns", j: j, failures: 1 << 30, err: errors.New("no")}
	m := newManager(t, Unit{Service: ntp}, Unit{Service: dns})
	m.Start(t.Context())
	testenv.WaitFor(t, "ntp ready and dns failing", func() bool { s := states(m); return s["ntp"] == StateReady && s["dns"] == StateFailed })
	if err := m.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(j.list(), "stop dns") {
		t.Errorf("dns was stopped though it never started")
	}
	if !slices.Contains(j.list(), "stop ntp") {
		t.Errorf("ntp was not stopped")
	}
}

func TestOwnHealthOfAStartedService(t *testing.T) {
	dhcp := &fake{name: "dhcp", j: &journal{}}
	m := newManager(t, Unit{Service: dhcp})
	m.Start(t.Context())
	defer m.Stop(context.Background())
	testenv.WaitFor(t, "dhcp ready", m.Ready)
	dhcp.mu.Lock()
	dhcp.health = Health{State: StateFailed, LastError: "interface eth1 is gone"}
	dhcp.mu.Unlock()
	if m.Ready() {
		t.Errorf("got ready, want not ready once the service reports a failure")
	}
	if got := m.Status()[0].LastError; got != "interface eth1 is gone" {
		t.Errorf("got %q, want the service's own error", got)
	}
}

func TestNewRejectsBadOrder(t *testing.T) {
	a, b := &fake{name: "a"}, &fake{name: "b"}
	if _, err := New(Options{}, Unit{Service: a, Needs: []string{"b"}}, Unit{Service: b}); err == nil {
		t.Errorf("got no error for a need given after its dependent")
	}
	if _, err := New(Options{}, Unit{Service: a}, Unit{Service: a}); err == nil {
		t.Errorf("got no error for a service given twice")
	}
}

package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Options configure a Manager.
type Options struct {
	Logger     *slog.Logger     // nil: slog.Default()
	Now        func() time.Time // nil: time.Now
	MinBackoff time.Duration    // first wait after a failed start; 0: 500ms
	MaxBackoff time.Duration    // the wait doubles up to this; 0: 30s
	Check      time.Duration    // how often started services are asked for their health; 0: 1s
}

// Manager starts units in order, retries the ones that fail, and stops them in reverse.
type Manager struct {
	opts  Options
	units []Unit

	mu      sync.Mutex
	health  map[string]Health // the Manager's view of each unit
	started map[string]bool   // Start succeeded and Stop has not run
	changed chan struct{}     // closed on every change of health
	cancel  context.CancelFunc
	loops   sync.WaitGroup
}

// New checks that unit names are unique and that each unit needs only units before it,
// so that the order given is a start order.
func New(opts Options, units ...Unit) (*Manager, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MinBackoff == 0 {
		opts.MinBackoff = 500 * time.Millisecond
	}
	if opts.MaxBackoff == 0 {
		opts.MaxBackoff = 30 * time.Second
	}
	if opts.Check == 0 {
		opts.Check = time.Second
	}
	m := &Manager{
		opts:    opts,
		units:   units,
		health:  map[string]Health{},
		started: map[string]bool{},
		changed: make(chan struct{}),
	}
	for i, u := range units {
		name := u.Service.Name()
		if _, dup := m.health[name]; dup {
			return nil, fmt.Errorf("service %q is given twice", name)
		}
		for _, need := range u.Needs {
			if !slices.ContainsFunc(units[:i], func(o Unit) bool { return o.Service.Name() == need }) {
				return nil, fmt.Errorf("service %q needs %q, which is not given before it", name, need)
			}
		}
		m.health[name] = Health{State: StateWaiting, Since: opts.Now()}
	}
	return m, nil
}

// Start begins starting every unit, each in its own goroutine once its needs are ready,
// and returns at once. Use Status to see how far it got.
func (m *Manager) Start(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	m.mu.Lock()
	m.cancel = cancel
	m.mu.Unlock()
	for _, u := range m.units {
		m.loops.Go(func() { m.run(ctx, u, 0) })
	}
	m.loops.Go(func() { m.supervise(ctx) })
}

// supervise asks every started unit for its health every opts.Check, and restarts one
// that says it has failed: stopped, then started again as at first, after a backoff
// that doubles while it keeps failing soon after its restarts.
func (m *Manager) supervise(ctx context.Context) {
	backoff := map[string]time.Duration{}
	restarted := map[string]time.Time{}
	t := time.NewTicker(m.opts.Check)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, u := range m.units {
			name := u.Service.Name()
			m.mu.Lock()
			started := m.started[name]
			m.mu.Unlock()
			if !started {
				continue
			}
			h := u.Service.Health()
			if h.State != StateFailed {
				continue
			}
			wait := m.opts.MinBackoff
			if time.Since(restarted[name]) < time.Minute {
				wait = min(2*backoff[name], m.opts.MaxBackoff)
			}
			backoff[name], restarted[name] = wait, time.Now()
			m.opts.Logger.Error("service failed after it was ready; restarting", "service", name, "err", h.LastError, "in", wait)
			m.mu.Lock()
			delete(m.started, name)
			m.mu.Unlock()
			m.set(name, StateFailed, h.LastError)
			stopCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if err := u.Service.Stop(stopCtx); err != nil {
				m.opts.Logger.Warn("service did not stop cleanly before its restart", "service", name, "err", err)
			}
			cancel()
			m.loops.Go(func() { m.run(ctx, u, wait) })
		}
	}
}

// run waits for u's needs (and first for delay), then starts u, retrying with backoff
// until it succeeds or ctx ends.
func (m *Manager) run(ctx context.Context, u Unit, delay time.Duration) {
	name := u.Service.Name()
	log := m.opts.Logger.With("service", name)
	select {
	case <-ctx.Done():
		return
	case <-time.After(delay):
	}
	if !m.waitNeeds(ctx, u.Needs) {
		return
	}
	backoff := m.opts.MinBackoff
	for {
		m.set(name, StateStarting, "")
		err := u.Service.Start(ctx)
		if err == nil {
			m.mu.Lock()
			m.started[name] = true
			m.mu.Unlock()
			m.set(name, StateReady, "")
			log.Info("service ready")
			return
		}
		if ctx.Err() != nil {
			return
		}
		m.set(name, StateFailed, err.Error())
		log.Error("service failed to start; retrying", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, m.opts.MaxBackoff)
	}
}

// waitNeeds blocks until every named unit is ready; false when ctx ends first.
func (m *Manager) waitNeeds(ctx context.Context, needs []string) bool {
	for {
		m.mu.Lock()
		ready := true
		for _, n := range needs {
			ready = ready && m.health[n].State == StateReady
		}
		changed := m.changed
		m.mu.Unlock()
		if ready {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-changed:
		}
	}
}

func (m *Manager) set(name string, s State, lastErr string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	h := m.health[name]
	if h.State != s {
		h.Since = m.opts.Now()
	}
	h.State = s
	if lastErr != "" {
		h.LastError = lastErr
	}
	m.health[name] = h
	close(m.changed)
	m.changed = make(chan struct{})
}

// Stop ends the start loops, then stops every started unit in reverse order, all
// within ctx's deadline. It returns the errors of the units that did not stop cleanly.
func (m *Manager) Stop(ctx context.Context) error {
	m.mu.Lock()
	if m.cancel != nil {
		m.cancel()
	}
	m.mu.Unlock()
	m.loops.Wait()

	var errs []error
	for _, u := range slices.Backward(m.units) {
		name := u.Service.Name()
		m.mu.Lock()
		started := m.started[name]
		delete(m.started, name)
		m.mu.Unlock()
		if !started {
			m.set(name, StateStopped, "")
			continue
		}
		m.set(name, StateStopping, "")
		if err := u.Service.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", name, err))
			m.set(name, StateStopped, err.Error())
			continue
		}
		m.set(name, StateStopped, "")
		m.opts.Logger.Info("service stopped", "service", name)
	}
	return errors.Join(errs...)
}

// Status returns every unit in start order. A ready unit reports its own Health when it
// has an opinion (a service can fail after it started).
func (m *Manager) Status() []Status {
	out := make([]Status, len(m.units))
	m.mu.Lock()
	for i, u := range m.units {
		out[i] = Status{Name: u.Service.Name(), Needs: u.Needs, Health: m.health[u.Service.Name()]}
	}
	m.mu.Unlock()
	for i, u := range m.units {
		if out[i].State != StateReady {
			continue
		}
		if own := u.Service.Health(); own.State != "" {
			out[i].Health = own
		}
	}
	return out
}

// Ready reports whether every unit is ready.
func (m *Manager) Ready() bool {
	for _, s := range m.Status() {
		if s.State != StateReady {
			return false
		}
	}
	return true
}

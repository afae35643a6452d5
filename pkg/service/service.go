// Package service runs infrad's services: each starts only once the services it needs
// are ready, a failed start is retried with backoff while everything else keeps
// serving, and they stop in reverse order. It owns the table /readyz shows.
package service

import (
	"context"
	"sync"
	"time"
)

// Service is one long-running part of infrad (DNS, DHCP, the API, ...).
type Service interface {
	Name() string
	// Start returns once the service's sockets are bound and it can answer.
	// A failed Start leaves nothing bound, so that it can simply be called again.
	Start(ctx context.Context) error
	// Stop releases everything Start took. It is idempotent and honours ctx's deadline.
	Stop(ctx context.Context) error
	// Health is cheap: what a started service knows of itself (it may have lost an
	// interface, say). A Health with an empty State defers to the Manager's view;
	// StateFailed makes the Manager restart the service; StateDegraded is shown only.
	Health() Health
}

// State is where a service is in its life.
type State string

const (
	StateWaiting  State = "waiting"  // for the services it needs
	StateStarting State = "starting" // Start is running
	StateReady    State = "ready"
	StateFailed   State = "failed" // the last Start failed, or the service says it has; retrying
	// StateDegraded is a started service that serves, but not as it should (no time
	// source, a setting it could not apply): not ready, and a restart would not help.
	StateDegraded State = "degraded"
	StateStopping State = "stopping"
	StateStopped  State = "stopped"
)

// Health is a service's state, since when, and the last error it met.
type Health struct {
	State     State     `json:"state"`
	Since     time.Time `json:"since"`
	LastError string    `json:"last_error,omitempty"`
}

// Unit is a service and the names of the services that must be ready before it starts.
type Unit struct {
	Service Service
	Needs   []string // each names a Unit given before this one
}

// Status is one row of the readiness table.
type Status struct {
	Name  string   `json:"name"`
	Needs []string `json:"needs,omitempty"`
	Health
}

// Wait waits for a service's goroutines to end, or for ctx: what a Stop does after
// closing its sockets.
func Wait(ctx context.Context, loops *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() { loops.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

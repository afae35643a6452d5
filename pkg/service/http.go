package service

import (
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// HTTPTimeouts bound what one client of an HTTP listener (the API, the CA) may hold:
// the time to send its request's headers, the whole request with its body, to take
// the response, and an idle kept-alive connection. A zero field takes the default.
type HTTPTimeouts struct {
	Header, Read, Write, Idle time.Duration
}

// DefaultHTTPTimeouts leave room for a backup of a large store over a slow link (the
// write) and for a restore's upload (the read), and none for a client that trickles.
var DefaultHTTPTimeouts = HTTPTimeouts{Header: 10 * time.Second, Read: time.Minute, Write: 5 * time.Minute, Idle: 2 * time.Minute}

// Apply sets t's bounds, or the defaults, on srv.
func (t HTTPTimeouts) Apply(srv *http.Server) {
	or := func(d, def time.Duration) time.Duration {
		if d > 0 {
			return d
		}
		return def
	}
	srv.ReadHeaderTimeout = or(t.Header, DefaultHTTPTimeouts.Header)
	srv.ReadTimeout = or(t.Read, DefaultHTTPTimeouts.Read)
	srv.WriteTimeout = or(t.Write, DefaultHTTPTimeouts.Write)
	srv.IdleTimeout = or(t.Idle, DefaultHTTPTimeouts.Idle)
}

// Held counts the goroutines the services hold for their clients: one for each open
// connection of an HTTP listener (the API, the CA), one for each DHCP REQUEST waiting
// for its commit. DNS bounds its own queries by the goroutines the process runs less
// these, so that a thousand idle API connections do not make DNS drop queries. A nil
// *Held counts nothing.
type Held struct{ n atomic.Int64 }

// Add counts n more goroutines held (n < 0: fewer).
func (h *Held) Add(n int) {
	if h != nil {
		h.n.Add(int64(n))
	}
}

// Count is how many goroutines are held.
func (h *Held) Count() int {
	if h == nil {
		return 0
	}
	return int(h.n.Load())
}

// Track counts srv's open connections in h.
func (h *Held) Track(srv *http.Server) {
	if h == nil {
		return
	}
	srv.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			h.Add(1)
		case http.StateClosed, http.StateHijacked:
			h.Add(-1)
		}
	}
}

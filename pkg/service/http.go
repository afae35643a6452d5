package service

import (
	"net/http"
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

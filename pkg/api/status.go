package api

import (
	"net/http"
	"time"

	"github.com/infrad/infrad/pkg/service"
)

// healthz answers while the process can serve HTTP at all.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

type readiness struct {
	Ready    bool             `json:"ready"`
	Services []service.Status `json:"services"` // in start order
	// RestartNeeded names the site-file keys that changed on a reload and take effect
	// only when infrad restarts.
	RestartNeeded []string `json:"restart_needed,omitempty"`
	// Quorum is false while this node cannot reach a majority of the cluster: it
	// keeps answering from what it has, and refuses writes.
	Quorum bool   `json:"quorum"`
	Leader string `json:"leader"`
	// Behind says the node has not caught up with its cluster's log since it started:
	// it is not ready, even for reads, until it has.
	Behind bool `json:"behind,omitempty"`
	// Evicted says why this node is no longer a member of its cluster: it serves
	// nothing, and is not ready even for reads.
	Evicted string `json:"evicted,omitempty"`
}

// readiness is the node's services and quorum; ready when every service is, or, for
// reads alone, every service that answers without the quorum: all but the CA, which
// issues nothing without it (and, started without it, waits for it).
func (s *Server) readiness(reads bool) readiness {
	cs := s.opts.Cluster.Status()
	rd := readiness{Ready: cs.Evicted == "" && !cs.Behind, Services: s.opts.Status(), Quorum: cs.Quorum, Leader: cs.Leader,
		Behind: cs.Behind, Evicted: cs.Evicted}
	if s.opts.RestartNeeded != nil {
		rd.RestartNeeded = s.opts.RestartNeeded()
	}
	for _, st := range rd.Services {
		rd.Ready = rd.Ready && (st.State == service.StateReady || reads && st.Name == "ca")
	}
	return rd
}

// readyz is 200 only when every enabled service is ready and the node has its
// cluster's quorum, 503 otherwise; with ?read=1 neither the quorum nor the CA is asked
// for (a node without the quorum still answers DNS, reservations and renewals from
// what it has: a check for those). The body lists every service in start order either
// way.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) error {
	reads := r.URL.Query().Get("read") == "1"
	rd := s.readiness(reads)
	if !reads {
		rd.Ready = rd.Ready && rd.Quorum // a node cut off from its quorum takes no writes
	}
	status := http.StatusOK
	if !rd.Ready {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, rd)
	return nil
}

type statusBody struct {
	BuildInfo
	Started       time.Time `json:"started"`
	UptimeSeconds int64     `json:"uptime_seconds"`
	Site          SiteInfo  `json:"site"`
	readiness
}

// status is readyz plus versions, uptime and the running site.
func (s *Server) status(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, statusBody{
		BuildInfo:     s.opts.Build,
		Started:       s.opts.Started,
		UptimeSeconds: int64(time.Since(s.opts.Started).Seconds()),
		Site:          s.opts.Site(),
		readiness:     s.readiness(false),
	})
	return nil
}

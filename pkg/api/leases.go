package api

import (
	"context"
	"net/http"
	"net/netip"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/infrad/infrad/pkg/dhcp"
	"github.com/infrad/infrad/pkg/ipam"
	"github.com/infrad/infrad/pkg/site"
)

// Leases is the DHCP service, as the API sees it.
type Leases interface {
	Leases() ([]ipam.Lease, error)
	Release(ctx context.Context, ip netip.Addr) error
	// Activity is the DHCP messages received and sent lately, newest first.
	Activity(q string, limit int) []dhcp.Event
}

// activity serves the DHCP messages this box received and sent lately, newest first:
// ?q= (a word of the type, MAC, address, relay, hostname or NAK reason), ?limit= (1
// to 2048, 200 by default). It is this box's view: a cluster's other nodes have theirs.
func (s *Server) activity(w http.ResponseWriter, r *http.Request) error {
	limit := 200
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > dhcp.ActivityLen {
			return fieldErrorf("limit", "limit=%q: want a number from 1 to %d", v, dhcp.ActivityLen)
		}
		limit = n
	}
	return reply(w, http.StatusOK, s.opts.Leases.Activity(r.URL.Query().Get("q"), limit), nil)
}

func (s *Server) listLeases(w http.ResponseWriter, r *http.Request) error {
	leases, err := s.opts.Leases.Leases()
	return reply(w, http.StatusOK, leases, err)
}

func (s *Server) releaseLease(w http.ResponseWriter, r *http.Request) error {
	ip, err := site.ParseAddr(chi.URLParam(r, "ip"))
	if err != nil {
		return errorf(http.StatusBadRequest, "malformed", "%v", err)
	}
	return noContent(w, s.opts.Leases.Release(r.Context(), ip))
}

// pinLease makes a lease a reservation: a host with its address, MAC and hostname
// (or the name the body gives).
func (s *Server) pinLease(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		Name string `json:"name"`
	}
	if r.ContentLength != 0 {
		if err := decode(w, r, &body); err != nil {
			return err
		}
	}
	ip, err := site.ParseAddr(chi.URLParam(r, "ip"))
	if err != nil {
		return errorf(http.StatusBadRequest, "malformed", "%v", err)
	}
	h, err := s.opts.IPAM.PinLease(r.Context(), ip, body.Name)
	if err == nil {
		location(w, "/api/v1/hosts/%s", h.Name)
	}
	return reply(w, http.StatusCreated, h, err)
}

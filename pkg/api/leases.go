package api

import (
	"net/http"
	"net/netip"

	"github.com/go-chi/chi/v5"

	"github.com/infrad/infrad/pkg/ipam"
)

// Leases is the DHCP service, as the API sees it.
type Leases interface {
	Leases() ([]ipam.Lease, error)
	Release(ip netip.Addr) error
}

func (s *Server) listLeases(w http.ResponseWriter, r *http.Request) error {
	leases, err := s.opts.Leases.Leases()
	return reply(w, http.StatusOK, leases, err)
}

func (s *Server) releaseLease(w http.ResponseWriter, r *http.Request) error {
	ip, err := ipam.ParseAddr(chi.URLParam(r, "ip"))
	if err != nil {
		return errorf(http.StatusBadRequest, "malformed", "%v", err)
	}
	return noContent(w, s.opts.Leases.Release(ip))
}

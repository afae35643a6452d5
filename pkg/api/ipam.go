package api

import (
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/infrad/infrad/pkg/site"
)

// The IPAM resources: thin handlers over ipam.IPAM. Objects the site file owns are
// read-only here (409 owned_by_file); the rules are ipam's (409 conflict, 422 invalid).

func (s *Server) ipamRoutes(r chi.Router) {
	r.Get("/subnets", s.handle(s.listSubnets))
	r.Post("/subnets", s.handle(s.createSubnet))
	r.Get("/subnets/{name}", s.handle(s.getSubnet))
	r.Put("/subnets/{name}", s.handle(s.updateSubnet))
	r.Delete("/subnets/{name}", s.handle(s.deleteSubnet))
	r.Post("/subnets/{name}/allocate", s.handle(s.allocate))

	r.Get("/hosts", s.handle(s.listHosts))
	r.Post("/hosts", s.handle(s.createHost))
	r.Get("/hosts/{name}", s.handle(s.getHost))
	r.Put("/hosts/{name}", s.handle(s.updateHost))
	r.Delete("/hosts/{name}", s.handle(s.deleteHost))
	r.Delete("/hosts/{name}/booted", s.handle(s.rearmHost))

	r.Get("/dns/records", s.handle(s.listRecords))
	r.Post("/dns/records", s.handle(s.createRecord))
	r.Get("/dns/records/{id}", s.handle(s.getRecord))
	r.Delete("/dns/records/{id}", s.handle(s.deleteRecord))

	r.Post("/import", s.handle(s.importSite))
}

// reply writes v with status, or returns err.
func reply(w http.ResponseWriter, status int, v any, err error) error {
	if err != nil {
		return err
	}
	writeJSON(w, status, v)
	return nil
}

func noContent(w http.ResponseWriter, err error) error {
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) listSubnets(w http.ResponseWriter, r *http.Request) error {
	subnets, err := s.opts.IPAM.Subnets()
	return reply(w, http.StatusOK, subnets, err)
}

func (s *Server) getSubnet(w http.ResponseWriter, r *http.Request) error {
	sn, err := s.opts.IPAM.Subnet(chi.URLParam(r, "name"))
	return reply(w, http.StatusOK, sn, err)
}

func (s *Server) createSubnet(w http.ResponseWriter, r *http.Request) error {
	var spec site.SubnetSpec
	if err := decode(w, r, &spec); err != nil {
		return err
	}
	sn, err := s.opts.IPAM.CreateSubnet(r.Context(), spec)
	if err == nil {
		location(w, "/api/v1/subnets/%s", sn.Name)
	}
	return reply(w, http.StatusCreated, sn, err)
}

func (s *Server) updateSubnet(w http.ResponseWriter, r *http.Request) error {
	var spec site.SubnetSpec
	if err := decode(w, r, &spec); err != nil {
		return err
	}
	sn, err := s.opts.IPAM.UpdateSubnet(r.Context(), chi.URLParam(r, "name"), spec)
	return reply(w, http.StatusOK, sn, err)
}

func (s *Server) deleteSubnet(w http.ResponseWriter, r *http.Request) error {
	return noContent(w, s.opts.IPAM.DeleteSubnet(r.Context(), chi.URLParam(r, "name")))
}

func (s *Server) allocate(w http.ResponseWriter, r *http.Request) error {
	var spec site.HostSpec
	if err := decode(w, r, &spec); err != nil {
		return err
	}
	h, err := s.opts.IPAM.Allocate(r.Context(), chi.URLParam(r, "name"), spec)
	if err == nil {
		location(w, "/api/v1/hosts/%s", h.Name)
	}
	return reply(w, http.StatusCreated, h, err)
}

func (s *Server) listHosts(w http.ResponseWriter, r *http.Request) error {
	hosts, err := s.opts.IPAM.Hosts()
	return reply(w, http.StatusOK, hosts, err)
}

func (s *Server) getHost(w http.ResponseWriter, r *http.Request) error {
	h, err := s.opts.IPAM.Host(chi.URLParam(r, "name"))
	return reply(w, http.StatusOK, h, err)
}

func (s *Server) createHost(w http.ResponseWriter, r *http.Request) error {
	var spec site.HostSpec
	if err := decode(w, r, &spec); err != nil {
		return err
	}
	h, err := s.opts.IPAM.CreateHost(r.Context(), spec)
	if err == nil {
		location(w, "/api/v1/hosts/%s", h.Name)
	}
	return reply(w, http.StatusCreated, h, err)
}

func (s *Server) updateHost(w http.ResponseWriter, r *http.Request) error {
	var spec site.HostSpec
	if err := decode(w, r, &spec); err != nil {
		return err
	}
	h, err := s.opts.IPAM.UpdateHost(r.Context(), chi.URLParam(r, "name"), spec)
	return reply(w, http.StatusOK, h, err)
}

func (s *Server) deleteHost(w http.ResponseWriter, r *http.Request) error {
	return noContent(w, s.opts.IPAM.DeleteHost(r.Context(), chi.URLParam(r, "name")))
}

// rearmHost forgets that a boot_once host has booted: it boots from its profile again.
func (s *Server) rearmHost(w http.ResponseWriter, r *http.Request) error {
	h, err := s.opts.IPAM.Rearm(r.Context(), chi.URLParam(r, "name"))
	return reply(w, http.StatusOK, h, err)
}

// record is a record as the API shows it: with its ID.
type record struct {
	ID string `json:"id"`
	site.Record
}

func (s *Server) listRecords(w http.ResponseWriter, r *http.Request) error {
	records, err := s.opts.IPAM.Records()
	out := make([]record, len(records))
	for i, rec := range records {
		out[i] = record{rec.ID(), rec}
	}
	return reply(w, http.StatusOK, out, err)
}

func (s *Server) getRecord(w http.ResponseWriter, r *http.Request) error {
	rec, err := s.opts.IPAM.Record(chi.URLParam(r, "id"))
	return reply(w, http.StatusOK, record{rec.ID(), rec}, err)
}

func (s *Server) createRecord(w http.ResponseWriter, r *http.Request) error {
	var spec site.RecordSpec
	if err := decode(w, r, &spec); err != nil {
		return err
	}
	rec, err := s.opts.IPAM.CreateRecord(r.Context(), spec)
	if err == nil {
		location(w, "/api/v1/dns/records/%s", rec.ID())
	}
	return reply(w, http.StatusCreated, record{rec.ID(), rec}, err)
}

func (s *Server) deleteRecord(w http.ResponseWriter, r *http.Request) error {
	return noContent(w, s.opts.IPAM.DeleteRecord(r.Context(), chi.URLParam(r, "id")))
}

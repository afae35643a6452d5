package api

import (
	"net/http"

	"github.com/infrad/infrad/pkg/boot"
)

// Boot is the boot service, as the API sees it.
type Boot interface {
	Status() boot.Status
}

// bootStatus lists the site's boot profiles and the iPXE binaries the box lacks.
func (s *Server) bootStatus(w http.ResponseWriter, r *http.Request) error {
	st := boot.Status{Profiles: []boot.ProfileStatus{}}
	if s.opts.Boot != nil {
		st = s.opts.Boot.Status()
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

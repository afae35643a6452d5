package api

import (
	"net/http"

	"github.com/infrad/infrad/pkg/ntp"
)

// Time is the NTP service, as the API sees it.
type Time interface {
	Status() ntp.State
}

// ntpStatus says where infrad's time comes from: source, stratum, leap, offset, last
// sync, and the upstream table.
func (s *Server) ntpStatus(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, s.opts.Time.Status())
	return nil
}

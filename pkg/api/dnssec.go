package api

import (
	"net/http"

	"github.com/infrad/infrad/pkg/dns"
)

// Signer is the DNS service, as the API sees its DNSSEC.
type Signer interface {
	DNSSEC() dns.DNSSECStatus
}

// dnssecStatus says whether the zones are signed, with which keys, each zone's DS
// records (what `infrad export ds` prints), and whether signing is paused.
func (s *Server) dnssecStatus(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, s.opts.Signer.DNSSEC())
	return nil
}

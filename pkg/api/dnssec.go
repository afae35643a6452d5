package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/infrad/infrad/pkg/dns"
)

// Signer is the DNS service, as the API sees its DNSSEC.
type Signer interface {
	DNSSEC() dns.DNSSECStatus
	RollKSK(ctx context.Context) error
	ConfirmDS(ctx context.Context) error
}

// dnssecStatus says whether the zones are signed, with which keys, each zone's DS
// records (what `infrad export ds` prints), and whether signing is paused.
func (s *Server) dnssecStatus(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, s.opts.Signer.DNSSEC())
	return nil
}

// rollKSK starts a KSK roll now; the answer is the status, with the roll's stage.
func (s *Server) rollKSK(w http.ResponseWriter, r *http.Request) error {
	return s.dnssecChange(w, r, s.opts.Signer.RollKSK)
}

// confirmDS says the parent's DS changed as the CDS asked: it names the new KSK, or,
// signing switched off, is gone.
func (s *Server) confirmDS(w http.ResponseWriter, r *http.Request) error {
	return s.dnssecChange(w, r, s.opts.Signer.ConfirmDS)
}

func (s *Server) dnssecChange(w http.ResponseWriter, r *http.Request, change func(context.Context) error) error {
	if r.ContentLength != 0 { // no body, or an empty object
		if err := decode(w, r, &struct{}{}); err != nil {
			return err
		}
	}
	if err := change(r.Context()); errors.Is(err, dns.ErrKSKStage) {
		return errorf(http.StatusConflict, "conflict", "%v", err)
	} else if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.opts.Signer.DNSSEC())
	return nil
}

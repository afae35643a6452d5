package api

import (
	"errors"
	"net/http"

	"github.com/infrad/infrad/pkg/ca"
)

// CA is the certificate authority, as the API sees it. Before the CA has started, its
// methods fail (or RootPEM is nil), and the API answers 503.
type CA interface {
	RootPEM() []byte
	Info() (ca.Info, error)
	Certificates() ([]ca.Certificate, error)
	CRL() ([]byte, error)
}

// notReady maps the CA's "not started" to 503.
func notReady(err error) error {
	if errors.Is(err, ca.ErrNotStarted) {
		return errorf(http.StatusServiceUnavailable, "not_ready", "%v", err)
	}
	return err
}

func (s *Server) caInfo(w http.ResponseWriter, r *http.Request) error {
	info, err := s.opts.CA.Info()
	return reply(w, http.StatusOK, info, notReady(err))
}

func (s *Server) caCertificates(w http.ResponseWriter, r *http.Request) error {
	certs, err := s.opts.CA.Certificates()
	return reply(w, http.StatusOK, certs, notReady(err))
}

// crl serves the revocation list, DER, with no token: relying parties fetch it.
func (s *Server) crl(w http.ResponseWriter, r *http.Request) error {
	crl, err := s.opts.CA.CRL()
	if err != nil {
		return notReady(err)
	}
	w.Header().Set("Content-Type", "application/pkix-crl")
	_, err = w.Write(crl)
	return err
}

// rootPEM serves the root certificate, with no token: it is what every client of the
// site's CA must come to trust.
func (s *Server) rootPEM(w http.ResponseWriter, r *http.Request) error {
	root := s.opts.CA.RootPEM()
	if root == nil {
		return errorf(http.StatusServiceUnavailable, "not_ready", "the CA has not started yet: see /readyz")
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	_, err := w.Write(root)
	return err
}

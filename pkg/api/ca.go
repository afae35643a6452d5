package api

import (
	"context"
	"errors"
	"net/http"
	"slices"

	"github.com/go-chi/chi/v5"

	"github.com/infrad/infrad/pkg/ca"
)

// CA is the certificate authority, as the API sees it. Before the CA has started, its
// methods fail (or RootPEM is nil), and the API answers 503.
type CA interface {
	RootPEM() []byte
	Info() (ca.Info, error)
	Certificates() ([]ca.Certificate, error)
	CRL() ([]byte, error)
	CreateEAB(ctx context.Context, reference string) (ca.EABKey, error)
	EABKeys(ctx context.Context) ([]ca.EABKey, error)
	DeleteEAB(ctx context.Context, id string) error
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

// createEAB makes an external account binding key for an ACME client (ca.acme_eab),
// for reference: by default the caller's token's name. Its secret is in the answer,
// once.
func (s *Server) createEAB(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		Reference string `json:"reference"`
	}
	if r.ContentLength != 0 {
		if err := decode(w, r, &body); err != nil {
			return err
		}
	}
	if body.Reference == "" {
		c, _ := r.Context().Value(tokenKey{}).(caller)
		body.Reference = c.name
	}
	keys, err := s.opts.CA.EABKeys(r.Context())
	if err != nil {
		return notReady(err)
	}
	if slices.ContainsFunc(keys, func(k ca.EABKey) bool { return k.Reference == body.Reference }) {
		e := errorf(http.StatusConflict, "conflict", "an EAB key for %q exists: delete it first, or give another reference", body.Reference)
		e.Field = "reference"
		return e
	}
	key, err := s.opts.CA.CreateEAB(r.Context(), body.Reference)
	return reply(w, http.StatusCreated, key, notReady(err))
}

func (s *Server) listEAB(w http.ResponseWriter, r *http.Request) error {
	keys, err := s.opts.CA.EABKeys(r.Context())
	return reply(w, http.StatusOK, keys, notReady(err))
}

func (s *Server) deleteEAB(w http.ResponseWriter, r *http.Request) error {
	id := chi.URLParam(r, "id")
	keys, err := s.opts.CA.EABKeys(r.Context())
	if err != nil {
		return notReady(err)
	}
	if !slices.ContainsFunc(keys, func(k ca.EABKey) bool { return k.ID == id }) {
		return errorf(http.StatusNotFound, "not_found", "no EAB key %q", id)
	}
	return noContent(w, s.opts.CA.DeleteEAB(r.Context(), id))
}

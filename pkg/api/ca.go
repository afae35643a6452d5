package api

import "net/http"

// CA is the certificate authority, as the API sees it.
type CA interface {
	RootPEM() []byte // nil until the CA has started
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

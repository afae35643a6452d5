package ca

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"

	"github.com/smallstep/certificates/acme"
	"github.com/smallstep/certificates/api/render"
)

// maxBody bounds an ACME request's body: a JWS around a CSR is a few KiB.
const maxBody = 1 << 20

// readBody reads an ACME request's body whole before step-ca sees it, so that a body
// that does not arrive within the listener's read timeout is answered 408 (step-ca
// would answer 500 with the socket's error), and one larger than maxBody 413.
func readBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		var ne net.Error
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			e := acme.NewDetailedError(acme.ErrorMalformedType, "the request body did not arrive in time")
			e.Status = http.StatusRequestTimeout
			w.Header().Set("Connection", "close")
			render.Error(w, r, e)
			return
		case errors.As(err, &tooBig):
			e := acme.NewDetailedError(acme.ErrorMalformedType, "the request body is larger than %d bytes", maxBody)
			e.Status = http.StatusRequestEntityTooLarge
			render.Error(w, r, e)
			return
		case err != nil:
			render.Error(w, r, acme.NewDetailedError(acme.ErrorMalformedType, "the request body could not be read: %v", err))
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	})
}

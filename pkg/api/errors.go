package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/infrad/infrad/pkg/ipam"
)

// Error is an API error: the status it is sent with, and the body
// {"error":{"code":"...","message":"...","field":"..."}}.
type Error struct {
	Status  int
	Code    string // stable, for programs: "unauthorized", "not_found", ...
	Message string // for people
	Field   string // the request field at fault, when there is one
}

func (e *Error) Error() string { return e.Message }

func errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// handlerFunc is a handler that returns its error instead of writing it; handle renders it.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// handle turns a handlerFunc into an http.HandlerFunc with the one error renderer.
func (s *Server) handle(h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.writeError(w, r, err)
		}
	}
}

// domainStatus maps ipam's kinds of refusal to HTTP, in this one place.
var domainStatus = []struct {
	kind   error
	status int
	code   string
}{
	{ipam.ErrNotFound, http.StatusNotFound, "not_found"},
	{ipam.ErrOwnedByFile, http.StatusConflict, "owned_by_file"},
	{ipam.ErrConflict, http.StatusConflict, "conflict"},
	{ipam.ErrInvalid, http.StatusUnprocessableEntity, "invalid"},
}

// writeError renders err as the JSON error body. Errors that are neither *Error nor a
// domain refusal are internal: logged in full, and sent without their detail.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var e *Error
	var de *ipam.Error
	switch {
	case errors.As(err, &e):
	case errors.Is(err, ipam.ErrNoQuorum):
		e = &Error{Status: http.StatusServiceUnavailable, Code: "no_quorum", Message: err.Error()}
	case errors.Is(err, ipam.ErrNotEveryBuild):
		e = &Error{Status: http.StatusConflict, Code: "upgrade_needed", Message: err.Error()}
	case errors.As(err, &de):
		for _, m := range domainStatus {
			if errors.Is(de, m.kind) {
				e = &Error{Status: m.status, Code: m.code, Message: de.Msg, Field: de.Field}
				break
			}
		}
	}
	if e == nil {
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		e = errorf(http.StatusInternalServerError, "internal", "internal error; the server log has the detail")
	}
	body := map[string]string{"code": e.Code, "message": e.Message}
	if e.Field != "" {
		body["field"] = e.Field
	}
	writeJSON(w, e.Status, map[string]any{"error": body})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client went away: nothing to tell it
}

// recoverer turns a panic in a handler into a logged 500 with the JSON error body.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("handler panicked", "method", r.Method, "path", r.URL.Path, "panic", v)
				s.writeError(w, r, fmt.Errorf("panic: %v", v))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// logRequests logs each request at debug level.
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r)
		s.log.Debug("request", slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.String("remote", r.RemoteAddr))
	})
}

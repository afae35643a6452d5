package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/infrad/infrad/pkg/ipam"
)

// changes serves the change log, newest first: ?object= (a word of the object's kind
// or key), ?source= (a word of who made it), ?since= and ?until= (RFC 3339), ?limit=
// (1 to 1000, 100 by default) and ?before= (the next page: the last page's "next").
func (s *Server) changes(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f := ipam.ChangeFilter{Object: q.Get("object"), Source: q.Get("source")}
	for _, t := range []struct {
		key string
		to  *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if v := q.Get(t.key); v != "" {
			at, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return fieldErrorf(t.key, "%s=%q is not an RFC 3339 time (2026-12-01T09:00:00Z)", t.key, v)
			}
			*t.to = at
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > ipam.MaxChangePage {
			return fieldErrorf("limit", "limit=%q: want a number from 1 to %d", v, ipam.MaxChangePage)
		}
		f.Limit = n
	}
	if v := q.Get("before"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n == 0 {
			return fieldErrorf("before", "before=%q: want the \"next\" of the last page", v)
		}
		f.Before = n
	}
	page, err := s.opts.IPAM.Changes(r.Context(), f)
	return reply(w, http.StatusOK, page, err)
}

// fieldErrorf is a 400 for a malformed query parameter, naming it.
func fieldErrorf(field, format string, args ...any) error {
	e := errorf(http.StatusBadRequest, "malformed", format, args...)
	e.Field = field
	return e
}

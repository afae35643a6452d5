package ipam

import (
	"errors"
	"strings"

	"github.com/infrad/infrad/pkg/site"
)

// The kinds of refusal; errors.Is matches an *Error against them.
var (
	ErrNotFound    = errors.New("not found")
	ErrConflict    = errors.New("conflict") // another object holds what the change wants
	ErrOwnedByFile = errors.New("owned by the site file")
	ErrInvalid     = errors.New("invalid") // the object is wrong on its own
)

// Error is a refused change: its kind, the field at fault when there is one, and a
// message for people that names every object involved.
type Error struct {
	Kind  error  // one of ErrNotFound, ErrConflict, ErrOwnedByFile, ErrInvalid
	Field string // "ip", "ranges[1].start"; "" for the whole object
	Msg   string
}

func (e *Error) Error() string {
	if e.Field != "" {
		return e.Field + ": " + e.Msg
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Kind }

func notFound(what string) *Error {
	return &Error{Kind: ErrNotFound, Msg: what + " does not exist"}
}

func invalid(field, msg string) *Error {
	return &Error{Kind: ErrInvalid, Field: field, Msg: msg}
}

// fieldError turns a spec's malformed fields into one Error.
func fieldError(errs []site.FieldError) error {
	if len(errs) == 0 {
		return nil
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Field + ": " + e.Msg
	}
	return &Error{Kind: ErrInvalid, Field: errs[0].Field, Msg: strings.TrimPrefix(strings.Join(msgs, "; "), errs[0].Field+": ")}
}

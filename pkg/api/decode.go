package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
)

// maxBody is the largest request body the API reads.
const maxBody = 1 << 20

// decode reads r's body as exactly one JSON value into v. Unknown fields, a value of
// the wrong type, trailing data and bodies over maxBody are refused with the error
// the client needs: 400, 413 for size, or 408 for a body that did not arrive in time.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	return decodeUpTo(w, r, v, maxBody)
}

// decodeUpTo is decode of a body of at most limit bytes.
func decodeUpTo(w http.ResponseWriter, r *http.Request, v any, limit int64) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, extra := dec.Token(); extra != io.EOF {
			return errorf(http.StatusBadRequest, "malformed", "the body holds more than one JSON value")
		}
		return nil
	}
	var tooBig *http.MaxBytesError
	var syntax *json.SyntaxError
	var wrongType *json.UnmarshalTypeError
	var netErr net.Error
	switch {
	case errors.As(err, &netErr) && netErr.Timeout():
		w.Header().Set("Connection", "close")
		return errorf(http.StatusRequestTimeout, "request_timeout", "the body did not arrive within the server's read timeout")
	case errors.As(err, &tooBig):
		return errorf(http.StatusRequestEntityTooLarge, "too_large", "the body is larger than %d bytes", limit)
	case errors.Is(err, io.EOF):
		return errorf(http.StatusBadRequest, "malformed", "the body is empty: want a JSON object")
	case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF):
		return errorf(http.StatusBadRequest, "malformed", "the body is not valid JSON: %v", err)
	case errors.As(err, &wrongType):
		field := wrongType.Field
		if field == "" {
			return errorf(http.StatusBadRequest, "malformed", "want a JSON %s, got a JSON %s", jsonKind(wrongType.Type.Kind().String()), wrongType.Value)
		}
		e := errorf(http.StatusBadRequest, "malformed", "%s: want a JSON %s, got a JSON %s", field, jsonKind(wrongType.Type.Kind().String()), wrongType.Value)
		e.Field = field
		return e
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		e := errorf(http.StatusBadRequest, "unknown_field", "unknown field %q", field)
		e.Field = field
		return e
	}
	return errorf(http.StatusBadRequest, "malformed", "%v", err)
}

// jsonKind names a Go kind the way a JSON user knows it.
func jsonKind(goKind string) string {
	switch goKind {
	case "struct", "map":
		return "object"
	case "slice", "array":
		return "array"
	case "int", "int64", "uint32", "float64":
		return "number"
	}
	return goKind
}

func location(w http.ResponseWriter, format string, args ...any) {
	w.Header().Set("Location", fmt.Sprintf(format, args...))
}

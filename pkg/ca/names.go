package ca

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"

	"github.com/infrad/infrad/pkg/site"
	"github.com/smallstep/certificates/acme"
	"github.com/smallstep/certificates/api/render"
)

// maxOrderBody bounds the new-order request zoneGuard reads.
const maxOrderBody = 64 << 10

// zoneGuard refuses a new order for a name outside the site's zones (the domain and
// dns.zones), at any depth below them, wildcards included: step-ca's own name policy
// lets a constraint stand for exactly one label more, so *.apps.<domain> or
// a.b.<domain> could not be issued through it. The order's JWS is verified by
// step-ca after this; this reads its payload only to refuse early.
func (s *Service) zoneGuard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/new-order") {
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxOrderBody))
		if err != nil {
			render.Error(w, r, acme.NewDetailedError(acme.ErrorMalformedType, "the request body could not be read: %v", err))
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		cfg := s.site.Load()
		zones := append([]site.Name{cfg.Domain}, cfg.DNS.Zones...)
		for _, name := range orderNames(body) {
			n := site.Name(strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(name, "*."), ".")) + ".")
			inZones := false
			for _, z := range zones {
				inZones = inZones || n.IsIn(z)
			}
			if !inZones {
				render.Error(w, r, acme.NewDetailedError(acme.ErrorRejectedIdentifierType, "%s is outside the site's zones (%s): infrad issues only names its DNS serves", name, site.JoinNames(zones)))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// orderNames are the DNS identifiers of a new-order request (RFC 8555 §7.4), read
// from its JWS payload without checking the signature; nil when it is not one.
func orderNames(body []byte) []string {
	var jws struct {
		Payload string `json:"payload"`
	}
	if json.Unmarshal(body, &jws) != nil {
		return nil
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(jws.Payload, "="))
	if err != nil {
		return nil
	}
	var order struct {
		Identifiers []struct {
			Type  string `json:"type"`
			Value string `json:"value"`
		} `json:"identifiers"`
	}
	if json.Unmarshal(payload, &order) != nil {
		return nil
	}
	var out []string
	for _, id := range order.Identifiers {
		if id.Type == "dns" {
			out = append(out, id.Value)
		}
	}
	return out
}

package ca

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/smallstep/certificates/acme"
	"github.com/smallstep/certificates/api/render"
)

// challengeGuard answers at once a client that asks for http-01 or tls-alpn-01
// validation of a name the site's DNS does not know: step-ca would keep the challenge
// pending, retrying a lookup that cannot succeed, and say only that it could not
// connect (certbot gives up after 90 s, lego waits). The challenge stays as it was: once
// the name has an address, or by dns-01, the client succeeds.
func (s *Service) challengeGuard(db acme.DB, c *client) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// /acme/<provisioner>/challenge/<authz>/<challenge>
			parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
			if r.Method != http.MethodPost || len(parts) != 5 || parts[2] != "challenge" {
				next.ServeHTTP(w, r)
				return
			}
			ch, err := db.GetChallenge(r.Context(), parts[4], parts[3])
			if err != nil || ch.Status != acme.StatusPending || (ch.Type != acme.HTTP01 && ch.Type != acme.TLSALPN01) {
				next.ServeHTTP(w, r)
				return
			}
			ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
			defer cancel()
			_, err = c.resolver.LookupHost(ctx, ch.Value)
			var dnsErr *net.DNSError
			if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
				s.log.Warn("acme challenge refused: the name has no address in the site's DNS", "name", ch.Value, "challenge", ch.Type)
				render.Error(w, r, acme.NewDetailedError(acme.ErrorDNSType, "%s has no address in the site's DNS, so %s cannot reach it: give it a host or an A record, or use dns-01", ch.Value, ch.Type))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

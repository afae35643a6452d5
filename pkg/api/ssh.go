package api

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"golang.org/x/crypto/ssh"

	"github.com/infrad/infrad/pkg/ipam"
	"github.com/infrad/infrad/pkg/sshca"
)

// enrolPrefix begins every enrolment token, so that the host route tells one from an
// API token without a lookup.
const enrolPrefix = "infrad_enrol_"

// sshError maps the SSH CA's refusals that are not the site's: an untrusted clock.
func sshError(err error) error {
	if errors.Is(err, sshca.ErrNotSynced) {
		return errorf(http.StatusServiceUnavailable, "not_synced", "%v", err)
	}
	return err
}

// sshKeys serves the CA's public keys with no token: every client and sshd of the
// site must come to trust them.
func (s *Server) sshKeys(w http.ResponseWriter, r *http.Request) error {
	keys, err := s.opts.SSH.Keys(r.Context())
	if err != nil {
		return err
	}
	host, user := s.opts.SSH.Life()
	return reply(w, http.StatusOK, map[string]any{
		"host": keys.Host, "user": keys.User,
		"host_cert_days": int(host / (24 * time.Hour)), "user_cert_hours": int(user / time.Hour),
	}, nil)
}

// sshKRL serves the revocation list, in OpenSSH's format, with no token: every sshd
// fetches it.
func (s *Server) sshKRL(w http.ResponseWriter, r *http.Request) error {
	krl, err := s.opts.SSH.KRL(r.Context())
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	_, err = w.Write(krl)
	return err
}

func (s *Server) sshCertificates(w http.ResponseWriter, r *http.Request) error {
	certs, err := s.opts.IPAM.SSHCerts()
	if certs == nil {
		certs = []ipam.SSHCert{}
	}
	return reply(w, http.StatusOK, certs, err)
}

// certView is a signed certificate as the API gives it: the line for the key's
// -cert.pub file, and what it says.
type certView struct {
	Certificate string `json:"certificate"`
	ipam.SSHCert
}

func viewOfCert(cert *ssh.Certificate, rec ipam.SSHCert) certView {
	return certView{Certificate: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(cert))), SSHCert: rec}
}

func parseKey(field, text string) (ssh.PublicKey, error) {
	key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(text))
	if err != nil {
		e := errorf(http.StatusUnprocessableEntity, "invalid", "%s is not an OpenSSH public key line (ssh-ed25519 AAAA...): %v", field, err)
		e.Field = field
		return nil, e
	}
	return key, nil
}

// enrolHost makes a one-time token with which a machine gets its host's certificate
// (POST /api/v1/ca/ssh/hosts/{name} with the token as its bearer).
func (s *Server) enrolHost(w http.ResponseWriter, r *http.Request) error {
	body := struct {
		Hours int `json:"hours"`
	}{Hours: 24}
	if r.ContentLength != 0 {
		if err := decode(w, r, &body); err != nil {
			return err
		}
	}
	if body.Hours < 1 || body.Hours > 24*30 {
		return &Error{Status: http.StatusUnprocessableEntity, Code: "invalid", Field: "hours", Message: "an enrolment lasts from 1 to 720 hours (default 24)"}
	}
	token := enrolPrefix + hex.EncodeToString(randomBytes(32))
	e, err := s.opts.IPAM.EnrolSSHHost(r.Context(), chi.URLParam(r, "name"), hashToken(token), time.Now().Add(time.Duration(body.Hours)*time.Hour).UTC().Truncate(time.Second))
	if err != nil {
		return err
	}
	return reply(w, http.StatusCreated, map[string]any{"token": token, "host": e.Host, "principals": e.Principals, "expires": e.Expires}, nil)
}

// signHost signs a host's key for a machine that holds that host's enrolment token,
// or for an admin. It stands outside the token-checked routes: an enrolment token is
// not an API token.
func (s *Server) signHost(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		PublicKey string `json:"public_key"`
	}
	bearer, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	bearer = strings.TrimSpace(bearer)
	enrolment := ""
	if strings.HasPrefix(bearer, enrolPrefix) {
		enrolment = hashToken(bearer)
		r = r.WithContext(ipam.WithSource(r.Context(), "ssh enrolment"))
	} else {
		c, err := s.authenticate(r)
		if err != nil {
			challenge(w, r)
			return err
		}
		if !c.scope.Allows(ipam.ScopeAdmin) {
			return errorf(http.StatusForbidden, "forbidden", "token %q has the scope %s: a host certificate needs an admin token, or the host's enrolment token", c.name, c.scope)
		}
		r = r.WithContext(ipam.WithSource(r.Context(), "token "+c.name))
	}
	if err := decode(w, r, &body); err != nil {
		return err
	}
	key, err := parseKey("public_key", body.PublicKey)
	if err != nil {
		return err
	}
	cert, rec, err := s.opts.SSH.SignHost(r.Context(), chi.URLParam(r, "name"), key, enrolment, 0)
	var refused *ipam.Error
	if errors.As(err, &refused) && refused.Field == "enrolment" { // the token is no (longer a) key to this host
		return errorf(http.StatusUnauthorized, "unauthorized", "%s", refused.Msg)
	}
	if err != nil {
		return sshError(err)
	}
	return reply(w, http.StatusCreated, viewOfCert(cert, rec), nil)
}

// renewHost renews a host certificate for the machine that signs the renewal with
// the certificate's key: no token, the key is the proof.
func (s *Server) renewHost(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		Certificate string `json:"certificate"`
		Time        int64  `json:"time"`      // when it was signed, Unix seconds
		Signature   string `json:"signature"` // base64 of the SSH signature of sshca.RenewProof
	}
	if err := decode(w, r, &body); err != nil {
		return err
	}
	key, err := parseKey("certificate", body.Certificate)
	if err != nil {
		return err
	}
	cert, ok := key.(*ssh.Certificate)
	if !ok {
		return &Error{Status: http.StatusUnprocessableEntity, Code: "invalid", Field: "certificate", Message: "certificate is a public key, not a certificate"}
	}
	raw, err := base64.StdEncoding.DecodeString(body.Signature)
	var sig ssh.Signature
	if err == nil {
		err = ssh.Unmarshal(raw, &sig)
	}
	if err != nil {
		return &Error{Status: http.StatusUnprocessableEntity, Code: "invalid", Field: "signature", Message: "signature is not a base64 SSH signature: " + err.Error()}
	}
	ctx := ipam.WithSource(r.Context(), "ssh renewal")
	next, rec, err := s.opts.SSH.RenewHost(ctx, cert, time.Unix(body.Time, 0), &sig)
	if err != nil {
		return sshError(err)
	}
	return reply(w, http.StatusCreated, viewOfCert(next, rec), nil)
}

// signUser signs a user certificate for principals the caller's token allows (the
// data directory's token: any); no principals: every one the token allows.
func (s *Server) signUser(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		PublicKey  string   `json:"public_key"`
		Principals []string `json:"principals"` // none: every one the token allows
		Hours      int      `json:"hours"`      // 0: ssh.user_cert_hours
	}
	if err := decode(w, r, &body); err != nil {
		return err
	}
	key, err := parseKey("public_key", body.PublicKey)
	if err != nil {
		return err
	}
	if body.Hours < 0 || body.Hours > 24*366 { // (the CA bounds it by ssh.user_cert_hours; this bounds the arithmetic)
		return &Error{Status: http.StatusUnprocessableEntity, Code: "invalid", Field: "hours", Message: "hours is how long the certificate lives: 0 (the most the site allows) or more"}
	}
	c, _ := r.Context().Value(tokenKey{}).(caller)
	if len(body.Principals) == 0 {
		tok, _ := s.opts.IPAM.Model().Token(c.name)
		body.Principals = tok.SSHPrincipals
	}
	cert, rec, err := s.opts.SSH.SignUser(r.Context(), c.name, key, body.Principals, time.Duration(body.Hours)*time.Hour)
	if err != nil {
		return sshError(err)
	}
	return reply(w, http.StatusCreated, viewOfCert(cert, rec), nil)
}

func (s *Server) revokeSSH(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		Serial serialNumber `json:"serial"`
	}
	if err := decode(w, r, &body); err != nil {
		return err
	}
	rec, err := s.opts.SSH.Revoke(r.Context(), uint64(body.Serial))
	return reply(w, http.StatusOK, rec, err)
}

// serialNumber is a serial given as a string of digits (as the API writes it: a
// serial is 63 bits, past what JavaScript's numbers hold exactly) or a JSON number.
type serialNumber uint64

func (n *serialNumber) UnmarshalJSON(b []byte) error {
	v, err := strconv.ParseUint(strings.Trim(string(b), `"`), 10, 64)
	*n = serialNumber(v)
	return err
}

package ipam

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/infrad/infrad/pkg/store"
)

// The tables (the CA's, in its bucket) of the SSH certificates the site's CA issued,
// by serial, and of the enrolments that wait to be used, by their token's SHA-256.
const (
	sshCertTable  = "ssh_issued"
	sshEnrolTable = "ssh_enrol"
)

// SSHCert is an SSH certificate the site's CA issued, as the store keeps it.
type SSHCert struct {
	Serial      uint64    `json:"serial,string"` // a string: 63 bits, past what JavaScript holds
	Kind        string    `json:"kind"`          // host or user
	KeyID       string    `json:"key_id"`
	Principals  []string  `json:"principals"`
	Host        string    `json:"host,omitempty"`  // a host certificate's host
	Token       string    `json:"token,omitempty"` // a user certificate's: the token that asked
	Fingerprint string    `json:"fingerprint"`     // its public key's, SHA256:...
	ValidAfter  time.Time `json:"valid_after"`
	ValidBefore time.Time `json:"valid_before"`
	Renews      uint64    `json:"renews,omitempty,string"` // the serial it renewed
	Revoked     time.Time `json:"revoked,omitzero"`
	// Stale says why a host certificate no longer names its host as the site does
	// (the host was renamed, readdressed or deleted): it is for revoking. Made when read.
	Stale string `json:"stale,omitempty"`
}

// The kinds of SSH certificate.
const (
	SSHHost = "host"
	SSHUser = "user"
)

// SSHEnrolment is a one-time token that lets a machine get the host certificate of
// the host it was made for, while the host has the names it had then.
type SSHEnrolment struct {
	Host       string    `json:"host"`
	Principals []string  `json:"principals"`
	Expires    time.Time `json:"expires"`
}

// EnrolSSHHost keeps an enrolment for a host, by its token's hash.
type EnrolSSHHost struct {
	Stamp
	Hash      string       `json:"hash"`
	Enrolment SSHEnrolment `json:"enrolment"`
}

func (c EnrolSSHHost) apply(t *txn) (any, error) {
	h, ok := t.m.Host(c.Enrolment.Host)
	if !ok {
		return nil, notFound(fmt.Sprintf("host %q", c.Enrolment.Host))
	}
	if len(c.Hash) != 64 {
		return nil, invalid("hash", "an enrolment's hash is 64 hex digits of SHA-256")
	}
	e := c.Enrolment
	e.Principals = h.SSHPrincipals(t.m.Domain())
	if err := t.dropExpiredEnrolments(c.At); err != nil {
		return nil, err
	}
	if err := t.putRow(sshEnrolTable, c.Hash, e); err != nil {
		return nil, err
	}
	return e, nil
}

// dropExpiredEnrolments deletes the enrolments that expired by now, unused: a new one
// clears them away, so the table holds what may still be used.
func (t *txn) dropExpiredEnrolments(now time.Time) error {
	var expired [][]byte
	err := store.TableEach(t.tx, sshEnrolTable, func(k, v []byte) error {
		var e SSHEnrolment
		if json.Unmarshal(v, &e) == nil && !e.Expires.After(now) {
			expired = append(expired, k)
		}
		return nil
	})
	if errors.Is(err, store.ErrNoTable) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, k := range expired {
		if err := store.TableDelete(t.tx, sshEnrolTable, k); err != nil {
			return abort(err)
		}
		t.wrote = true
	}
	return nil
}

// IssueSSHCert records a certificate the CA signed, checked against the site in the
// transaction that records it: a host certificate names exactly its host's
// principals as they are now, and is made with an enrolment (used up here), as the
// renewal of a live certificate of the same host and key, or by an admin; a user
// certificate names only principals its token allows. Only a recorded certificate is
// handed out.
type IssueSSHCert struct {
	Stamp
	Cert SSHCert `json:"cert"`
	// Enrolment is the hash of the enrolment token it was asked with; "": none.
	Enrolment string `json:"enrolment,omitempty"`
}

func (c IssueSSHCert) apply(t *txn) (any, error) {
	cert := c.Cert
	key := sshSerialKey(cert.Serial)
	var old SSHCert
	if found, err := t.getRow(sshCertTable, key, &old); err != nil {
		return nil, err
	} else if found || cert.Serial == 0 {
		return nil, &Error{Kind: ErrConflict, Field: "serial", Msg: fmt.Sprintf("serial %d is taken: sign again", cert.Serial)}
	}
	switch cert.Kind {
	case SSHHost:
		h, ok := t.m.Host(cert.Host)
		if !ok {
			return nil, notFound(fmt.Sprintf("host %q", cert.Host))
		}
		if want := h.SSHPrincipals(t.m.Domain()); !slices.Equal(cert.Principals, want) {
			return nil, &Error{Kind: ErrConflict, Field: "principals", Msg: fmt.Sprintf("host %q is now %v, not %v: its certificate names what the site names", h.Name, want, cert.Principals)}
		}
		if err := t.mayIssueHost(c, h.Name); err != nil {
			return nil, err
		}
	case SSHUser:
		if cert.Token != FileTokenName {
			tok, ok := t.m.tokens.Get(cert.Token)
			if !ok {
				return nil, notFound(fmt.Sprintf("token %q", cert.Token))
			}
			for _, p := range cert.Principals {
				if !slices.Contains(tok.SSHPrincipals, p) {
					return nil, &Error{Kind: ErrInvalid, Field: "principals", Msg: fmt.Sprintf("token %q may not sign for %q: it allows %v", tok.Name, p, tok.SSHPrincipals)}
				}
			}
		}
	default:
		return nil, invalid("kind", fmt.Sprintf("%q is not a kind of SSH certificate: host or user", cert.Kind))
	}
	if err := t.putRow(sshCertTable, key, cert); err != nil {
		return nil, err
	}
	t.noteExtra(ObjectChange{Kind: "ssh_certificate", Key: key, Op: "create", After: mustMarshal(cert)})
	return cert, nil
}

// mayIssueHost checks how a host certificate for host is asked for: with an
// enrolment of that host under the names it has now, which is used up; or as the
// renewal of a live, unrevoked certificate of that host for the same key; or neither
// (an admin asked).
func (t *txn) mayIssueHost(c IssueSSHCert, host string) error {
	if c.Enrolment != "" {
		var e SSHEnrolment
		found, err := t.getRow(sshEnrolTable, c.Enrolment, &e)
		switch {
		case err != nil:
			return err
		case !found || e.Host != host || !e.Expires.After(c.At):
			return &Error{Kind: ErrConflict, Field: "enrolment", Msg: fmt.Sprintf("no enrolment of host %q waits under this token (each is used once, and lasts until it expires)", host)}
		case !slices.Equal(e.Principals, c.Cert.Principals):
			return &Error{Kind: ErrConflict, Field: "enrolment", Msg: fmt.Sprintf("host %q was %v when it was enrolled, and is now %v: enrol it again", host, e.Principals, c.Cert.Principals)}
		}
		if err := store.TableDelete(t.tx, sshEnrolTable, []byte(c.Enrolment)); err != nil {
			return abort(err)
		}
		t.wrote = true
	}
	if c.Cert.Renews != 0 {
		var prev SSHCert
		found, err := t.getRow(sshCertTable, sshSerialKey(c.Cert.Renews), &prev)
		switch {
		case err != nil:
			return err
		case !found || prev.Kind != SSHHost || prev.Host != host || prev.Fingerprint != c.Cert.Fingerprint:
			return &Error{Kind: ErrConflict, Field: "renews", Msg: fmt.Sprintf("certificate %d is not a host certificate of %q for this key", c.Cert.Renews, host)}
		case !prev.Revoked.IsZero():
			return &Error{Kind: ErrConflict, Field: "renews", Msg: fmt.Sprintf("certificate %d was revoked: enrol the host again", c.Cert.Renews)}
		case !prev.ValidBefore.After(c.At):
			return &Error{Kind: ErrConflict, Field: "renews", Msg: fmt.Sprintf("certificate %d expired at %s: enrol the host again", c.Cert.Renews, prev.ValidBefore.Format(time.RFC3339))}
		}
	}
	return nil
}

// RevokeSSHCert revokes an issued certificate: the KRL lists it from then on.
type RevokeSSHCert struct {
	Stamp
	Serial uint64 `json:"serial"`
}

func (c RevokeSSHCert) apply(t *txn) (any, error) {
	key := sshSerialKey(c.Serial)
	var cert SSHCert
	found, err := t.getRow(sshCertTable, key, &cert)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, notFound(fmt.Sprintf("SSH certificate %d", c.Serial))
	}
	if !cert.Revoked.IsZero() {
		return cert, nil // revoked already
	}
	cert.Revoked = c.At
	if err := t.putRow(sshCertTable, key, cert); err != nil {
		return nil, err
	}
	t.noteExtra(ObjectChange{Kind: "ssh_certificate", Key: key, Op: "revoke", After: mustMarshal(cert)})
	return cert, nil
}

// sshSerialKey is a certificate's key in its table: its serial in decimal.
func sshSerialKey(serial uint64) string { return strconv.FormatUint(serial, 10) }

// getRow reads the JSON value at key in table into v, and reports whether there was one.
func (t *txn) getRow(table, key string, v any) (bool, error) {
	raw, err := store.TableGet(t.tx, table, []byte(key))
	if errors.Is(err, store.ErrNoTable) || raw == nil {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, json.Unmarshal(raw, v)
}

// putRow writes v as JSON at key in table, making the table when it is new.
func (t *txn) putRow(table, key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := store.CreateTable(t.tx, table); err != nil {
		return abort(err)
	}
	if err := store.TablePut(t.tx, table, []byte(key), raw); err != nil {
		return abort(err)
	}
	t.wrote = true
	return nil
}

func mustMarshal(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// EnrolSSHHost keeps an enrolment of host under hash, until expires.
func (m *IPAM) EnrolSSHHost(ctx context.Context, host, hash string, expires time.Time) (SSHEnrolment, error) {
	return result[SSHEnrolment](m.Apply(ctx, EnrolSSHHost{Stamp: m.stampFor(ctx), Hash: hash, Enrolment: SSHEnrolment{Host: host, Expires: expires}}))
}

// IssueSSHCert records cert, signed, if the site allows it (see the command).
func (m *IPAM) IssueSSHCert(ctx context.Context, cert SSHCert, enrolment string) (SSHCert, error) {
	return result[SSHCert](m.Apply(ctx, IssueSSHCert{Stamp: m.stampFor(ctx), Cert: cert, Enrolment: enrolment}))
}

// RevokeSSHCert revokes the certificate with serial.
func (m *IPAM) RevokeSSHCert(ctx context.Context, serial uint64) (SSHCert, error) {
	return result[SSHCert](m.Apply(ctx, RevokeSSHCert{Stamp: m.stampFor(ctx), Serial: serial}))
}

// SSHCerts are the SSH certificates the CA issued, by serial, each host certificate
// said to be stale when its host no longer has its names.
func (m *IPAM) SSHCerts() ([]SSHCert, error) {
	var certs []SSHCert
	err := m.store.View(func(tx *store.Tx) error {
		return store.TableEach(tx, sshCertTable, func(_, v []byte) error {
			var c SSHCert
			if err := json.Unmarshal(v, &c); err != nil {
				return err
			}
			certs = append(certs, c)
			return nil
		})
	})
	if err != nil && !errors.Is(err, store.ErrNoTable) {
		return nil, err
	}
	model := m.Model()
	for i, c := range certs {
		if c.Kind != SSHHost {
			continue
		}
		if h, ok := model.Host(c.Host); !ok {
			certs[i].Stale = fmt.Sprintf("host %q was deleted", c.Host)
		} else if now := h.SSHPrincipals(model.Domain()); !slices.Equal(now, c.Principals) {
			certs[i].Stale = fmt.Sprintf("host %q is now %v", c.Host, now)
		}
	}
	slices.SortFunc(certs, func(a, b SSHCert) int { return a.ValidAfter.Compare(b.ValidAfter) })
	return certs, nil
}

// SSHCert is the certificate with serial.
func (m *IPAM) SSHCert(serial uint64) (SSHCert, bool, error) {
	var c SSHCert
	var found bool
	err := m.store.View(func(tx *store.Tx) error {
		raw, err := store.TableGet(tx, sshCertTable, []byte(sshSerialKey(serial)))
		if err != nil || raw == nil {
			return err
		}
		found = true
		return json.Unmarshal(raw, &c)
	})
	if errors.Is(err, store.ErrNoTable) {
		err = nil
	}
	return c, found, err
}

// SSHHostPrincipals are the principals host's certificate names now.
func (m *Model) SSHHostPrincipals(host string) ([]string, bool) {
	h, ok := m.Host(host)
	if !ok {
		return nil, false
	}
	return h.SSHPrincipals(m.Domain()), true
}

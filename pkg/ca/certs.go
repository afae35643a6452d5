package ca

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/smallstep/certificates/db"
	"github.com/smallstep/nosql"
)

// The tables of step-ca's database that the CA reads.
var (
	certsTable   = []byte("x509_certs")
	revokedTable = []byte("revoked_x509_certs")
)

// ErrNotStarted is returned by the reads below before the CA has started.
var ErrNotStarted = errors.New("the CA has not started yet: see /readyz")

// Info says what a client needs to trust and use the CA.
type Info struct {
	RootFingerprint    string    `json:"root_fingerprint_sha256"`
	Directory          string    `json:"directory"`
	RootExpiry         time.Time `json:"root_expiry"`
	IntermediateExpiry time.Time `json:"intermediate_expiry"`
	CertLifetime       string    `json:"cert_lifetime"` // as Go writes a duration: 2160h0m0s
	CertLifetimeSecs   int64     `json:"cert_lifetime_seconds"`
	// ExternalAccountRequired: a new ACME account needs an EAB key (ca.acme_eab).
	ExternalAccountRequired bool `json:"external_account_required"`
}

// Info is nil-safe: before Start it returns ErrNotStarted.
func (s *Service) Info() (Info, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.auth == nil {
		return Info{}, ErrNotStarted
	}
	sum := sha256.Sum256(s.root.Raw)
	return Info{
		RootFingerprint:    hex.EncodeToString(sum[:]),
		Directory:          DirectoryURL(s.site.Load().CA.Name, s.site.Load().CA.Listen.Port()),
		RootExpiry:         s.root.NotAfter,
		IntermediateExpiry: s.inter.NotAfter,
		CertLifetime:       s.site.Load().CA.CertLifetime.String(),
		CertLifetimeSecs:   int64(s.site.Load().CA.CertLifetime.Seconds()),

		ExternalAccountRequired: s.site.Load().CA.ExternalAccountBinding,
	}, nil
}

// SerialHex is a serial number as openssl, certbot and CRLs show it: upper-case
// hexadecimal, whole bytes.
func SerialHex(n *big.Int) string { return strings.ToUpper(hex.EncodeToString(n.Bytes())) }

// Certificate is one certificate the CA issued.
type Certificate struct {
	Serial    string    `json:"serial"` // SerialHex
	Names     []string  `json:"names"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	Revoked   bool      `json:"revoked"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
}

// Certificates lists what the CA issued, newest first.
func (s *Service) Certificates() ([]Certificate, error) {
	s.mu.Lock()
	auth := s.auth
	s.mu.Unlock()
	if auth == nil {
		return nil, ErrNotStarted
	}
	store, ok := auth.GetDatabase().(nosql.DB)
	if !ok {
		return nil, errors.New("the CA's database cannot be listed")
	}
	revoked := map[string]time.Time{}
	entries, err := store.List(revokedTable)
	if err != nil && !nosql.IsErrNotFound(err) {
		return nil, err
	}
	for _, e := range entries {
		var info db.RevokedCertificateInfo
		if json.Unmarshal(e.Value, &info) == nil {
			revoked[info.Serial] = info.RevokedAt
		}
	}
	entries, err = store.List(certsTable)
	if err != nil && !nosql.IsErrNotFound(err) {
		return nil, err
	}
	out := []Certificate{}
	for _, e := range entries {
		c, err := x509.ParseCertificate(e.Value)
		if err != nil {
			continue
		}
		at, isRevoked := revoked[c.SerialNumber.String()] // (step-ca keys its tables by the decimal)
		out = append(out, Certificate{Serial: SerialHex(c.SerialNumber), Names: c.DNSNames, NotBefore: c.NotBefore, NotAfter: c.NotAfter,
			Revoked: isRevoked, RevokedAt: at})
	}
	slices.SortFunc(out, func(a, b Certificate) int { return b.NotBefore.Compare(a.NotBefore) })
	return out, nil
}

// CRL is the current certificate revocation list, DER-encoded.
func (s *Service) CRL() ([]byte, error) {
	s.mu.Lock()
	auth := s.auth
	s.mu.Unlock()
	if auth == nil {
		return nil, ErrNotStarted
	}
	crl, err := auth.GetCertificateRevocationList()
	if err != nil {
		return nil, err
	}
	return crl.Data, nil
}

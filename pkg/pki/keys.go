// Package pki keeps the site's certificate authority on disk (the root and the
// intermediate under <data_dir>/ca, made at the first start) and the nodes' identities
// the root signs: what pkg/ca issues from, and what pkg/cluster's nodes prove
// themselves with, without either depending on the other.
package pki

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"time"

	"go.step.sm/crypto/keyutil"
	"go.step.sm/crypto/pemutil"
	"go.step.sm/crypto/x509util"
)

// Lifetimes of the CA's own certificates.
const (
	rootLifetime         = 10 * 365 * 24 * time.Hour
	intermediateLifetime = 3 * 365 * 24 * time.Hour
)

// Pair is a certificate and its private key.
type Pair struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// LoadOrCreate reads the root and intermediate from dir, making the root on first
// start and a new intermediate when the one there has less than a third of its life
// left. Private keys are written 0600.
func LoadOrCreate(dir, name string, now time.Time) (root, inter Pair, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return root, inter, err
	}
	root, err = load(dir, "root")
	if errors.Is(err, fs.ErrNotExist) {
		root, err = create(dir, "root", name+" Root CA", x509util.DefaultRootTemplate, Pair{}, now, rootLifetime)
	}
	if err != nil {
		return root, inter, fmt.Errorf("root certificate: %w", err)
	}
	inter, err = load(dir, "intermediate")
	if errors.Is(err, fs.ErrNotExist) || (err == nil && inter.Cert.NotAfter.Sub(now) < intermediateLifetime/3) {
		inter, err = create(dir, "intermediate", name+" Intermediate CA", x509util.DefaultIntermediateTemplate, root, now, intermediateLifetime)
	}
	if err != nil {
		return root, inter, fmt.Errorf("intermediate certificate: %w", err)
	}
	return root, inter, nil
}

func load(dir, base string) (Pair, error) {
	cert, err := pemutil.ReadCertificate(filepath.Join(dir, base+".crt"))
	if err != nil {
		return Pair{}, err
	}
	key, err := pemutil.Read(filepath.Join(dir, base+".key"))
	if err != nil {
		return Pair{}, err
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return Pair{}, fmt.Errorf("%s.key is not a signing key", base)
	}
	return Pair{Cert: cert, Key: signer}, nil
}

// create makes a certificate from template for commonName, signed by parent (itself
// when parent is empty), and writes it and its new key to dir.
func create(dir, base, commonName, template string, parent Pair, now time.Time, lifetime time.Duration) (Pair, error) {
	key, err := keyutil.GenerateDefaultSigner() // ECDSA P-256
	if err != nil {
		return Pair{}, err
	}
	cr, err := x509util.CreateCertificateRequest(commonName, nil, key)
	if err != nil {
		return Pair{}, err
	}
	c, err := x509util.NewCertificate(cr, x509util.WithTemplate(template, x509util.CreateTemplateData(commonName, nil)))
	if err != nil {
		return Pair{}, err
	}
	tmpl := c.GetCertificate()
	tmpl.NotBefore, tmpl.NotAfter = now.Add(-time.Minute), now.Add(lifetime)
	if parent.Cert == nil {
		parent = Pair{Cert: tmpl, Key: key}
	}
	cert, err := x509util.CreateCertificate(tmpl, parent.Cert, key.Public(), parent.Key)
	if err != nil {
		return Pair{}, err
	}
	if _, err := pemutil.Serialize(key, pemutil.ToFile(filepath.Join(dir, base+".key"), 0o600)); err != nil {
		return Pair{}, err
	}
	crt := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
	if err := os.WriteFile(filepath.Join(dir, base+".crt"), crt, 0o644); err != nil {
		return Pair{}, err
	}
	return Pair{Cert: cert, Key: key}, nil
}

// WithURLs returns the intermediate as it should name its relying parties' sources:
// crl, the root's CRL, as its CRL distribution point, and issuer, the root's
// certificate, as its issuer's URL (AIA). An intermediate that names others (made
// before, or the CA's name or port changed) is issued again by the root with the same
// key, subject and validity, and written to dir: certificates it signed verify
// against either. Each box of a cluster does so for itself.
func WithURLs(dir string, root, inter Pair, crl, issuer string) (Pair, error) {
	c := inter.Cert
	if slices.Equal(c.CRLDistributionPoints, []string{crl}) && slices.Equal(c.IssuingCertificateURL, []string{issuer}) {
		return inter, nil
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return inter, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: c.Subject, NotBefore: c.NotBefore, NotAfter: c.NotAfter,
		KeyUsage: c.KeyUsage, ExtKeyUsage: c.ExtKeyUsage, BasicConstraintsValid: true, IsCA: true,
		MaxPathLen: c.MaxPathLen, MaxPathLenZero: c.MaxPathLenZero, SubjectKeyId: c.SubjectKeyId,
		CRLDistributionPoints: []string{crl}, IssuingCertificateURL: []string{issuer},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root.Cert, inter.Key.Public(), root.Key)
	if err != nil {
		return inter, fmt.Errorf("issue the intermediate again: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return inter, err
	}
	tmp := filepath.Join(dir, ".intermediate.crt")
	if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return inter, err
	}
	if err := os.Rename(tmp, filepath.Join(dir, "intermediate.crt")); err != nil {
		return inter, err
	}
	return Pair{Cert: cert, Key: inter.Key}, nil
}

// RootCRL is the root's certificate revocation list, as of now and for a week: the
// root signs only intermediates, and infrad revokes none, so it lists nothing. A
// relying party that checks the whole chain (openssl verify -crl_check_all) needs it.
func RootCRL(root Pair, now time.Time) ([]byte, error) {
	return x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(now.Unix()), ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(RootCRLLife),
	}, root.Cert, root.Key)
}

// RootCRLLife is how long a root CRL is valid; it is made anew at half of it.
const RootCRLLife = 7 * 24 * time.Hour

package ca

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
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

// pair is a certificate and its private key.
type pair struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// loadOrCreate reads the root and intermediate from dir, making the root on first
// start and a new intermediate when the one there has less than a third of its life
// left. Private keys are written 0600.
func loadOrCreate(dir, name string, now time.Time) (root, inter pair, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return root, inter, err
	}
	root, err = load(dir, "root")
	if errors.Is(err, fs.ErrNotExist) {
		root, err = create(dir, "root", name+" Root CA", x509util.DefaultRootTemplate, pair{}, now, rootLifetime)
	}
	if err != nil {
		return root, inter, fmt.Errorf("root certificate: %w", err)
	}
	inter, err = load(dir, "intermediate")
	if errors.Is(err, fs.ErrNotExist) || (err == nil && inter.cert.NotAfter.Sub(now) < intermediateLifetime/3) {
		inter, err = create(dir, "intermediate", name+" Intermediate CA", x509util.DefaultIntermediateTemplate, root, now, intermediateLifetime)
	}
	if err != nil {
		return root, inter, fmt.Errorf("intermediate certificate: %w", err)
	}
	return root, inter, nil
}

func load(dir, base string) (pair, error) {
	cert, err := pemutil.ReadCertificate(filepath.Join(dir, base+".crt"))
	if err != nil {
		return pair{}, err
	}
	key, err := pemutil.Read(filepath.Join(dir, base+".key"))
	if err != nil {
		return pair{}, err
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return pair{}, fmt.Errorf("%s.key is not a signing key", base)
	}
	return pair{cert: cert, key: signer}, nil
}

// create makes a certificate from template for commonName, signed by parent (itself
// when parent is empty), and writes it and its new key to dir.
func create(dir, base, commonName, template string, parent pair, now time.Time, lifetime time.Duration) (pair, error) {
	key, err := keyutil.GenerateDefaultSigner() // ECDSA P-256
	if err != nil {
		return pair{}, err
	}
	cr, err := x509util.CreateCertificateRequest(commonName, nil, key)
	if err != nil {
		return pair{}, err
	}
	c, err := x509util.NewCertificate(cr, x509util.WithTemplate(template, x509util.CreateTemplateData(commonName, nil)))
	if err != nil {
		return pair{}, err
	}
	tmpl := c.GetCertificate()
	tmpl.NotBefore, tmpl.NotAfter = now.Add(-time.Minute), now.Add(lifetime)
	if parent.cert == nil {
		parent = pair{cert: tmpl, key: key}
	}
	cert, err := x509util.CreateCertificate(tmpl, parent.cert, key.Public(), parent.key)
	if err != nil {
		return pair{}, err
	}
	if _, err := pemutil.Serialize(key, pemutil.ToFile(filepath.Join(dir, base+".key"), 0o600)); err != nil {
		return pair{}, err
	}
	crt := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
	if err := os.WriteFile(filepath.Join(dir, base+".crt"), crt, 0o644); err != nil {
		return pair{}, err
	}
	return pair{cert: cert, key: key}, nil
}

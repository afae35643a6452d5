package pki

import (
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"math/big"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.step.sm/crypto/keyutil"

	"github.com/infrad/infrad/internal/testenv"
)

// TestAJoiningNodeGetsTheSiteCA: the files a first node makes are the ones a joining
// node is sent (KeyFiles), and with them the joining node's certificate is one the
// first node's root verifies, named for the node.
func TestAJoiningNodeGetsTheSiteCA(t *testing.T) {
	first, joining := t.TempDir(), t.TempDir()
	one, err := NewNodeIdentity(first, "ca.lab.test.", "infra1", netip.MustParseAddr("10.0.40.2"))
	if err != nil {
		t.Fatal(err)
	}
	files, err := ReadKeyFiles(first)
	if err != nil {
		t.Fatalf("the first node's CA files: %v", err)
	}
	if err := WriteKeyFiles(joining, files); err != nil {
		t.Fatal(err)
	}
	two, err := NewNodeIdentity(joining, "ca.lab.test.", "infra2", netip.MustParseAddr("10.0.40.3"))
	if err != nil {
		t.Fatal(err)
	}
	if Fingerprint(one.Root) != Fingerprint(two.Root) {
		t.Fatal("the joining node made a root of its own")
	}
	cert, err := two.Certificate()
	if err != nil {
		t.Fatal(err)
	}
	if name, err := VerifyNode(one.Root, cert.Certificate); err != nil || name != "infra2" {
		t.Errorf("the joining node's certificate: got %q, %v; want infra2", name, err)
	}
}

// TestIntermediateNamesItsSources: the intermediate is issued again with the root's
// CRL and certificate URLs when it names others, keeps its key, and is left alone
// once it names them.
func TestIntermediateNamesItsSources(t *testing.T) {
	dir := t.TempDir()
	root, inter, err := LoadOrCreate(dir, "ca.lab.test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	again, err := WithURLs(dir, root, inter, "https://ca.lab.test/root.crl", "https://ca.lab.test/root.crt")
	if err != nil {
		t.Fatal(err)
	}
	if again.Cert.CheckSignatureFrom(root.Cert) != nil || !again.Cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(inter.Cert.PublicKey) {
		t.Fatal("the intermediate issued again is not the root's, or has another key")
	}
	_, onDisk, err := LoadOrCreate(dir, "ca.lab.test", time.Now())
	if err != nil || !onDisk.Cert.Equal(again.Cert) {
		t.Fatalf("the intermediate on disk is not the one issued again: %v", err)
	}
	if same, _ := WithURLs(dir, root, again, "https://ca.lab.test/root.crl", "https://ca.lab.test/root.crt"); !same.Cert.Equal(again.Cert) {
		t.Error("an intermediate that names its sources was issued again")
	}
	crl, err := RootCRL(root, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if list, err := x509.ParseRevocationList(crl); err != nil || list.CheckSignatureFrom(root.Cert) != nil || len(list.RevokedCertificateEntries) != 0 {
		t.Errorf("the root's CRL: %v", err)
	}
}

// TestAWitnessHoldsNoKeyOfTheCA: a witness keeps the certificate a serving node signed
// for its own key, and the root's certificate, and no key of the CA's; a certificate
// with a third of its life left is renewed through Renew, in the background, while
// the old one is still used, and kept for the next start.
func TestAWitnessHoldsNoKeyOfTheCA(t *testing.T) {
	first, witness := t.TempDir(), t.TempDir()
	addr := netip.MustParseAddr("10.0.40.4")
	serving, err := NewNodeIdentity(first, "ca.lab.test.", "infra1", netip.MustParseAddr("10.0.40.2"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := keyutil.GenerateDefaultSigner()
	if err != nil {
		t.Fatal(err)
	}
	// A certificate of ten days, as one renewed long ago would be.
	root, err := load(Dir(first), "root")
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), NotBefore: time.Now().Add(-80 * 24 * time.Hour), NotAfter: time.Now().Add(10 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs: []*url.URL{{Scheme: nodeScheme, Opaque: "infra3"}}}
	old, err := x509.CreateCertificate(rand.Reader, tmpl, root.Cert, key.Public(), root.Key)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteWitnessFiles(witness, serving.Root.Raw, old, key); err != nil {
		t.Fatal(err)
	}
	for _, f := range KeyFiles {
		if _, err := os.Stat(filepath.Join(Dir(witness), f)); err == nil && strings.HasSuffix(f, ".key") {
			t.Errorf("the witness holds the CA's %s", f)
		}
	}
	if _, err := NewWitnessIdentity(witness, "infra9", addr); err == nil {
		t.Error("the witness's certificate passed for another node's")
	}
	w, err := NewWitnessIdentity(witness, "infra3", addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Sign("infra4", addr, key.Public()); err == nil {
		t.Error("a witness signed a node's certificate")
	}
	renewed := make(chan struct{})
	w.Renew = func(pub crypto.PublicKey) ([]byte, error) {
		defer close(renewed)
		return serving.Sign("infra3", addr, pub)
	}
	cert, err := w.Certificate()
	if err != nil || !cert.Leaf.Equal(mustParse(t, old)) {
		t.Fatalf("while renewing, the witness's certificate: %v, want the one it has", err)
	}
	<-renewed
	var now *tls.Certificate
	testenv.WaitFor(t, "the renewed certificate", func() bool {
		now, _ = w.Certificate()
		return !now.Leaf.Equal(mustParse(t, old))
	})
	if name, err := VerifyNode(serving.Root, now.Certificate); err != nil || name != "infra3" || time.Until(now.Leaf.NotAfter) < nodeLifetime/2 {
		t.Errorf("the renewed certificate: %q %v, until %s", name, err, now.Leaf.NotAfter)
	}
	again, err := NewWitnessIdentity(witness, "infra3", addr)
	if err != nil {
		t.Fatal(err)
	}
	if kept, _ := again.Certificate(); !kept.Leaf.Equal(now.Leaf) {
		t.Error("the renewed certificate was not kept for the next start")
	}
}

func mustParse(t *testing.T, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

package pki

import (
	"crypto"
	"crypto/x509"
	"net/netip"
	"testing"
	"time"
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

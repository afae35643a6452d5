package pki

import (
	"net/netip"
	"testing"
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

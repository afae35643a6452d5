package pki

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/infrad/infrad/pkg/site"
	"go.step.sm/crypto/keyutil"
)

// The nodes of a cluster know each other by certificates the site's root signs
// directly. Everything else the CA issues (ACME's certificates, the API's) is signed
// by the intermediate, so a certificate a LAN client got by ACME never passes for a
// node's.

// nodeScheme marks a node's certificate: a URI SAN infrad-node:<name>.
const nodeScheme = "infrad-node"

// nodeLifetime is how long a node's certificate lives; it is made anew, in memory,
// once a third of that is left.
const nodeLifetime = 90 * 24 * time.Hour

// KeyFiles are the CA's files under <data_dir>/ca that every node of a cluster holds
// alike: the joining node receives them. Those ending in .key are kept 0600.
var KeyFiles = []string{"root.crt", "root.key", "intermediate.crt", "intermediate.key"}

// Dir is the CA's directory in dataDir.
func Dir(dataDir string) string { return filepath.Join(dataDir, "ca") }

// WriteKeyFiles writes the CA's files a node received on joining into dataDir.
func WriteKeyFiles(dataDir string, files map[string][]byte) error {
	dir := Dir(dataDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for _, name := range KeyFiles {
		data, ok := files[name]
		if !ok {
			return fmt.Errorf("the CA's %s is missing", name)
		}
		mode := os.FileMode(0o644)
		if strings.HasSuffix(name, ".key") {
			mode = 0o600
		}
		tmp := filepath.Join(dir, "."+name)
		if err := os.WriteFile(tmp, data, mode); err != nil {
			return err
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	return nil
}

// ReadKeyFiles reads the CA's files for a joining node.
func ReadKeyFiles(dataDir string) (map[string][]byte, error) {
	files := map[string][]byte{}
	for _, name := range KeyFiles {
		data, err := os.ReadFile(filepath.Join(Dir(dataDir), name))
		if err != nil {
			return nil, err
		}
		files[name] = data
	}
	return files, nil
}

// Fingerprint is the SHA-256 of a certificate, in hex: what a join token pins.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return fmt.Sprintf("%x", sum)
}

// NodeIdentity is one node's certificate, made from the site's root (read, or made on
// the first node's first start, under dataDir) and renewed before it ends.
type NodeIdentity struct {
	Root *x509.Certificate
	root Pair
	node string
	addr netip.Addr

	mu   sync.Mutex
	cert *tls.Certificate
}

// NewNodeIdentity reads the site's CA under dataDir (making it when there is none)
// and makes node's certificate for its address.
func NewNodeIdentity(dataDir string, caName site.Name, node string, addr netip.Addr) (*NodeIdentity, error) {
	root, _, err := LoadOrCreate(Dir(dataDir), strings.TrimSuffix(string(caName), "."), time.Now())
	if err != nil {
		return nil, err
	}
	n := &NodeIdentity{Root: root.Cert, root: root, node: node, addr: addr}
	if _, err := n.Certificate(); err != nil {
		return nil, err
	}
	return n, nil
}

// Certificate is the node's certificate, with the root after it.
func (n *NodeIdentity) Certificate() (*tls.Certificate, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cert != nil && time.Until(n.cert.Leaf.NotAfter) > nodeLifetime/3 {
		return n.cert, nil
	}
	key, err := keyutil.GenerateDefaultSigner()
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: n.node},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(nodeLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     []string{n.node},
		IPAddresses:  []net.IP{n.addr.AsSlice()},
		URIs:         []*url.URL{{Scheme: nodeScheme, Opaque: n.node}},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, n.root.Cert, key.Public(), n.root.Key)
	if err != nil {
		return nil, fmt.Errorf("the node's certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	n.cert = &tls.Certificate{Certificate: [][]byte{der, n.root.Cert.Raw}, PrivateKey: key, Leaf: leaf}
	return n.cert, nil
}

// VerifyNode checks that rawCerts, as a TLS peer sent them, are a node's certificate
// of the site whose root is root, and returns the node's name.
func VerifyNode(root *x509.Certificate, rawCerts [][]byte) (string, error) {
	if len(rawCerts) == 0 {
		return "", errors.New("no certificate")
	}
	leaf, err := x509.ParseCertificate(rawCerts[0])
	if err != nil {
		return "", err
	}
	if leaf.IsCA {
		return "", errors.New("a CA's certificate is not a node's")
	}
	if err := leaf.CheckSignatureFrom(root); err != nil {
		return "", fmt.Errorf("not signed by the site's root: %w", err)
	}
	if now := time.Now(); now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		return "", fmt.Errorf("the certificate is valid from %s to %s", leaf.NotBefore, leaf.NotAfter)
	}
	for _, u := range leaf.URIs {
		if u.Scheme == nodeScheme && u.Opaque != "" {
			return u.Opaque, nil
		}
	}
	return "", errors.New("not a node's certificate")
}

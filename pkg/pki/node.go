package pki

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
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
	"go.step.sm/crypto/pemutil"
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
// the first node's first start, under dataDir) and renewed before it ends. A witness
// holds no root key: its certificate is signed by a serving node when it joins, kept
// under dataDir, and signed anew through Renew.
type NodeIdentity struct {
	Root *x509.Certificate
	root Pair // its Key is nil for a witness
	node string
	addr netip.Addr
	dir  string // the CA's directory, where a witness keeps its certificate

	mu   sync.Mutex
	cert *tls.Certificate
	// Renew asks a node that holds the root to sign a new certificate for this
	// witness's key pub (set before the identity is used; the current certificate,
	// still valid, authenticates the request). renewing says one is under way;
	// after one failed, the next waits until retry.
	Renew    func(pub crypto.PublicKey) ([]byte, error)
	renewing bool
	retry    time.Time
}

// The files a witness keeps in the CA's directory: the root's certificate, and its
// own certificate and key (0600). It has no root or intermediate key.
const (
	witnessCert = "node.crt"
	witnessKey  = "node.key"
)

// WriteWitnessFiles keeps what a witness received on joining: the root's certificate
// and its node certificate (DER), with key, its own.
func WriteWitnessFiles(dataDir string, root, cert []byte, key crypto.Signer) error {
	dir := Dir(dataDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "root.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root}), 0o644); err != nil {
		return err
	}
	return writeWitnessCert(dir, cert, key)
}

func writeWitnessCert(dir string, cert []byte, key crypto.Signer) error {
	if _, err := pemutil.Serialize(key, pemutil.ToFile(filepath.Join(dir, witnessKey), 0o600)); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, witnessCert), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert}), 0o644)
}

// NewWitnessIdentity reads what a witness keeps under dataDir (WriteWitnessFiles).
func NewWitnessIdentity(dataDir, node string, addr netip.Addr) (*NodeIdentity, error) {
	dir := Dir(dataDir)
	root, err := pemutil.ReadCertificate(filepath.Join(dir, "root.crt"))
	if err != nil {
		return nil, fmt.Errorf("the witness's root certificate: %w", err)
	}
	pair, err := load(dir, "node")
	if err != nil {
		return nil, fmt.Errorf("the witness's certificate: %w", err)
	}
	if name, err := VerifyNode(root, [][]byte{pair.Cert.Raw}); err != nil || name != node {
		return nil, fmt.Errorf("the witness's certificate in %s is not %s's of this site's root (%v)", dir, node, err)
	}
	n := &NodeIdentity{Root: root, root: Pair{Cert: root}, node: node, addr: addr, dir: dir}
	n.cert = &tls.Certificate{Certificate: [][]byte{pair.Cert.Raw, root.Raw}, PrivateKey: pair.Key, Leaf: pair.Cert}
	return n, nil
}

// Sign makes the certificate of node, at addr, for the key pub: a serving node signs
// a witness's when it joins and as it renews.
func (n *NodeIdentity) Sign(node string, addr netip.Addr, pub crypto.PublicKey) ([]byte, error) {
	if n.root.Key == nil {
		return nil, errors.New("a witness holds no root key: it signs no node's certificate")
	}
	return issueNode(n.root, node, addr, pub)
}

// issueNode makes a node's certificate, signed by root.
func issueNode(root Pair, node string, addr netip.Addr, pub crypto.PublicKey) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: node},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(nodeLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     []string{node},
		IPAddresses:  []net.IP{addr.AsSlice()},
		URIs:         []*url.URL{{Scheme: nodeScheme, Opaque: node}},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root.Cert, pub, root.Key)
	if err != nil {
		return nil, fmt.Errorf("the node's certificate: %w", err)
	}
	return der, nil
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

// Certificate is the node's certificate, with the root after it. A witness's is
// renewed in the background, through Renew, while the one it has is still valid.
func (n *NodeIdentity) Certificate() (*tls.Certificate, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cert != nil && time.Until(n.cert.Leaf.NotAfter) > nodeLifetime/3 {
		return n.cert, nil
	}
	if n.root.Key == nil {
		if !n.renewing && n.Renew != nil && time.Now().After(n.retry) {
			n.renewing = true
			go n.renewWitness()
		}
		return n.cert, nil
	}
	key, err := keyutil.GenerateDefaultSigner()
	if err != nil {
		return nil, err
	}
	der, err := issueNode(n.root, n.node, n.addr, key.Public())
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	n.cert = &tls.Certificate{Certificate: [][]byte{der, n.root.Cert.Raw}, PrivateKey: key, Leaf: leaf}
	return n.cert, nil
}

// renewWitness has a serving node sign a new certificate for a new key of this
// witness, and keeps it.
func (n *NodeIdentity) renewWitness() {
	err := func() error {
		key, err := keyutil.GenerateDefaultSigner()
		if err != nil {
			return err
		}
		der, err := n.Renew(key.Public())
		if err != nil {
			return err
		}
		if name, err := VerifyNode(n.Root, [][]byte{der}); err != nil || name != n.node {
			return fmt.Errorf("the renewed certificate is not this witness's (%v)", err)
		}
		leaf, err := x509.ParseCertificate(der)
		if err != nil {
			return err
		}
		if err := writeWitnessCert(n.dir, der, key); err != nil {
			return err
		}
		n.mu.Lock()
		n.cert = &tls.Certificate{Certificate: [][]byte{der, n.Root.Raw}, PrivateKey: key, Leaf: leaf}
		n.mu.Unlock()
		return nil
	}()
	n.mu.Lock()
	n.renewing = false
	if err != nil {
		n.retry = time.Now().Add(time.Minute) // (Renew says why)
	}
	n.mu.Unlock()
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

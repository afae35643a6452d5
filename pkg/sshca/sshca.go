// Package sshca is the site's SSH certificate authority: a host key and a user key
// kept as a key ring in the site's store (so every box of a cluster signs with the
// same keys, and a backup carries them), host certificates that name exactly what
// the site names their host, short-lived user certificates for the principals a
// token allows, and a KRL of what was revoked. Every certificate is recorded through
// the write path before it is handed out, which is where it is checked.
package sshca

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/infrad/infrad/pkg/ipam"
	"github.com/infrad/infrad/pkg/keyring"
)

// Options configure a CA.
type Options struct {
	IPAM *ipam.IPAM // non-nil: where certificates are recorded, and the keys kept
	// Life is how long host certificates live, and the longest a user certificate may.
	Life func() (host, user time.Duration) // non-nil
	// Synced says whether infrad's own time can be trusted, and if not, why: a
	// certificate's validity is a statement of time. nil: always.
	Synced func() (bool, string)
	Now    func() time.Time // nil: time.Now
	Logger *slog.Logger     // nil: slog.Default()
}

// ErrNotSynced is a signing refused while infrad's clock cannot be trusted.
var ErrNotSynced = errors.New("infrad signs no certificate while its clock is not synchronised")

// ringName is the key ring the CA's keys are kept in.
const ringName = "ssh-ca"

// keys is the ring: the two CA keys, PKCS #8. They are made once and never rolled: a
// new key means a new line in every known_hosts and sshd_config.
type keys struct {
	Host []byte `json:"host"`
	User []byte `json:"user"`
}

// backdate is how far before now a certificate starts: clocks of a site differ.
const backdate = 5 * time.Minute

// CA signs SSH certificates.
type CA struct {
	opts   Options
	keeper *keyring.Keeper[keys]

	mu         sync.Mutex
	host, user ssh.Signer // nil until the ring is read
}

// New returns a CA; its keys are read (or made) when first needed.
func New(opts Options) *CA {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Synced == nil {
		opts.Synced = func() (bool, string) { return true, "" }
	}
	c := &CA{opts: opts}
	c.keeper = &keyring.Keeper[keys]{Name: ringName, Store: opts.IPAM, Plan: planKeys, Now: opts.Now, Log: opts.Logger,
		Use: func(k keys) {
			host, err1 := signerOf(k.Host)
			user, err2 := signerOf(k.User)
			if err := errors.Join(err1, err2); err != nil {
				c.log().Error("the SSH CA's keys in the store are unreadable", "err", err)
				return
			}
			c.host, c.user = host, user
		}}
	return c
}

func (c *CA) log() *slog.Logger {
	if c.opts.Logger == nil {
		return slog.Default()
	}
	return c.opts.Logger
}

// planKeys makes the keys the ring lacks.
func planKeys(k keys, _ time.Time) (keys, bool, error) {
	changed := false
	for _, key := range []*[]byte{&k.Host, &k.User} {
		if *key != nil {
			continue
		}
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return k, false, err
		}
		if *key, err = x509.MarshalPKCS8PrivateKey(priv); err != nil {
			return k, false, err
		}
		changed = true
	}
	return k, changed, nil
}

func signerOf(der []byte) (ssh.Signer, error) {
	priv, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, err
	}
	return ssh.NewSignerFromKey(priv)
}

// signers are the CA's keys, read from the store (and made there, the first time).
func (c *CA) signers(ctx context.Context) (host, user ssh.Signer, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.host == nil {
		if err := c.keeper.Refresh(ctx); err != nil {
			return nil, nil, err
		}
		if c.host == nil {
			return nil, nil, errors.New("the SSH CA's keys in the store are unreadable")
		}
	}
	return c.host, c.user, nil
}

// Life is how long host certificates live, and the longest a user certificate may.
func (c *CA) Life() (host, user time.Duration) { return c.opts.Life() }

// PublicKeys are the CA's public keys, in authorized_keys form.
type PublicKeys struct {
	Host string `json:"host"`
	User string `json:"user"`
}

// Keys returns the CA's public keys.
func (c *CA) Keys(ctx context.Context) (PublicKeys, error) {
	host, user, err := c.signers(ctx)
	if err != nil {
		return PublicKeys{}, err
	}
	return PublicKeys{Host: authorized(host.PublicKey()), User: authorized(user.PublicKey())}, nil
}

func authorized(k ssh.PublicKey) string {
	b := ssh.MarshalAuthorizedKey(k)
	return string(b[:len(b)-1])
}

// SignHost signs pub as host's certificate, naming the host's principals as the site
// has them now, and records it. With enrolment (an enrolment token's hash) the
// enrolment is used up; renews (a serial) asks for the renewal of that certificate.
func (c *CA) SignHost(ctx context.Context, host string, pub ssh.PublicKey, enrolment string, renews uint64) (*ssh.Certificate, ipam.SSHCert, error) {
	principals, ok := c.opts.IPAM.Model().SSHHostPrincipals(host)
	if !ok {
		return nil, ipam.SSHCert{}, &ipam.Error{Kind: ipam.ErrNotFound, Msg: fmt.Sprintf("host %q does not exist", host)}
	}
	life, _ := c.opts.Life()
	rec := ipam.SSHCert{Kind: ipam.SSHHost, Host: host, KeyID: "host " + host, Principals: principals, Renews: renews}
	return c.sign(ctx, pub, ssh.HostCert, life, rec, enrolment)
}

// SignUser signs pub as a user certificate for principals, to live for life (0: the
// most the site allows), asked by the token named token, and records it.
func (c *CA) SignUser(ctx context.Context, token string, pub ssh.PublicKey, principals []string, life time.Duration) (*ssh.Certificate, ipam.SSHCert, error) {
	_, most := c.opts.Life()
	switch {
	case len(principals) == 0:
		return nil, ipam.SSHCert{}, &ipam.Error{Kind: ipam.ErrInvalid, Field: "principals", Msg: "a user certificate names at least one principal (the user it logs in as)"}
	case life < 0 || life > most:
		return nil, ipam.SSHCert{}, &ipam.Error{Kind: ipam.ErrInvalid, Field: "hours", Msg: fmt.Sprintf("a user certificate lives at most %s here (ssh.user_cert_hours)", most)}
	case life == 0:
		life = most
	}
	principals = slices.Sorted(slices.Values(principals))
	rec := ipam.SSHCert{Kind: ipam.SSHUser, Token: token, KeyID: "user " + token, Principals: slices.Compact(principals)}
	return c.sign(ctx, pub, ssh.UserCert, life, rec, "")
}

// userExtensions are what a user certificate permits: what ssh-keygen grants by default.
var userExtensions = map[string]string{
	"permit-X11-forwarding":   "",
	"permit-agent-forwarding": "",
	"permit-port-forwarding":  "",
	"permit-pty":              "",
	"permit-user-rc":          "",
}

// sign makes the certificate rec describes for pub, records it through the write
// path, and returns it once recorded.
func (c *CA) sign(ctx context.Context, pub ssh.PublicKey, kind uint32, life time.Duration, rec ipam.SSHCert, enrolment string) (*ssh.Certificate, ipam.SSHCert, error) {
	if ok, why := c.opts.Synced(); !ok {
		return nil, ipam.SSHCert{}, fmt.Errorf("%w: %s", ErrNotSynced, why)
	}
	if _, isCert := pub.(*ssh.Certificate); isCert {
		return nil, ipam.SSHCert{}, &ipam.Error{Kind: ipam.ErrInvalid, Field: "public_key", Msg: "give the public key, not a certificate"}
	}
	host, user, err := c.signers(ctx)
	if err != nil {
		return nil, ipam.SSHCert{}, err
	}
	signer := host
	if kind == ssh.UserCert {
		signer = user
	}
	now := c.opts.Now().UTC().Truncate(time.Second)
	var serial [8]byte
	rand.Read(serial[:])
	rec.Serial = binary.BigEndian.Uint64(serial[:]) >> 1 // positive as a signed number too: OpenSSH's tools print it so
	rec.Fingerprint = ssh.FingerprintSHA256(pub)
	rec.ValidAfter, rec.ValidBefore = now.Add(-backdate), now.Add(life)
	cert := &ssh.Certificate{
		Key:             pub,
		Serial:          rec.Serial,
		CertType:        kind,
		KeyId:           rec.KeyID,
		ValidPrincipals: rec.Principals,
		ValidAfter:      uint64(rec.ValidAfter.Unix()),
		ValidBefore:     uint64(rec.ValidBefore.Unix()),
	}
	if kind == ssh.UserCert {
		cert.Permissions.Extensions = userExtensions
	}
	if err := cert.SignCert(rand.Reader, signer); err != nil {
		return nil, ipam.SSHCert{}, fmt.Errorf("sign the SSH certificate: %w", err)
	}
	if rec, err = c.opts.IPAM.IssueSSHCert(ctx, rec, enrolment); err != nil {
		return nil, ipam.SSHCert{}, err
	}
	return cert, rec, nil
}

// renewProof is what a host signs with its key to renew its certificate: the
// certificate's serial and the time, so that a proof is good for a few minutes only.
func renewProof(serial uint64, at time.Time) []byte {
	return fmt.Appendf(nil, "infrad-ssh-renew %d %d", serial, at.Unix())
}

// RenewProof is what RenewHost wants signed by the certificate's key at at.
func RenewProof(serial uint64, at time.Time) []byte { return renewProof(serial, at) }

// proofSlack is how far a renewal's time may be from the CA's.
const proofSlack = 5 * time.Minute

// RenewHost renews a host certificate this CA issued, for the machine that proves it
// holds its key (sig over RenewProof at at): a new certificate for the same key and
// host, under the names the site gives the host now. A host renamed, readdressed or
// deleted since is refused: its machine enrols again.
func (c *CA) RenewHost(ctx context.Context, cert *ssh.Certificate, at time.Time, sig *ssh.Signature) (*ssh.Certificate, ipam.SSHCert, error) {
	bad := func(format string, args ...any) error {
		return &ipam.Error{Kind: ipam.ErrInvalid, Field: "certificate", Msg: fmt.Sprintf(format, args...)}
	}
	host, _, err := c.signers(ctx)
	if err != nil {
		return nil, ipam.SSHCert{}, err
	}
	if cert.CertType != ssh.HostCert || len(cert.ValidPrincipals) == 0 || cert.SignatureKey == nil ||
		ssh.FingerprintSHA256(cert.SignatureKey) != ssh.FingerprintSHA256(host.PublicKey()) {
		return nil, ipam.SSHCert{}, bad("not a host certificate of this CA")
	}
	// The CA's signature of it: a forged certificate names a serial it did not issue.
	checker := ssh.CertChecker{IsHostAuthority: func(ssh.PublicKey, string) bool { return true }, Clock: c.opts.Now}
	if err := checker.CheckCert(cert.ValidPrincipals[0], cert); err != nil {
		return nil, ipam.SSHCert{}, bad("%v", err)
	}
	if d := c.opts.Now().Sub(at); d > proofSlack || d < -proofSlack {
		return nil, ipam.SSHCert{}, bad("the renewal was signed at %s, more than %s from this CA's time", at.UTC().Format(time.RFC3339), proofSlack)
	}
	if sig == nil || cert.Key.Verify(renewProof(cert.Serial, at), sig) != nil {
		return nil, ipam.SSHCert{}, bad("the renewal is not signed by the certificate's key")
	}
	rec, found, err := c.opts.IPAM.SSHCert(cert.Serial)
	if err != nil {
		return nil, ipam.SSHCert{}, err
	}
	if !found || rec.Kind != ipam.SSHHost {
		return nil, ipam.SSHCert{}, bad("this CA recorded no host certificate %d", cert.Serial)
	}
	return c.SignHost(ctx, rec.Host, cert.Key, "", cert.Serial)
}

// Revoke revokes the certificate with serial: the KRL lists it from then on.
func (c *CA) Revoke(ctx context.Context, serial uint64) (ipam.SSHCert, error) {
	return c.opts.IPAM.RevokeSSHCert(ctx, serial)
}

// KRL is the revocation list, in OpenSSH's format (ssh-keygen -k): the revoked
// serials of each CA key. Every box makes the same bytes from the same store.
func (c *CA) KRL(ctx context.Context) ([]byte, error) {
	host, user, err := c.signers(ctx)
	if err != nil {
		return nil, err
	}
	certs, err := c.opts.IPAM.SSHCerts()
	if err != nil {
		return nil, err
	}
	var k krl
	for _, cert := range certs {
		if cert.Revoked.IsZero() {
			continue
		}
		if cert.Revoked.After(k.made) {
			k.made = cert.Revoked
		}
		if cert.Kind == ipam.SSHHost {
			k.host = append(k.host, cert.Serial)
		} else {
			k.user = append(k.user, cert.Serial)
		}
	}
	return k.marshal(host.PublicKey(), user.PublicKey()), nil
}

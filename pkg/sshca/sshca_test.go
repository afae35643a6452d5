package sshca

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/infrad/infrad/internal/sitetest"
	"github.com/infrad/infrad/internal/testenv"
	"github.com/infrad/infrad/pkg/ipam"
	"github.com/infrad/infrad/pkg/site"
	"github.com/infrad/infrad/pkg/store"
)

const testSite = `domain: k8s.example.com
subnets:
  - {name: vm, cidr: 10.0.40.0/24}
hosts:
  - {name: cp01, ip: 10.0.40.10, ssh: {principals: [cp01-bmc]}}
`

func newCA(t *testing.T) (*CA, *ipam.IPAM) {
	t.Helper()
	m, _ := sitetest.IPAM(t, []byte(testSite))
	return New(Options{IPAM: m, Life: func() (time.Duration, time.Duration) { return 30 * 24 * time.Hour, 8 * time.Hour }}), m
}

func newKey(t *testing.T) (ssh.PublicKey, ssh.Signer) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s.PublicKey(), s
}

func TestHostCertificateNamesItsHost(t *testing.T) {
	ca, _ := newCA(t)
	ctx := context.Background()
	pub, _ := newKey(t)
	cert, rec, err := ca.SignHost(ctx, "cp01", pub, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.40.10", "cp01", "cp01-bmc", "cp01.k8s.example.com"}
	if !slices.Equal(cert.ValidPrincipals, want) || !slices.Equal(rec.Principals, want) {
		t.Errorf("got principals %v (recorded %v), want %v", cert.ValidPrincipals, rec.Principals, want)
	}
	keys, err := ca.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	hostCA, _, _, _, _ := ssh.ParseAuthorizedKey([]byte(keys.Host))
	checker := ssh.CertChecker{IsHostAuthority: func(k ssh.PublicKey, _ string) bool {
		return string(k.Marshal()) == string(hostCA.Marshal())
	}}
	for _, name := range want {
		if err := checker.CheckCert(name, cert); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := checker.CheckCert("cp02", cert); err == nil {
		t.Error("the certificate is good for cp02 too")
	}
	if _, _, err := ca.SignHost(ctx, "cp09", pub, "", 0); !errors.Is(err, ipam.ErrNotFound) {
		t.Errorf("a host that does not exist: got %v, want not found", err)
	}
}

// TestEnrolmentIsUsedOnce races two machines with one enrolment token, many rounds:
// exactly one gets a certificate.
func TestEnrolmentIsUsedOnce(t *testing.T) {
	ca, m := newCA(t)
	ctx := context.Background()
	for round := range 20 {
		hash := strings.Repeat(string("0123456789abcdef"[round%16]), 64)
		if _, err := m.EnrolSSHHost(ctx, "cp01", hash, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		won := 0
		for range 2 {
			wg.Go(func() {
				pub, _ := newKey(t)
				_, _, err := ca.SignHost(ctx, "cp01", pub, hash, 0)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					won++
				case !errors.Is(err, ipam.ErrConflict):
					t.Errorf("round %d: got %v, want a conflict", round, err)
				}
			})
		}
		wg.Wait()
		if won != 1 {
			t.Fatalf("round %d: %d machines got a certificate with one enrolment, want 1", round, won)
		}
	}
}

// TestRenamedHostIsNotRenewed: a certificate is renewed under the host's names as they
// are; once the host has other names it is refused, and listed as stale.
func TestRenamedHostIsNotRenewed(t *testing.T) {
	ca, m := newCA(t)
	ctx := context.Background()
	if _, err := m.CreateHost(ctx, site.HostSpec{Name: "w01", IP: "10.0.40.21"}); err != nil {
		t.Fatal(err)
	}
	pub, key := newKey(t)
	cert, _, err := ca.SignHost(ctx, "w01", pub, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	renew := func(c *ssh.Certificate, signer ssh.Signer) (*ssh.Certificate, error) {
		at := time.Now()
		sig, err := signer.Sign(rand.Reader, RenewProof(c.Serial, at))
		if err != nil {
			t.Fatal(err)
		}
		next, _, err := ca.RenewHost(ctx, c, at, sig)
		return next, err
	}
	next, err := renew(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	if next.Serial == cert.Serial || !slices.Equal(next.ValidPrincipals, cert.ValidPrincipals) {
		t.Errorf("renewed: serial %d principals %v, from %d %v", next.Serial, next.ValidPrincipals, cert.Serial, cert.ValidPrincipals)
	}
	_, other := newKey(t)
	if _, err := renew(next, other); err == nil {
		t.Error("a renewal signed by another key was granted")
	}
	if _, err := m.UpdateHost(ctx, "w01", site.HostSpec{Name: "w02", IP: "10.0.40.21"}); err != nil {
		t.Fatal(err)
	}
	if _, err := renew(next, key); !errors.Is(err, ipam.ErrNotFound) && !errors.Is(err, ipam.ErrConflict) {
		t.Errorf("renewal after a rename: got %v, want refused", err)
	}
	certs, err := m.SSHCerts()
	if err != nil {
		t.Fatal(err)
	}
	stale := 0
	for _, c := range certs {
		if c.Stale != "" {
			stale++
		}
	}
	if stale != 2 {
		t.Errorf("got %d stale certificates, want 2 (the first and its renewal):\n%+v", stale, certs)
	}
}

func TestUserPrincipalsAreTheTokens(t *testing.T) {
	ca, m := newCA(t)
	ctx := context.Background()
	if _, err := m.CreateToken(ctx, ipam.Token{Name: "alice", Hash: strings.Repeat("a", 64), Scope: ipam.ScopeRead, SSHPrincipals: []string{"alice", "ops"}}); err != nil {
		t.Fatal(err)
	}
	pub, _ := newKey(t)
	cert, _, err := ca.SignUser(ctx, "alice", pub, []string{"ops", "alice"}, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if cert.CertType != ssh.UserCert || !slices.Equal(cert.ValidPrincipals, []string{"alice", "ops"}) {
		t.Errorf("got type %d principals %v", cert.CertType, cert.ValidPrincipals)
	}
	if life := time.Duration(cert.ValidBefore-cert.ValidAfter) * time.Second; life != 2*time.Hour+backdate {
		t.Errorf("got a life of %s", life)
	}
	for _, tc := range []struct {
		name       string
		principals []string
		life       time.Duration
	}{
		{"a principal the token lacks", []string{"root"}, time.Hour},
		{"none", nil, time.Hour},
		{"longer than the site allows", []string{"alice"}, 9 * time.Hour},
	} {
		if _, _, err := ca.SignUser(ctx, "alice", pub, tc.principals, tc.life); !errors.Is(err, ipam.ErrInvalid) {
			t.Errorf("%s: got %v, want invalid", tc.name, err)
		}
	}
	if _, _, err := ca.SignUser(ctx, "bob", pub, []string{"bob"}, time.Hour); !errors.Is(err, ipam.ErrNotFound) {
		t.Errorf("a token that does not exist: got %v, want not found", err)
	}
}

func TestNoSigningByAnUntrustedClock(t *testing.T) {
	m, _ := sitetest.IPAM(t, []byte(testSite))
	ca := New(Options{IPAM: m, Life: func() (time.Duration, time.Duration) { return time.Hour, time.Hour },
		Synced: func() (bool, string) { return false, "leap 3" }})
	pub, _ := newKey(t)
	if _, _, err := ca.SignHost(context.Background(), "cp01", pub, "", 0); !errors.Is(err, ErrNotSynced) {
		t.Errorf("got %v, want ErrNotSynced", err)
	}
}

// TestKRLAsOpenSSHReadsIt revokes one of two certificates and asks ssh-keygen which
// the KRL revokes.
func TestKRLAsOpenSSHReadsIt(t *testing.T) {
	testenv.Need(t, "ssh-keygen")
	ca, _ := newCA(t)
	ctx := context.Background()
	dir := t.TempDir()
	var files []string
	var serials []uint64
	for i := range 3 {
		pub, _ := newKey(t)
		var cert *ssh.Certificate
		var err error
		if i < 2 {
			cert, _, err = ca.SignHost(ctx, "cp01", pub, "", 0)
		} else {
			cert, _, err = ca.SignUser(ctx, ipam.FileTokenName, pub, []string{"root"}, time.Hour)
		}
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(dir, string(rune('a'+i))+"-cert.pub")
		if err := os.WriteFile(f, ssh.MarshalAuthorizedKey(cert), 0o644); err != nil {
			t.Fatal(err)
		}
		files, serials = append(files, f), append(serials, cert.Serial)
	}
	revoked := func() []bool {
		raw, err := ca.KRL(ctx)
		if err != nil {
			t.Fatal(err)
		}
		krlFile := filepath.Join(dir, "krl")
		if err := os.WriteFile(krlFile, raw, 0o644); err != nil {
			t.Fatal(err)
		}
		var out []bool
		for _, f := range files {
			got, err := exec.Command("ssh-keygen", "-Q", "-f", krlFile, f).CombinedOutput()
			if err != nil && !strings.Contains(string(got), "REVOKED") {
				t.Fatalf("ssh-keygen -Q: %v\n%s", err, got)
			}
			out = append(out, strings.Contains(string(got), "REVOKED"))
		}
		return out
	}
	if got := revoked(); slices.Contains(got, true) {
		t.Errorf("before any revocation: got %v, want none revoked", got)
	}
	for _, i := range []int{1, 2} {
		if _, err := ca.Revoke(ctx, serials[i]); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := revoked(), []bool{false, true, true}; !slices.Equal(got, want) {
		t.Errorf("got revoked %v, want %v", got, want)
	}
}

// TestExpiredEnrolment: an enrolment past its time opens nothing, and the next one
// made clears it away.
func TestExpiredEnrolment(t *testing.T) {
	m, st, _ := sitetest.Open(t, []byte(testSite))
	ca := New(Options{IPAM: m, Life: func() (time.Duration, time.Duration) { return time.Hour, time.Hour }})
	ctx := context.Background()
	old := strings.Repeat("e", 64)
	if _, err := m.EnrolSSHHost(ctx, "cp01", old, time.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	pub, _ := newKey(t)
	if _, _, err := ca.SignHost(ctx, "cp01", pub, old, 0); !errors.Is(err, ipam.ErrConflict) {
		t.Errorf("an expired enrolment: got %v, want refused", err)
	}
	if _, err := m.EnrolSSHHost(ctx, "cp01", strings.Repeat("f", 64), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	rows := 0
	if err := st.View(func(tx *store.Tx) error {
		return store.TableEach(tx, "ssh_enrol", func(_, _ []byte) error { rows++; return nil })
	}); err != nil {
		t.Fatal(err)
	}
	if rows != 1 {
		t.Errorf("the enrolments kept: %d, want the new one alone", rows)
	}
}

package main

// The SSH CA end to end with Debian's OpenSSH: infrad and the operator's ssh in the
// server namespace, a machine (sshd) in the client namespace. The machine enrols with
// a one-time token, its host certificate names exactly what the site names it, the
// operator logs in with a user certificate and only infrad's @cert-authority line in
// known_hosts, and what is revoked, expired or not named is refused.

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/infrad/infrad/internal/sitetest"
	"github.com/infrad/infrad/internal/testenv"
	"github.com/infrad/infrad/pkg/ipam"
	"github.com/infrad/infrad/pkg/sshca"
)

const sshSite = `domain: lab.test
data_dir: %s
api: {listen: "10.77.0.1:8080"}
dns: {listen: ["127.0.0.1:1053"], advertise: 10.77.0.1}
ntp: {listen: ["127.0.0.1:1123"], local_stratum: 10, chronyd: none}
ca: {listen: "127.0.0.1:8443"}
ssh: {host_cert_days: 7, user_cert_hours: 2}
subnets:
  - {name: lab, cidr: 10.77.0.0/24}
hosts:
  - {name: infra, ip: 10.77.0.1}
`

// sshLab is the lab with infrad's API at https://10.77.0.1:8080.
type sshLab struct {
	*lab
	dir, data, api, root string
}

// infrad runs the infrad command line in ns against the lab's API.
func (l *sshLab) infrad(ns string, args ...string) (string, error) {
	args = append([]string{"netns", "exec", ns, binary, args[0], "--api", l.api, "--ca", l.root}, args[1:]...)
	out, err := exec.Command("ip", args...).CombinedOutput()
	return string(out), err
}

func (l *sshLab) mustInfrad(t *testing.T, ns string, args ...string) string {
	t.Helper()
	out, err := l.infrad(ns, args...)
	if err != nil {
		t.Fatalf("infrad %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// sshKey makes an ed25519 key pair at path (and path.pub).
func sshKey(t *testing.T, path string) {
	t.Helper()
	sh(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", filepath.Base(path), "-f", path)
}

// certInfo is what ssh-keygen -L says of a certificate file.
func certInfo(t *testing.T, path string) (serial string, principals []string) {
	t.Helper()
	out := sh(t, "ssh-keygen", "-L", "-f", path)
	lines := strings.Split(out, "\n")
	for i, line := range lines {
		line = strings.TrimSpace(line)
		if s, ok := strings.CutPrefix(line, "Serial: "); ok {
			serial = s
		}
		if line == "Principals:" {
			for _, p := range lines[i+1:] {
				if !strings.HasPrefix(p, "                ") {
					break
				}
				principals = append(principals, strings.TrimSpace(p))
			}
		}
	}
	return serial, principals
}

func TestSSHWithRealOpenSSH(t *testing.T) {
	testenv.NeedRoot(t, "ip", "ssh", "/usr/sbin/sshd", "ssh-keygen", "curl")
	dir := t.TempDir()
	l := &sshLab{lab: newLab(t), dir: dir, data: filepath.Join(dir, "data"), api: "https://10.77.0.1:8080"}
	l.root = filepath.Join(l.data, "ca", "root.crt")
	sh(t, "ip", "-n", l.cli, "addr", "add", "10.77.0.10/24", "dev", clientIf)
	writeFile(t, filepath.Join(dir, "site.yaml"), fmt.Sprintf(sshSite, l.data))
	startCmd(t, dir, "ip", "netns", "exec", l.srv, binary, "serve", "-c", filepath.Join(dir, "site.yaml"))
	testenv.WaitFor(t, "infrad ready in its namespace", func() bool {
		out, err := exec.Command("ip", "netns", "exec", l.srv, "curl", "-skf", l.api+"/readyz").Output()
		return err == nil && strings.Contains(string(out), `"ready": true`)
	})
	token := readToken(t, l.data)
	admin := func(args ...string) string {
		return l.mustInfrad(t, l.srv, append([]string{args[0], "--token", token}, args[1:]...)...)
	}
	// The machine's host, made through the API (so that it can be renamed), with a
	// principal beside its names.
	sh(t, "ip", "netns", "exec", l.srv, "curl", "-sf", "--cacert", l.root, "-H", "Authorization: Bearer "+token,
		"-d", `{"name": "cp01", "ip": "10.77.0.10", "ssh": {"principals": ["cp01-bmc"]}}`, l.api+"/api/v1/hosts")

	// The machine enrols: two of its processes race one token; one wins.
	m := filepath.Join(dir, "machine")
	os.MkdirAll(m, 0o755)
	hostKey := filepath.Join(m, "ssh_host_ed25519_key")
	sshKey(t, hostKey)
	enrol := strings.TrimSpace(admin("ssh", "enrol", "cp01"))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var outs []string
	won := 0
	for i := range 2 {
		wg.Go(func() {
			key := hostKey + ".pub"
			if i == 1 {
				key = filepath.Join(m, "other.pub")
				copyFile(t, hostKey+".pub", key)
			}
			out, err := l.infrad(l.cli, "ssh", "host", "cp01", "--key", key, "--token", enrol)
			mu.Lock()
			defer mu.Unlock()
			outs = append(outs, out)
			if err == nil {
				won++
			}
		})
	}
	wg.Wait()
	if won != 1 {
		t.Fatalf("%d machines got a host certificate with one enrolment token, want 1:\n%s", won, strings.Join(outs, "\n"))
	}
	hostCert := hostKey + "-cert.pub"
	if _, err := os.Stat(hostCert); err != nil {
		os.Rename(filepath.Join(m, "other-cert.pub"), hostCert) // the copy's process won
	}
	hostSerial, principals := certInfo(t, hostCert)
	if want := []string{"10.77.0.10", "cp01", "cp01-bmc", "cp01.lab.test"}; !slices.Equal(principals, want) {
		t.Errorf("the host certificate names %v, want exactly %v", principals, want)
	}

	// The trust: the export's lines, and nothing else, in known_hosts and sshd_config.
	export := admin("export", "ssh")
	var caLine, userCA string
	for i, line := range strings.Split(export, "\n") {
		if strings.HasPrefix(line, "@cert-authority ") {
			caLine = line
		}
		if strings.HasPrefix(line, "# /etc/ssh/infrad_user_ca.pub") {
			userCA = strings.Split(export, "\n")[i+1]
		}
	}
	if !strings.HasPrefix(caLine, "@cert-authority *.lab.test,10.77.0.* ssh-ed25519 ") || !strings.HasPrefix(userCA, "ssh-ed25519 ") {
		t.Fatalf("export ssh:\n%s", export)
	}
	knownHosts := filepath.Join(dir, "known_hosts")
	writeFile(t, knownHosts, caLine+"\n")
	// An expired user certificate, from the SSH CA's own code under an injected clock
	// (nothing here can wait hours): its CA is trusted beside infrad's.
	expiredKey, expiredCA := expiredUserCert(t, dir)
	writeFile(t, filepath.Join(m, "user_ca.pub"), userCA+"\n"+expiredCA+"\n")
	krl := filepath.Join(m, "revoked.krl")
	l.mustInfrad(t, l.cli, "ssh", "renew", "--key", hostKey, "--krl", krl) // not due: fetches the KRL only
	os.MkdirAll("/run/sshd", 0o755)                                        // sshd's privilege separation directory, as its unit makes it
	writeFile(t, filepath.Join(m, "sshd_config"), fmt.Sprintf(`ListenAddress 10.77.0.10
HostKey %[1]s/ssh_host_ed25519_key
HostCertificate %[1]s/ssh_host_ed25519_key-cert.pub
TrustedUserCAKeys %[1]s/user_ca.pub
RevokedKeys %[1]s/revoked.krl
AuthorizedKeysFile none
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile %[1]s/sshd.pid
`, m))
	sshd := startCmd(t, m, "ip", "netns", "exec", l.cli, "/usr/sbin/sshd", "-D", "-e", "-f", filepath.Join(m, "sshd_config"))
	testenv.WaitFor(t, "sshd listening", func() bool {
		return exec.Command("ip", "netns", "exec", l.cli, "sh", "-c", "ss -ltn | grep -q 10.77.0.10:22").Run() == nil
	})

	// The operator: a token that may log in as root, a key, a certificate.
	alice := strings.TrimSpace(admin("token", "create", "alice", "--scope", "read", "--ssh-principals", "root"))
	userKey := filepath.Join(dir, "id_ed25519")
	sshKey(t, userKey)
	l.mustInfrad(t, l.srv, "ssh", "login", "--key", userKey, "--token", alice)
	userSerial, userPrincipals := certInfo(t, userKey+"-cert.pub")
	if !slices.Equal(userPrincipals, []string{"root"}) {
		t.Errorf("the user certificate names %v, want [root]", userPrincipals)
	}
	if out, err := l.infrad(l.srv, "ssh", "login", "--key", userKey, "--token", alice, "--principals", "admin"); err == nil {
		t.Errorf("a user certificate for a principal the token lacks was signed:\n%s", out)
	}
	login := func(key, user, alias string, extra ...string) (string, error) {
		args := []string{"netns", "exec", l.srv, "ssh", "-F", "/dev/null", "-o", "UserKnownHostsFile=" + knownHosts,
			"-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
			"-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=10", "-i", key, "-o", "CertificateFile=" + key + "-cert.pub"}
		if alias != "" {
			args = append(args, "-o", "HostKeyAlias="+alias)
		}
		args = append(append(args, extra...), user+"@10.77.0.10", "echo", "in-as-$(id -un)")
		out, err := exec.Command("ip", args...).CombinedOutput()
		return string(out), err
	}
	for _, alias := range []string{"", "cp01.lab.test"} {
		if out, err := login(userKey, "root", alias); err != nil || !strings.Contains(out, "in-as-root") {
			t.Fatalf("log in (host key alias %q): %v\n%s\nsshd:\n%s", alias, err, out, sshd.output)
		}
	}
	refused := func(what string, out string, err error) {
		t.Helper()
		if err == nil || strings.Contains(out, "in-as-") {
			t.Errorf("%s: let in:\n%s", what, out)
		}
	}
	out, err := login(userKey, "root", "cp02.lab.test")
	refused("a host certificate that does not name the host asked for", out, err)
	out, err = login(userKey, "nobody", "")
	refused("a user certificate for another user", out, err)
	out, err = login(expiredKey, "root", "")
	refused("an expired user certificate", out, err)

	// Renewal by the machine, with no token: the same names, a new serial; sshd reads
	// it when reloaded.
	l.mustInfrad(t, l.cli, "ssh", "renew", "--key", hostKey, "--force")
	renewedSerial, renewed := certInfo(t, hostCert)
	if renewedSerial == hostSerial || !slices.Equal(renewed, principals) {
		t.Errorf("renewed: serial %s principals %v, from %s %v", renewedSerial, renewed, hostSerial, principals)
	}
	sshd.cmd.Process.Signal(syscall.SIGHUP)
	testenv.WaitFor(t, "sshd back after its reload", func() bool {
		out, err := login(userKey, "root", "")
		return err == nil && strings.Contains(out, "in-as-root")
	})

	// Revocation: the user certificate, then the host's; sshd and ssh read the KRL.
	admin("ssh", "revoke", userSerial)
	l.mustInfrad(t, l.cli, "ssh", "renew", "--key", hostKey, "--krl", krl)
	out, err = login(userKey, "root", "")
	refused("a revoked user certificate", out, err)
	admin("ssh", "revoke", renewedSerial)
	l.mustInfrad(t, l.srv, "ssh", "login", "--key", userKey, "--token", alice)
	if out, err := login(userKey, "root", ""); err != nil {
		t.Fatalf("log in with a new user certificate: %v\n%s", err, out)
	}
	clientKRL := filepath.Join(dir, "host.krl")
	copyFile(t, krl, clientKRL)
	sh(t, "sh", "-c", fmt.Sprintf("ip netns exec %s curl -sf --cacert %s -o %s %s/api/v1/ca/ssh/krl", l.srv, l.root, clientKRL, l.api))
	out, err = login(userKey, "root", "", "-o", "RevokedHostKeys="+clientKRL)
	refused("a revoked host certificate", out, err)

	// The host renamed: its machine's renewal is refused, and its certificates are
	// listed as stale, for revoking.
	l.mustInfrad(t, l.cli, "ssh", "host", "cp01", "--key", hostKey, "--token", strings.TrimSpace(admin("ssh", "enrol", "cp01")))
	sh(t, "ip", "netns", "exec", l.srv, "curl", "-sf", "--cacert", l.root, "-H", "Authorization: Bearer "+token, "-X", "PUT",
		"-d", `{"name": "cp09", "ip": "10.77.0.10"}`, l.api+"/api/v1/hosts/cp01")
	if out, err := l.infrad(l.cli, "ssh", "renew", "--key", hostKey, "--force"); err == nil {
		t.Errorf("a renamed host's certificate was renewed:\n%s", out)
	}
	var certs []ipam.SSHCert
	getJSONIn(t, l.srv, l.root, l.api+"/api/v1/ca/ssh/certificates", token, &certs)
	live, stale := 0, 0
	for _, c := range certs {
		if c.Kind == ipam.SSHHost && c.Revoked.IsZero() {
			live++
			if c.Stale != "" {
				stale++
			}
		}
	}
	if live != 2 || stale != live {
		t.Errorf("got %d unrevoked host certificates, %d of them stale; want 2 (the first, which its renewal did not revoke, and the last), both stale: %+v", live, stale, certs)
	}
}

// getJSONIn GETs url with token from namespace ns into v.
func getJSONIn(t *testing.T, ns, root, url, token string, v any) {
	t.Helper()
	out := sh(t, "ip", "netns", "exec", ns, "curl", "-sf", "--cacert", root, "-H", "Authorization: Bearer "+token, url)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("GET %s: %v\n%s", url, err, out)
	}
}

// expiredUserCert signs, with a CA of the SSH CA's code whose clock stands a day
// back, a one-hour certificate for root: expired now. It returns the key's path (its
// certificate beside it) and the CA's public key line.
func expiredUserCert(t *testing.T, dir string) (key, caLine string) {
	t.Helper()
	m, _ := sitetest.IPAM(t, []byte("domain: old.test\n"))
	ca := sshca.New(sshca.Options{IPAM: m, Now: func() time.Time { return time.Now().Add(-24 * time.Hour) },
		Life: func() (time.Duration, time.Duration) { return time.Hour, time.Hour }})
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(priv)
	cert, _, err := ca.SignUser(context.Background(), ipam.FileTokenName, signer.PublicKey(), []string{"root"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	key = filepath.Join(dir, "expired")
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, key, string(pem.EncodeToMemory(block)))
	os.Chmod(key, 0o600)
	writeFile(t, key+"-cert.pub", string(ssh.MarshalAuthorizedKey(cert)))
	keys, err := ca.Keys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return key, keys.User
}

package ntp

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/facebook/time/ntp/ntske"
	"github.com/facebook/time/ntp/protocol"
	"github.com/facebook/time/ntp/protocol/nts"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/infrad/infrad/internal/sitetest"
	"github.com/infrad/infrad/internal/testenv"
	"github.com/infrad/infrad/pkg/ca"
	"github.com/infrad/infrad/pkg/config"
	"github.com/infrad/infrad/pkg/ipam"
	"github.com/infrad/infrad/pkg/pki"
	"github.com/infrad/infrad/pkg/site"
)

// startNTS serves NTP with NTS on free loopback ports, with a certificate from a site
// CA made under a fresh data directory, whose root's path it returns.
func startNTS(t testing.TB) (s *Service, ntpPort, ntsPort int, root string) {
	t.Helper()
	m, _ := sitetest.IPAM(t, []byte("domain: lab.test\n"))
	return startNTSOn(t, m, t.TempDir())
}

// startNTSOn is startNTS keeping its cookie keys in m, its CA in dataDir: two
// services on one store are two boxes of a cluster.
func startNTSOn(t testing.TB, m *ipam.IPAM, dataDir string) (s *Service, ntpPort, ntsPort int, root string) {
	t.Helper()
	ntpPort, ntsPort = testenv.FreePort(t), testenv.FreePort(t)
	yaml := fmt.Sprintf("domain: lab.test\nntp:\n  listen: [\"127.0.0.1:%d\"]\n  chronyd: none\n  local_stratum: 10\n  rate_limit: 0\n  nts: true\n  nts_listen: [\"127.0.0.1:%d\"]\n", ntpPort, ntsPort)
	cfg, err := config.Parse("site.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	s = New(Options{Site: cfg, Registry: prometheus.NewRegistry(), Interval: 100 * time.Millisecond, Keys: m,
		NTSTLS: func(listen netip.Addr) (*tls.Config, error) {
			return ca.ServerTLS(dataDir, site.Name("ca.lab.test."), []string{"ntp.lab.test"}, listen)
		}})
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(context.Background()) })
	return s, ntpPort, ntsPort, filepath.Join(pki.Dir(dataDir), "root.crt")
}

// chronyd runs chronyd, leaving the clock alone (-x), with infrad as its one NTS
// server, trusting root, until until holds of chronyc's view of the source and
// chronyd's log (20 s at most); it returns them.
func chronyd(t *testing.T, ntpPort, ntsPort int, root string, until func(ntpdata, log string) bool) (ntpdata, log string) {
	t.Helper()
	dir := t.TempDir()
	sock := filepath.Join(dir, "chronyd.sock") // the privileged commands (ntpdata, authdata) come only through it
	os.Chmod(dir, 0o700)                       // chronyd opens no socket in a directory others may enter
	conf := fmt.Sprintf(`server 127.0.0.1 port %d iburst nts ntsport %d minpoll -4 maxpoll -4
ntstrustedcerts %s
nosystemcert
cmdport 0
bindcmdaddress %s
port 0
pidfile %s
driftfile %s
`, ntpPort, ntsPort, root, sock, filepath.Join(dir, "chronyd.pid"), filepath.Join(dir, "drift"))
	os.WriteFile(filepath.Join(dir, "chrony.conf"), []byte(conf), 0o644)
	out := testenv.Start(t, exec.Command("chronyd", "-x", "-d", "-u", "root", "-f", filepath.Join(dir, "chrony.conf")))
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		b, _ := exec.Command("chronyc", "-h", sock, "-n", "ntpdata", "127.0.0.1").CombinedOutput()
		if ntpdata = string(b); until(ntpdata, out.String()) {
			break
		}
	}
	b, _ := exec.Command("chronyc", "-h", sock, "-n", "-N", "authdata").CombinedOutput()
	return ntpdata + "\n" + string(b), out.String()
}

var (
	authenticatedYes = regexp.MustCompile(`Authenticated\s*:\s*Yes`)
	totalGood        = regexp.MustCompile(`Total good RX\s*:\s*([1-9][0-9]*)`)
)

// TestChronydGetsNTS: chronyd trusting the site's root establishes keys over NTS-KE
// and takes authenticated samples from NTS-protected NTP.
func TestChronydGetsNTS(t *testing.T) {
	testenv.Need(t, "chronyd", "chronyc")
	s, ntpPort, ntsPort, root := startNTS(t)
	data, log := chronyd(t, ntpPort, ntsPort, root, func(d, _ string) bool {
		m := totalGood.FindStringSubmatch(d)
		return authenticatedYes.MatchString(d) && m != nil && m[1] != "1"
	})
	if !authenticatedYes.MatchString(data) || !totalGood.MatchString(data) || !strings.Contains(data, "NTS") {
		t.Fatalf("chronyd took no authenticated sample:\n%s\nchronyd:\n%s", data, log)
	}
	if n := testutil.ToFloat64(s.metrics.ntsReplies); n < 2 {
		t.Errorf("%v NTS replies counted, want 2 or more", n)
	}
}

// TestChronydRefusesAWrongRoot: chronyd trusting another CA's root refuses infrad's
// certificate, and takes no sample.
func TestChronydRefusesAWrongRoot(t *testing.T) {
	testenv.Need(t, "chronyd", "chronyc")
	_, ntpPort, ntsPort, _ := startNTS(t)
	other := t.TempDir()
	if _, err := ca.ServerTLS(other, site.Name("ca.elsewhere.test."), []string{"ntp.elsewhere.test"}, netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	data, log := chronyd(t, ntpPort, ntsPort, filepath.Join(pki.Dir(other), "root.crt"), func(_, log string) bool { return strings.Contains(log, "TLS handshake") })
	if authenticatedYes.MatchString(data) || totalGood.MatchString(data) {
		t.Errorf("chronyd took samples from a server its root does not vouch for:\n%s", data)
	}
	if !strings.Contains(log, "certificate") {
		t.Errorf("chronyd's log does not say the certificate was refused:\n%s", log)
	}
}

// handshake runs NTS-KE (facebook/time's client) against the listener at ntsPort,
// trusting root.
func handshake(t *testing.T, ntsPort int, root string) *ntske.HandshakeResult {
	t.Helper()
	conf, err := ntske.ClientTLSConfig(root)
	if err != nil {
		t.Fatal(err)
	}
	conf.ServerName = "127.0.0.1"
	res, err := (&ntske.Client{SupportedAEAD: []uint16{uint16(protocol.AEADAES128GCMSIV)}}).Handshake(t.Context(), fmt.Sprintf("127.0.0.1:%d", ntsPort), conf)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// askNTS sends one NTS request spending cookie and returns the raw reply.
func askNTS(t *testing.T, ntpPort int, res *ntske.HandshakeResult, cookie, uid []byte) []byte {
	t.Helper()
	req, err := nts.BuildNTSRequest(protocol.Packet{Settings: 0x23}, nts.RequestParams{
		AEAD: protocol.AEADAlgorithm(res.AEAD), C2S: res.C2S, Cookie: cookie, UniqueID: uid, Placeholders: 1})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", ntpPort))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	conn.Write(req)
	buf := make([]byte, 2048)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no NTS reply: %v", err)
	}
	return buf[:n]
}

// TestCookiesOpenOnEveryBox: a cookie from one box's NTS-KE is good at another box of
// the same site (they share the cookie keys through the store), which replies with
// fresh cookies; a box of another site answers it with an NTS NAK.
func TestCookiesOpenOnEveryBox(t *testing.T) {
	m, _ := sitetest.IPAM(t, []byte("domain: lab.test\n"))
	dataDir := t.TempDir()
	_, _, ntsA, root := startNTSOn(t, m, dataDir)
	b, ntpB, _, _ := startNTSOn(t, m, dataDir)
	res := handshake(t, ntsA, root)
	if len(res.Cookies) != 8 || res.NTPPort == 0 {
		t.Fatalf("NTS-KE gave %d cookies, NTP port %d: want 8, and the port NTP is served on", len(res.Cookies), res.NTPPort)
	}
	uid := bytes.Repeat([]byte{7}, nts.MinUniqueIdentifierLen)
	pkt, fresh, err := nts.VerifyNTSResponse(askNTS(t, ntpB, res, res.Cookies[0], uid), protocol.AEADAlgorithm(res.AEAD), res.S2C, uid)
	if err != nil {
		t.Fatalf("box B's reply to box A's cookie: %v", err)
	}
	if pkt.Stratum != 10 || len(fresh) != 2 {
		t.Errorf("got stratum %d and %d fresh cookies; want the local clock's 10, and 2 (one for the cookie spent, one placeholder)", pkt.Stratum, len(fresh))
	}
	// The fresh cookies are good too, on either box.
	if _, _, err := nts.VerifyNTSResponse(askNTS(t, ntpB, res, fresh[0], uid), protocol.AEADAlgorithm(res.AEAD), res.S2C, uid); err != nil {
		t.Errorf("a fresh cookie: %v", err)
	}
	if n := testutil.ToFloat64(b.metrics.ntsReplies); n != 2 {
		t.Errorf("box B counted %v NTS replies, want 2", n)
	}

	_, ntpOther, _, _ := startNTS(t) // another site: other cookie keys
	var nak protocol.Packet
	if err := nak.UnmarshalBinary(askNTS(t, ntpOther, res, res.Cookies[1], uid)); err != nil {
		t.Fatal(err)
	}
	if nak.Stratum != 0 || nak.ReferenceID != refIDOf("NTSN") || len(nak.ExtensionFields) != 1 || !bytes.Equal(nak.ExtensionFields[0].Body, uid) {
		t.Errorf("a cookie of another site: want an NTS NAK echoing the unique identifier, got stratum %d, ref %x, %d fields", nak.Stratum, nak.ReferenceID, len(nak.ExtensionFields))
	}
}

// TestCookieKeysRotate: a new cookie key every cookieRotate, sealing only from
// cookieLead after it is made; a cookie stays good for cookieKeep.
func TestCookieKeysRotate(t *testing.T) {
	start := time.Now().UTC()
	ring, changed, err := planCookieKeys(cookieKeys{}, start)
	if err != nil || !changed || len(ring.Keys) != 1 || sealer(ring.Keys, start) != ring.Keys[0].ID {
		t.Fatalf("the first ring: %+v, %v, %v", ring, changed, err)
	}
	at := start
	ks := newKeystore()
	ks.now = func() time.Time { return at }
	ks.use(ring)
	old, err := ks.SealCookie(protocol.AEADAES128GCMSIV, make([]byte, 16), make([]byte, 16))
	if err != nil {
		t.Fatal(err)
	}
	for step := range 4 * 24 {
		at = at.Add(time.Hour)
		next, changed, err := planCookieKeys(ring, at)
		if err != nil {
			t.Fatal(err)
		}
		if changed {
			ring = next
			ks.use(ring)
			newest := ring.Keys[len(ring.Keys)-1]
			if newest.Created.Equal(at) && sealer(ring.Keys, at) == newest.ID {
				t.Fatalf("step %d: a key seals as soon as it is made, before other boxes can read it", step)
			}
		}
		_, _, _, err = ks.OpenCookie(old)
		if good := at.Sub(start) < cookieKeep; good != (err == nil) {
			t.Fatalf("after %s the first cookie opens: %v (want %v)", at.Sub(start), err == nil, good)
		}
	}
	if n := len(ring.Keys); n > int(cookieKeep/cookieRotate)+1 {
		t.Errorf("the ring holds %d keys", n)
	}
}

// BenchmarkNTSAnswer is the cost of one NTS-protected reply (AES-SIV-CMAC-256, with
// a nonce, as chronyd sends it), from the packet in to the packet out.
func BenchmarkNTSAnswer(b *testing.B) {
	s, _, ntsPort, root := startNTS(b)
	conf, err := ntske.ClientTLSConfig(root)
	if err != nil {
		b.Fatal(err)
	}
	conf.ServerName = "127.0.0.1"
	res, err := (&ntske.Client{SupportedAEAD: []uint16{uint16(protocol.AEADAESSIVCMAC256)}}).Handshake(b.Context(), fmt.Sprintf("127.0.0.1:%d", ntsPort), conf)
	if err != nil {
		b.Fatal(err)
	}
	req := protocol.Packet{Settings: 0x23}
	req.ExtensionFields = []protocol.ExtensionField{nts.NewUniqueIdentifier(bytes.Repeat([]byte{7}, 32)), nts.NewCookie(res.Cookies[0])}
	ad, _ := req.AssociatedData(2)
	a, _ := newAEAD(protocol.AEADAESSIVCMAC256, res.C2S)
	auth, err := nts.SealAuthenticator(a, ad, nil)
	if err != nil {
		b.Fatal(err)
	}
	req.ExtensionFields = append(req.ExtensionFields, auth)
	raw, _ := req.Bytes()
	client := netip.MustParseAddrPort("127.0.0.1:9")
	b.ReportAllocs()
	for b.Loop() {
		if s.answer(raw, client, time.Now()) == nil {
			b.Fatal("no reply")
		}
	}
}

// TestReloadTurnsNTSOn: a site file reloaded with ntp.nts serves NTS-KE at once, and
// NTS-protected NTP on the same sockets.
func TestReloadTurnsNTSOn(t *testing.T) {
	m, _ := sitetest.IPAM(t, []byte("domain: lab.test\n"))
	dataDir := t.TempDir()
	ntpPort, ntsPort := testenv.FreePort(t), testenv.FreePort(t)
	siteWith := func(nts string) *config.Site {
		site, err := config.Parse("site.yaml", fmt.Appendf(nil, "domain: lab.test\nntp:\n  listen: [\"127.0.0.1:%d\"]\n  chronyd: none\n  local_stratum: 10\n  rate_limit: 0\n%s", ntpPort, nts))
		if err != nil {
			t.Fatal(err)
		}
		return site
	}
	s := New(Options{Site: siteWith(""), Registry: prometheus.NewRegistry(), Interval: 100 * time.Millisecond, Keys: m,
		NTSTLS: func(listen netip.Addr) (*tls.Config, error) {
			return ca.ServerTLS(dataDir, site.Name("ca.lab.test."), []string{"ntp.lab.test"}, listen)
		}})
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(context.Background()) })
	if err := s.Reload(siteWith(fmt.Sprintf("  nts: true\n  nts_listen: [\"127.0.0.1:%d\"]\n", ntsPort))); err != nil {
		t.Fatal(err)
	}
	res := handshake(t, ntsPort, filepath.Join(pki.Dir(dataDir), "root.crt"))
	uid := bytes.Repeat([]byte{3}, nts.MinUniqueIdentifierLen)
	if _, _, err := nts.VerifyNTSResponse(askNTS(t, ntpPort, res, res.Cookies[0], uid), protocol.AEADAlgorithm(res.AEAD), res.S2C, uid); err != nil {
		t.Errorf("NTS after the reload: %v", err)
	}
}

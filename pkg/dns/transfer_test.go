package dns

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/infrad/infrad/internal/testenv"
	"github.com/infrad/infrad/pkg/site"
)

// nsd runs NSD, Debian's authoritative server, as a secondary of the server at
// primary for zone, on 127.0.0.1:port. It lives until the test ends.
func nsd(t *testing.T, port int, zone, primary string) {
	t.Helper()
	dir := t.TempDir()
	host, pport, _ := strings.Cut(primary, ":")
	in := func(name string) string { return strconv.Quote(filepath.Join(dir, name)) }
	conf := fmt.Sprintf(`server:
	ip-address: 127.0.0.1@%d
	username: ""
	chroot: ""
	zonesdir: %s
	pidfile: %s
	xfrdfile: %s
	zonelistfile: %s
	database: ""
	verbosity: 1
	logfile: %s
remote-control:
	control-enable: no
zone:
	name: %s
	zonefile: %[7]s.zone
	request-xfr: %s@%s NOKEY
	allow-notify: %[8]s NOKEY
	provide-xfr: 127.0.0.1 NOKEY
`, port, strconv.Quote(dir), in("nsd.pid"), in("xfrd.state"), in("zone.list"), in("nsd.log"), zone, host, pport)
	path := filepath.Join(dir, "nsd.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("nsd", "-d", "-c", path)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "nsd.log"))
			t.Logf("nsd log:\n%s", log)
		}
	})
}

func TestSecondaryFollows(t *testing.T) {
	testenv.Need(t, "nsd", "dig")
	nsdPort := testenv.FreePort(t)
	s := start(t, fmt.Sprintf(`  secondaries: ["127.0.0.1:%d"]`, nsdPort))
	nsd(t, nsdPort, "k8s.example.com", s.addr)
	secondary := &server{port: nsdPort}
	answers := func(name string) []string {
		out, err := secondary.query(name, "+short")
		if err != nil {
			return nil // not up yet
		}
		return short(out)
	}
	testenv.WaitFor(t, "the secondary to transfer the zone", func() bool {
		return slices.Equal(answers("cp01.k8s.example.com"), []string{"10.0.40.10"})
	})
	if _, err := s.ipam.CreateHost(context.Background(), site.HostSpec{Name: "w03", IP: "10.0.40.23"}); err != nil {
		t.Fatal(err)
	}
	// Only a NOTIFY brings the new host this soon: the SOA refresh is minutes away.
	testenv.WaitFor(t, "the secondary to follow a change", func() bool {
		return slices.Equal(answers("w03.k8s.example.com"), []string{"10.0.40.23"})
	})
}

func TestTransferOnlyToSecondaries(t *testing.T) {
	testenv.Need(t, "kdig")
	t.Run("a secondary may transfer", func(t *testing.T) {
		s := start(t, `  secondaries: ["127.0.0.1"]`)
		out, err := exec.Command("kdig", "@127.0.0.1", "-p", fmt.Sprint(s.port), "k8s.example.com", "AXFR", "+nocomments").CombinedOutput()
		if err != nil {
			t.Fatalf("kdig AXFR: %v\n%s", err, out)
		}
		for _, want := range []string{"cp01.k8s.example.com.", "_etcd-server-ssl._tcp.k8s.example.com.", "*.apps.k8s.example.com."} {
			if !strings.Contains(string(out), want) {
				t.Errorf("AXFR lacks %s:\n%s", want, out)
			}
		}
		if n := strings.Count(string(out), "\tSOA\t"); n != 2 {
			t.Errorf("got %d SOA records, want 2 (first and last)", n)
		}
		serial := s.ipam.Model().Serial()
		ixfr, err := exec.Command("kdig", "@127.0.0.1", "-p", fmt.Sprint(s.port), "k8s.example.com", fmt.Sprintf("IXFR=%d", serial), "+nocomments").CombinedOutput()
		if err != nil || strings.Count(string(ixfr), "\tSOA\t") != 1 || strings.Contains(string(ixfr), "cp01") {
			t.Errorf("IXFR from a current secondary: got %v\n%s\nwant the SOA alone", err, ixfr)
		}
		rev, err := exec.Command("kdig", "@127.0.0.1", "-p", fmt.Sprint(s.port), "40.0.10.in-addr.arpa", "AXFR").CombinedOutput()
		if err != nil || !strings.Contains(string(rev), "cp01.k8s.example.com.") {
			t.Errorf("reverse AXFR: %v\n%s", err, rev)
		}
	})
	t.Run("anyone else is refused", func(t *testing.T) {
		for _, extra := range []string{"", `  secondaries: ["10.0.40.3"]`} {
			s := start(t, extra)
			out, _ := exec.Command("kdig", "@127.0.0.1", "-p", fmt.Sprint(s.port), "k8s.example.com", "AXFR").CombinedOutput()
			if !strings.Contains(string(out), "REFUSED") {
				t.Errorf("secondaries %q: got\n%s\nwant REFUSED", extra, out)
			}
		}
	})
}

// TestTransferByKey: a transfer signed with a key that may transfer is served from
// any address (the tests' 127.0.0.1 is no secondary); unsigned, or signed with a key
// that may only update, it is refused; an unsigned transfer from a transfer_from
// source is served.
func TestTransferByKey(t *testing.T) {
	testenv.Need(t, "dig")
	s := start(t, "")
	axfr := func(args ...string) string {
		return s.dig(t, append([]string{"k8s.example.com", "AXFR"}, args...)...)
	}
	out := axfr("-y", goodKey)
	if !strings.Contains(out, "cp01.k8s.example.com.") || !strings.Contains(out, "TSIG") {
		t.Errorf("a transfer signed with external-dns:\n%s", out)
	}
	if strings.Contains(out, "Transfer failed") || strings.Contains(out, "tsig verify failure") || strings.Contains(out, "could not be validated") {
		t.Errorf("the signed transfer failed:\n%s", out)
	}
	// dig asks with EDNS unless told not to; without it the messages are laid out
	// otherwise (no OPT before the TSIG), and both must verify.
	if out := axfr("-y", goodKey, "+noedns"); strings.Contains(out, "could not be validated") || !strings.Contains(out, "cp01.k8s.example.com.") {
		t.Errorf("a signed transfer without EDNS:\n%s", out)
	}
	testenv.Need(t, "kdig")
	for _, edns := range []string{"+edns", "+noedns"} { // Knot's client verifies every message's TSIG too
		if out := kdig(t, s.addr, "-y", goodKey, edns, "-t", "AXFR", "k8s.example.com"); strings.Contains(out, ";; ERROR") || strings.Contains(out, ";; WARNING") || !strings.Contains(out, "cp01.k8s.example.com.") {
			t.Errorf("kdig %s, a signed transfer:\n%s", edns, out)
		}
	}
	for _, args := range [][]string{nil, {"-y", "hmac-sha512:update-only:" + tsigSecret}} {
		if out := axfr(args...); !strings.Contains(out, "Transfer failed") || strings.Contains(out, "cp01.k8s.example.com.") {
			t.Errorf("dig %v: want the transfer refused, got\n%s", args, out)
		}
	}
	s = start(t, `  transfer_from: [127.0.0.0/8]`)
	if out := axfr(); !strings.Contains(out, "cp01.k8s.example.com.") {
		t.Errorf("an unsigned transfer from transfer_from:\n%s", out)
	}
}

// TestIXFR: an IXFR from a serial infrad still has answers with the differences (RFC
// 1995: the new SOA, the old SOA, what was deleted, the new SOA, what was added, the
// new SOA); from a serial it no longer has, with the whole zone; from the current
// serial, with the SOA alone; and over UDP with the SOA alone, so the client asks again
// over TCP.
func TestIXFR(t *testing.T) {
	testenv.Need(t, "dig", "nsupdate")
	s := start(t, `  transfer_from: [127.0.0.0/8]`)
	serial := func() string {
		f := strings.Fields(s.answers(t, "k8s.example.com", "SOA")[0])
		return f[2]
	}
	if out, err := s.nsupdate(t, goodKey, "update add x1.k8s.example.com 300 TXT \"one\""); err != nil {
		t.Fatalf("nsupdate: %v\n%s", err, out)
	}
	from := serial()
	if out, err := s.nsupdate(t, goodKey, "update delete x1.k8s.example.com TXT", "update add x2.k8s.example.com 300 A 10.0.40.77"); err != nil {
		t.Fatalf("nsupdate: %v\n%s", err, out)
	}
	now := serial()
	if now == from {
		t.Fatalf("the serial did not move: %s", now)
	}
	records := func(out string) []string {
		var rrs []string
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) >= 5 && !strings.HasPrefix(line, ";") {
				rr := f[0] + " " + f[3]
				if f[3] == "SOA" {
					rr += " " + f[6]
				} else {
					rr += " " + strings.Join(f[4:], " ")
				}
				rrs = append(rrs, rr)
			}
		}
		return rrs
	}
	soa := func(serial string) string { return "k8s.example.com. SOA " + serial }
	got := records(s.dig(t, "k8s.example.com", "IXFR="+from, "+tcp"))
	want := []string{soa(now), soa(from), `x1.k8s.example.com. TXT "one"`, soa(now), "x2.k8s.example.com. A 10.0.40.77", soa(now)}
	if !slices.Equal(got, want) {
		t.Errorf("IXFR=%s:\ngot  %q\nwant %q", from, got, want)
	}
	if got := records(s.dig(t, "k8s.example.com", "IXFR="+now, "+tcp")); !slices.Equal(got, []string{soa(now)}) {
		t.Errorf("IXFR at the current serial: %q, want the SOA alone", got)
	}
	if got := records(s.dig(t, "k8s.example.com", "IXFR=12345", "+tcp")); len(got) < 5 || got[0] != soa(now) || got[1] == soa("12345") || !slices.Contains(got, "cp01.k8s.example.com. A 10.0.40.10") {
		t.Errorf("IXFR from a serial infrad never had: %q, want the whole zone", got)
	}
	if got := records(s.dig(t, "k8s.example.com", "IXFR="+from, "+notcp")); !slices.Equal(got, []string{soa(now)}) {
		t.Errorf("IXFR over UDP: %q, want the SOA alone", got)
	}
}

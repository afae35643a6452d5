package ntp

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/facebook/time/ntp/protocol"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/infrad/infrad/internal/testenv"
	"github.com/infrad/infrad/pkg/config"
)

// start serves NTP on a free loopback port with the given ntp keys, assessing the
// source every 100 ms.
func start(t *testing.T, keys string) (*Service, string) {
	t.Helper()
	return startAt(t, "127.0.0.1", keys)
}

// startAt is start listening on host (an address).
func startAt(t *testing.T, host, keys string) (*Service, string) {
	t.Helper()
	port := testenv.FreePort(t)
	addr := net.JoinHostPort(host, fmt.Sprint(port))
	site, err := config.Parse("site.yaml", fmt.Appendf(nil, "domain: lab.test\nntp:\n  listen: [\"%s\"]\n%s", addr, keys))
	if err != nil {
		t.Fatal(err)
	}
	s := New(Options{Site: site, Registry: prometheus.NewRegistry(), Interval: 100 * time.Millisecond})
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(context.Background()) })
	return s, addr
}

// ask sends one RFC 5905 client request (version v) and returns the reply.
func ask(t *testing.T, addr string, v uint8) *protocol.Packet {
	t.Helper()
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	req := protocol.Packet{Settings: v<<3 | 3, Poll: 6}
	req.TxTimeSec, req.TxTimeFrac = protocol.Time(time.Now())
	b, _ := req.Bytes()
	conn.Write(b)
	buf := make([]byte, 1024)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no reply: %v", err)
	}
	resp, err := protocol.BytesToPacket(buf[:n])
	if err != nil {
		t.Fatal(err)
	}
	if resp.OrigTimeSec != req.TxTimeSec || resp.OrigTimeFrac != req.TxTimeFrac {
		t.Errorf("the reply's origin timestamp is not our transmit timestamp")
	}
	return resp
}

func leap(p *protocol.Packet) uint8 { return p.Settings >> 6 }

// stubUpstream is an NTP server on loopback whose clock is skew ahead of ours.
func stubUpstream(t *testing.T, stratum uint8, skew time.Duration) string {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 1024)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			req, err := protocol.BytesToPacket(buf[:n])
			if err != nil {
				continue
			}
			now := time.Now().Add(skew)
			resp := protocol.Packet{Settings: 4<<3 | 4, Stratum: stratum, ReferenceID: refIDOf("GPS"),
				OrigTimeSec: req.TxTimeSec, OrigTimeFrac: req.TxTimeFrac}
			resp.RxTimeSec, resp.RxTimeFrac = protocol.Time(now)
			resp.TxTimeSec, resp.TxTimeFrac = protocol.Time(now)
			b, _ := resp.Bytes()
			conn.WriteToUDPAddrPort(b, from)
		}
	}()
	return conn.LocalAddr().String()
}

// TestTheFourSources shows each source of time as a client receives it.
func TestTheFourSources(t *testing.T) {
	good := stubUpstream(t, 2, 0)
	skewed := stubUpstream(t, 1, 500*time.Millisecond)
	tests := []struct {
		name, keys    string
		source        string
		stratum, leap uint8
		refid, why    string
	}{
		{"nothing to trust", "  chronyd: none", SourceNone, 16, 3, "", "no source"},
		{"local clock", "  chronyd: none\n  local_stratum: 10", SourceLocal, 10, 0, "LOCL", ""},
		{"upstream", fmt.Sprintf("  chronyd: none\n  local_stratum: 10\n  upstream: [%q]", good), SourceUpstream, 3, 0, "127.0.0.1", ""},
		{"upstream too far off", fmt.Sprintf("  chronyd: none\n  upstream: [%q]", skewed), SourceUpstream, 2, 3, "127.0.0.1", "off"},
		{"an upstream that does not answer", "  chronyd: none\n  upstream: [\"127.0.0.1:9\"]", SourceNone, 16, 3, "", "no upstream answers"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, addr := start(t, tc.keys)
			st := s.Status()
			if st.Source != tc.source || st.Stratum != tc.stratum || st.Leap != tc.leap || st.RefID != tc.refid || !strings.Contains(st.Why, tc.why) {
				t.Errorf("got %+v, want source %s, stratum %d, leap %d, refid %q, why with %q", st, tc.source, tc.stratum, tc.leap, tc.refid, tc.why)
			}
			resp := ask(t, addr, 4)
			if resp.Stratum != tc.stratum || leap(resp) != tc.leap || refIDString(resp.ReferenceID, resp.Stratum) != tc.refid {
				t.Errorf("a client got stratum %d, leap %d, refid %q; want %d, %d, %q",
					resp.Stratum, leap(resp), refIDString(resp.ReferenceID, resp.Stratum), tc.stratum, tc.leap, tc.refid)
			}
		})
	}
}

func TestTransitions(t *testing.T) {
	good := stubUpstream(t, 2, 0)
	s, addr := start(t, "  chronyd: none\n  local_stratum: 10")
	if resp := ask(t, addr, 4); resp.Stratum != 10 {
		t.Fatalf("got stratum %d, want 10 (local)", resp.Stratum)
	}
	site, _ := config.Parse("site.yaml", fmt.Appendf(nil, "domain: lab.test\nntp:\n  listen: [%q]\n  chronyd: none\n  local_stratum: 10\n  upstream: [%q]\n", addr, good))
	if err := s.Reload(site); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the upstream to take over", func() bool { return ask(t, addr, 4).Stratum == 3 })
	site, _ = config.Parse("site.yaml", fmt.Appendf(nil, "domain: lab.test\nntp:\n  listen: [%q]\n  chronyd: none\n", addr))
	s.Reload(site)
	testenv.WaitFor(t, "leap 3, stratum 16", func() bool { r := ask(t, addr, 4); return leap(r) == 3 && r.Stratum == 16 })
}

func TestReplyFormat(t *testing.T) {
	_, addr := start(t, "  chronyd: none\n  local_stratum: 10")
	for _, v := range []uint8{3, 4} {
		before := time.Now()
		resp := ask(t, addr, v)
		if mode := resp.Settings & 7; mode != 4 {
			t.Errorf("got mode %d, want 4 (server)", mode)
		}
		if got := (resp.Settings >> 3) & 7; got != v {
			t.Errorf("got version %d, want %d echoed", got, v)
		}
		rx, tx := protocol.Unix(resp.RxTimeSec, resp.RxTimeFrac), protocol.Unix(resp.TxTimeSec, resp.TxTimeFrac)
		if rx.Before(before.Add(-time.Second)) || tx.Before(rx) {
			t.Errorf("got receive %s and transmit %s, want transmit after receive", rx, tx)
		}
		if resp.Poll != 6 {
			t.Errorf("got poll %d, want the request's 6", resp.Poll)
		}
	}
}

func TestRateLimitAndGarbage(t *testing.T) {
	s, addr := start(t, "  chronyd: none\n  local_stratum: 10\n  rate_limit: 2")
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, junk := range [][]byte{{}, {0x1b}, make([]byte, 47), append([]byte{0x1c}, make([]byte, 47)...), []byte("GET / HTTP/1.1\r\n\r\n")} {
		conn.Write(junk) // not a client request (too short, or mode 4): dropped
	}
	kod := 0
	for range 10 {
		if r := ask(t, addr, 4); r.Stratum == 0 && refIDString(r.ReferenceID, 0) == "RATE" {
			kod++
		}
	}
	if kod == 0 {
		t.Errorf("ten requests at once past a limit of 2 a second (burst 4): got no KoD RATE")
	}
	if kod > 7 {
		t.Errorf("got %d KoD for ten requests, want the burst of 4 answered", kod)
	}
	if s.Status().Stratum != 10 {
		t.Errorf("garbage changed the state: %+v", s.Status())
	}
}

// TestChronydAcceptsInfrad runs chronyd -Q, which measures a source without touching
// the clock, over IPv4 and IPv6.
func TestChronydAcceptsInfrad(t *testing.T) {
	for _, host := range []string{"127.0.0.1", "::1"} {
		t.Run(host, func(t *testing.T) { chronydAccepts(t, host) })
	}
}

func chronydAccepts(t *testing.T, at string) {
	testenv.Need(t, "chronyd")
	_, addr := startAt(t, at, "  chronyd: none\n  local_stratum: 10\n  rate_limit: 0")
	host, port, _ := net.SplitHostPort(addr)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "chronyd", "-Q", "-f", "/dev/null", "-t", "30",
		fmt.Sprintf("server %s port %s iburst maxsamples 4", host, port)).CombinedOutput()
	if err != nil {
		t.Fatalf("chronyd -Q: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`System clock wrong by (-?[0-9.]+) seconds`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("chronyd did not accept infrad as a source:\n%s", out)
	}
	if off, _ := strconv.ParseFloat(string(m[1]), 64); off > 0.01 || off < -0.01 {
		t.Errorf("chronyd measured %s s against infrad on the same clock, want under 10 ms", m[1])
	}
}

// TestColocatedChronyd serves from a chronyd on this machine (its clock left alone:
// -x) that holds a local reference at stratum 5.
func TestColocatedChronyd(t *testing.T) {
	testenv.Need(t, "chronyd")
	dir := t.TempDir()
	cmdport := testenv.FreePort(t)
	conf := fmt.Sprintf("cmdport %d\nbindcmdaddress 127.0.0.1\nbindcmdaddress %s\nport 0\nlocal stratum 5\npidfile %s\ndriftfile %s\n",
		cmdport, filepath.Join(dir, "chronyd.sock"), filepath.Join(dir, "chronyd.pid"), filepath.Join(dir, "drift"))
	os.WriteFile(filepath.Join(dir, "chrony.conf"), []byte(conf), 0o644)
	testenv.Start(t, exec.Command("chronyd", "-x", "-d", "-u", "root", "-f", filepath.Join(dir, "chrony.conf")))
	s, addr := start(t, fmt.Sprintf("  chronyd: \"127.0.0.1:%d\"\n  local_stratum: 10", cmdport))
	testenv.WaitFor(t, "infrad to follow chronyd", func() bool { return s.Status().Source == SourceChronyd })
	resp := ask(t, addr, 4)
	if resp.Stratum != 6 || leap(resp) != 0 {
		t.Errorf("got stratum %d, leap %d; want chronyd's 5 + 1, leap 0", resp.Stratum, leap(resp))
	}
}

// Package testenv is what infrad's tests share: the real clients they drive, root for
// network namespaces, free loopback ports, and waiting for a condition.
//
// A test whose client is missing is skipped, except under INFRAD_E2E=1 (`make test`),
// where every client must be there and its absence fails the test.
package testenv

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"
)

// Need skips t when one of tools is not installed, or fails it under INFRAD_E2E=1.
func Need(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing(t, "%s is not installed (make deps installs it)", tool)
		}
	}
}

// NeedRoot is Need for a test that makes network namespaces, which needs root too.
func NeedRoot(t testing.TB, tools ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		missing(t, "network namespaces need root")
	}
	Need(t, tools...)
}

func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("INFRAD_E2E") == "1" {
		t.Fatalf(format+"; INFRAD_E2E=1 needs it", args...)
	}
	t.Skipf(format+"; skipping", args...)
}

// WaitFor polls cond until it holds, failing t after 20 s. Tests never assert a
// duration: the deadline only ends a test that would otherwise hang.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// FreePort returns a port free for both UDP and TCP on 127.0.0.1. It comes from
// below the kernel's ephemeral range, so a test that lets a port go and binds it again
// (a restart) does not lose it to an outgoing socket in between: named's refresh
// queries, dig, any client takes its source port from that range.
func FreePort(t testing.TB) int {
	t.Helper()
	low := ephemeralLow()
	for range 100 {
		port := 10000 + rand.IntN(low-10000)
		pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		pc.Close()
		if err == nil {
			ln.Close()
			return port
		}
	}
	t.Fatal("no free port on 127.0.0.1")
	return 0
}

// ephemeralLow is the first port of the kernel's ephemeral range (32768 by default).
func ephemeralLow() int {
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if n, err := fmt.Sscan(string(b), &low); n != 1 || err != nil || low <= 12000 {
			low = 32768
		}
	}
	return low
}

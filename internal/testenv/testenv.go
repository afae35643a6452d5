// Package testenv is what infrad's tests share: the real clients they drive, root for
// network namespaces, free loopback ports, and waiting for a condition.
//
// A test whose client is missing is skipped, except under INFRAD_E2E=1 (`make test`),
// where every client must be there and its absence fails the test.
package testenv

import (
	"fmt"
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

// FreePort returns a port free for both UDP and TCP on 127.0.0.1.
func FreePort(t testing.TB) int {
	t.Helper()
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
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

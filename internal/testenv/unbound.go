package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Unbound runs Unbound as a validating resolver of zones, which it asks at upstream
// ("host@port"), trusting anchors; at, when not zero, is the time it checks
// signatures by (val-override-date). It returns the port Unbound answers on.
func Unbound(t testing.TB, upstream string, zones, anchors []string, at time.Time) int {
	t.Helper()
	Need(t, "unbound")
	dir := t.TempDir()
	port := FreePort(t)
	var conf strings.Builder
	fmt.Fprintf(&conf, "server:\n  interface: 127.0.0.1\n  port: %d\n  do-daemonize: no\n  chroot: \"\"\n  username: \"\"\n  directory: %q\n  pidfile: %q\n  use-syslog: no\n  logfile: \"\"\n  verbosity: 1\n  val-log-level: 2\n  do-not-query-localhost: no\n  do-ip6: no\n  access-control: 127.0.0.0/8 allow\n  module-config: \"validator iterator\"\n",
		port, dir, filepath.Join(dir, "unbound.pid"))
	if !at.IsZero() {
		fmt.Fprintf(&conf, "  val-override-date: %q\n", at.UTC().Format("20060102150405"))
	}
	for _, a := range anchors {
		fmt.Fprintf(&conf, "  trust-anchor: %q\n", strings.Join(strings.Fields(a), " "))
	}
	conf.WriteString("  local-zone: \"10.in-addr.arpa.\" nodefault\n") // else Unbound answers the RFC 1918 reverse zones itself
	for _, z := range zones {
		fmt.Fprintf(&conf, "stub-zone:\n  name: %q\n  stub-addr: %s\n", z, upstream)
	}
	conf.WriteString("remote-control:\n  control-enable: no\n")
	path := filepath.Join(dir, "unbound.conf")
	os.WriteFile(path, []byte(conf.String()), 0o644)
	Start(t, exec.Command("unbound", "-d", "-c", path))
	WaitFor(t, "unbound to answer", func() bool {
		c := &dns.Client{Timeout: 500 * time.Millisecond}
		_, _, err := c.Exchange(new(dns.Msg).SetQuestion(zones[0], dns.TypeSOA), fmt.Sprintf("127.0.0.1:%d", port))
		return err == nil
	})
	return port
}

// Resolve asks the resolver at port, with the DO bit, as a node's stub resolver does.
func Resolve(t testing.TB, port int, name string, qtype uint16) *dns.Msg {
	t.Helper()
	q := new(dns.Msg).SetQuestion(name, qtype)
	q.SetEdns0(1232, true)
	c := &dns.Client{Timeout: 5 * time.Second}
	r, _, err := c.Exchange(q, fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatalf("%s %s through unbound: %v", name, dns.TypeToString[qtype], err)
	}
	return r
}

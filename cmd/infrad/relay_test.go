package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/infrad/infrad/internal/testenv"
)

// relaySite serves the server's own segment and a far one behind a router.
const relaySite = `domain: relay.test
data_dir: %s
` + labServices + `dhcp: {interfaces: [s0], lease_time: 16s}
subnets:
  - {name: near, cidr: 10.77.0.0/24, gateway: 10.77.0.254}
  - name: far
    cidr: 10.78.0.0/24
    gateway: 10.78.0.1
    ranges:
      - {kind: dhcp, start: 10.78.0.100, end: 10.78.0.109}
`

// TestDHCPThroughARelay: dhclient on a far segment gets its lease through ISC's
// dhcrelay in a router namespace; then the relay stops, and at T1 the client renews
// by unicast through the router, with no relay to set giaddr (as behind a router's
// "ip helper-address", which forwards broadcasts only). infrad finds the subnet by the
// client's address and unicasts the ACK back through the router: the client renews,
// rather than falling back to rebinding.
func TestDHCPThroughARelay(t *testing.T) {
	testenv.NeedRoot(t, "ip", "dhclient", "dhcrelay", "curl")
	l, rtr := newRelayLab(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "site.yaml"), fmt.Appendf(nil, relaySite, filepath.Join(dir, "data")), 0o644)
	l.serveIn(t, dir)
	relay := startCmd(t, dir, "ip", "netns", "exec", rtr, "dhcrelay", "-4", "-d", "--no-pid", "-id", "r1", "-iu", "r0", "10.77.0.1")

	c := l.dhclient(t, filepath.Join(dir, "far"), "far01", "-d")
	testenv.WaitFor(t, "dhclient to bind through the relay", func() bool { return c.got("BOUND") != nil })
	bound := c.got("BOUND")
	if ip := bound["new_ip_address"]; !strings.HasPrefix(ip, "10.78.0.") || bound["new_routers"] != "10.78.0.1" {
		t.Fatalf("bound through the relay: %v", bound)
	}
	relay.cmd.Process.Signal(syscall.SIGTERM)
	<-relay.done

	testenv.WaitFor(t, "dhclient to renew by unicast through the router", func() bool {
		return strings.Contains(c.reasons(), "RENEW")
	})
	if r := c.reasons(); strings.Contains(r, "REBIND") || strings.Contains(r, "EXPIRE") {
		t.Errorf("the client fell back: %s", r)
	}
	if renewed := c.got("RENEW"); renewed["new_ip_address"] != bound["new_ip_address"] {
		t.Errorf("renewed %v, bound %v", renewed["new_ip_address"], bound["new_ip_address"])
	}
	c.stop()
}

// newRelayLab is the lab rewired so that the client namespace sits on a far segment
// (10.78.0.0/24) behind a router namespace (returned), which reaches the server's
// segment (10.77.0.0/24, the server's s0) and relays nothing until a test starts
// dhcrelay there.
func newRelayLab(t *testing.T) (*lab, string) {
	t.Helper()
	l := newLab(t)
	rtr := l.srv + "-r"
	sh(t, "ip", "netns", "add", rtr)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", rtr).Run() })
	for _, cmd := range [][]string{
		{"ip", "-n", l.srv, "link", "del", "s0"}, // the lab's veth to the client, and its bridge
		{"ip", "-n", l.srv, "link", "del", "br0"},
		{"ip", "-n", rtr, "link", "set", "lo", "up"},
		{"ip", "-n", l.srv, "link", "add", "s0", "type", "veth", "peer", "name", "r0", "netns", rtr},
		{"ip", "-n", l.srv, "addr", "add", "10.77.0.1/24", "dev", "s0"},
		{"ip", "-n", l.srv, "link", "set", "s0", "up"},
		{"ip", "-n", l.srv, "route", "add", "10.78.0.0/24", "via", "10.77.0.254"},
		{"ip", "-n", rtr, "addr", "add", "10.77.0.254/24", "dev", "r0"},
		{"ip", "-n", rtr, "link", "set", "r0", "up"},
		{"ip", "-n", rtr, "link", "add", "r1", "type", "veth", "peer", "name", clientIf, "netns", l.cli},
		{"ip", "-n", rtr, "addr", "add", "10.78.0.1/24", "dev", "r1"},
		{"ip", "-n", rtr, "link", "set", "r1", "up"},
		{"ip", "netns", "exec", rtr, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"},
		{"ip", "-n", l.cli, "link", "set", clientIf, "up"},
	} {
		sh(t, cmd...)
	}
	return l, rtr
}

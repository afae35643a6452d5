package main

// DHCPv6 end to end: ISC dhclient -6 in the client namespace gets the address
// reserved for its MAC on a dual-stack host, and infrad's DNS, domain and NTP;
// stateless (-S) it gets the options alone; the router advertisements say both (M
// and O); and the host's AAAA and PTR are answered to the client over IPv6.

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

const dhcp6Site = `domain: lab.test
data_dir: %s
api: {listen: "127.0.0.1:8080"}
dns: {listen: ["127.0.0.1:1053", "[::]:53"], advertise: 10.77.0.1}
ntp: {listen: ["127.0.0.1:1123", "[::]:123"], local_stratum: 10, chronyd: none}
ca: {listen: "127.0.0.1:8443"}
dhcp: {interfaces: [br0], lease_time: 1h}
subnets:
  - {name: lab, cidr: 10.77.0.0/24}
  - {name: lab6, cidr: "fd00:77::/64", ra: {}, dhcp6: stateful}
hosts:
  - {name: infra, ip: 10.77.0.1, ip6: "fd00:77::1"}
  - {name: cp01, ip: 10.77.0.10, ip6: "fd00:77::10", mac: "52:54:00:77:00:10"}
`

// dhclient6Script records what dhclient -6 is given, by reason, and puts the address
// on the interface.
const dhclient6Script = `#!/bin/sh
env | grep -E '^(reason|new_)' | sort > "$DIR/$reason.tmp" && cp "$DIR/$reason.tmp" "$DIR/last" && mv "$DIR/$reason.tmp" "$DIR/$reason"
case "$reason" in
BOUND6|RENEW6|REBIND6) [ -z "$new_ip6_address" ] || ip -6 addr replace "$new_ip6_address/$new_ip6_prefixlen" dev "$interface" nodad ;;
esac
`

func TestDHCPv6WithRealClients(t *testing.T) {
	testenv.NeedRoot(t, "ip", "dhclient", "rdisc6", "dig")
	l := newLab(t)
	l.ipv6(t)
	l.setMAC(t, "52:54:00:77:00:10")
	linkLocal(t, l)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "site.yaml"), fmt.Sprintf(dhcp6Site, filepath.Join(dir, "data")))
	l.serveIn(t, dir)

	var ra string
	testenv.WaitFor(t, "an advertisement with the M and O flags", func() bool {
		out, _ := exec.Command("ip", "netns", "exec", l.cli, "rdisc6", "-1", "-w", "2000", clientIf).CombinedOutput()
		ra = string(out)
		return strings.Contains(ra, "Stateful address conf.    :          Yes") && strings.Contains(ra, "Stateful other conf.      :          Yes")
	})

	run := func(name, reason string, extra ...string) map[string]string {
		return dhclient6(t, l, filepath.Join(dir, name), reason, extra...)
	}

	// Stateful: the address reserved for the client's MAC, and the options.
	got := run("stateful", "BOUND6")
	for k, want := range map[string]string{"new_ip6_address": "fd00:77::10", "new_dhcp6_name_servers": "fd00:77::1",
		"new_dhcp6_domain_search": "lab.test."} {
		if got[k] != want {
			t.Errorf("dhclient -6: %s is %q, want %q (%v)", k, got[k], want, got)
		}
	}
	// Option 56 (RFC 5908), which dhclient does not decode: one server address
	// suboption (1, 16 bytes) holding fd00:77::1.
	if ntp := got["new_dhcp6_unknown_56"]; ntp != "0:1:0:10:fd:0:0:77:0:0:0:0:0:0:0:0:0:0:0:1" {
		t.Errorf("dhclient -6: option 56 is %q, want infrad's NTP at fd00:77::1", ntp)
	}
	// The client asks infrad, at the address DHCPv6 named, for its own names.
	for q, want := range map[string]string{"cp01.lab.test AAAA": "fd00:77::10", "-x fd00:77::10": "cp01.lab.test."} {
		out, err := exec.Command("ip", append([]string{"netns", "exec", l.cli, "dig", "@fd00:77::1", "+short", "+time=2", "+tries=2"}, strings.Fields(q)...)...).Output()
		if got := strings.TrimSpace(string(out)); err != nil || got != want {
			t.Errorf("dig @fd00:77::1 %s from the client: %q (%v), want %s", q, got, err, want)
		}
	}

	// Stateless: the options alone (ISC dhclient runs its script as RENEW6 then).
	got = run("stateless", "last", "-S")
	if got["reason"] != "RENEW6" || got["new_dhcp6_name_servers"] != "fd00:77::1" || got["new_ip6_address"] != "" {
		t.Errorf("dhclient -6 -S (%s): %v, want infrad's DNS and no address", got["reason"], got)
	}
}

// linkLocal gives the client's interface its link-local address anew (setMAC flushed
// it), and waits until it may be used: dhclient -6 sends from it.
func linkLocal(t *testing.T, l *lab) {
	t.Helper()
	sh(t, "ip", "-n", l.cli, "link", "set", clientIf, "down")
	sh(t, "ip", "-n", l.cli, "link", "set", clientIf, "up")
	testenv.WaitFor(t, "the client's link-local address", func() bool {
		out, _ := exec.Command("ip", "-n", l.cli, "-6", "addr", "show", "dev", clientIf, "scope", "link").Output()
		return strings.Contains(string(out), "inet6 fe80::") && !strings.Contains(string(out), "tentative")
	})
}

// dhclient6 runs dhclient -6 with extra flags in l's client namespace until it
// records reason in d, ends it, and returns what it was given.
func dhclient6(t *testing.T, l *lab, d, reason string, extra ...string) map[string]string {
	t.Helper()
	os.MkdirAll(d, 0o755)
	script := filepath.Join(d, "script")
	os.WriteFile(script, []byte(strings.ReplaceAll(dhclient6Script, "$DIR", d)), 0o755)
	args := append([]string{"netns", "exec", l.cli, "dhclient", "-6", "-d", "-lf", filepath.Join(d, "leases"),
		"-pf", filepath.Join(d, "pid"), "-sf", script}, extra...)
	p := startCmd(t, d, "ip", append(args, clientIf)...)
	defer func() { p.cmd.Process.Signal(syscall.SIGTERM); <-p.done }()
	var raw []byte
	testenv.WaitFor(t, "dhclient -6 "+strings.Join(extra, " ")+" to record "+reason, func() bool {
		var err error
		raw, err = os.ReadFile(filepath.Join(d, reason))
		return err == nil
	})
	env := map[string]string{}
	for _, line := range strings.Split(string(raw), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = strings.Trim(v, "'")
		}
	}
	return env
}

const dhcp6RelaySite = `domain: lab.test
data_dir: %s
api: {listen: "127.0.0.1:8080"}
dns: {listen: ["127.0.0.1:1053", "[::]:53"], advertise: 10.77.0.1}
ntp: {listen: ["127.0.0.1:1123"], local_stratum: 10, chronyd: none}
ca: {listen: "127.0.0.1:8443"}
dhcp: {interfaces: [s0], lease_time: 1h}
subnets:
  - {name: lab, cidr: 10.77.0.0/24}
  - {name: far, cidr: 10.78.0.0/24}
  - {name: lab6, cidr: "fd00:77::/64"}
  - {name: far6, cidr: "fd00:78::/64", dhcp6: stateful}
hosts:
  - {name: infra, ip: 10.77.0.1, ip6: "fd00:77::1"}
  - {name: cp01, ip: 10.78.0.10, ip6: "fd00:78::10", mac: "52:54:00:77:00:10"}
`

// TestDHCPv6ThroughARelay: ISC dhcrelay -6 in a router namespace between infrad and
// the client; the client gets the address reserved for its MAC in the far subnet,
// which the relay's link address names, and infrad's DNS on infrad's own link.
func TestDHCPv6ThroughARelay(t *testing.T) {
	testenv.NeedRoot(t, "ip", "dhclient", "dhcrelay")
	l, rtr := newRelayLab(t)
	for _, cmd := range [][]string{
		{"ip", "-n", l.srv, "addr", "add", "fd00:77::1/64", "dev", "s0", "nodad"},
		{"ip", "-n", l.srv, "route", "add", "fd00:78::/64", "via", "fd00:77::254"},
		{"ip", "-n", rtr, "addr", "add", "fd00:77::254/64", "dev", "r0", "nodad"},
		{"ip", "-n", rtr, "addr", "add", "fd00:78::1/64", "dev", "r1", "nodad"},
		{"ip", "netns", "exec", rtr, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"},
	} {
		sh(t, cmd...)
	}
	l.setMAC(t, "52:54:00:77:00:10")
	linkLocal(t, l)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "site.yaml"), fmt.Sprintf(dhcp6RelaySite, filepath.Join(dir, "data")))
	l.serveIn(t, dir)
	startCmd(t, dir, "ip", "netns", "exec", rtr, "dhcrelay", "-6", "-d", "-pf", filepath.Join(dir, "dhcrelay.pid"),
		"-l", "r1", "-u", "fd00:77::1%r0")
	got := dhclient6(t, l, filepath.Join(dir, "relayed"), "BOUND6")
	if got["new_ip6_address"] != "fd00:78::10" || got["new_dhcp6_name_servers"] != "fd00:77::1" {
		t.Errorf("dhclient -6 through dhcrelay: %v, want fd00:78::10 and infrad's DNS at fd00:77::1", got)
	}
}

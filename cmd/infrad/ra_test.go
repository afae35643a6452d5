package main

// Router advertisements end to end: infrad on the server namespace's bridge with an
// IPv6 subnet that asks for them; rdisc6 (ndisc6) in the client namespace reads what
// it advertises, and the client's kernel configures an address from it (SLAAC) and
// resolves through the DNS server it names.

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/infrad/infrad/internal/testenv"
)

const raSite = `domain: lab.test
data_dir: %s
api: {listen: "127.0.0.1:8080"}
dns: {listen: ["127.0.0.1:1053", "[::]:53"], advertise: 10.77.0.1}
ntp: {listen: ["127.0.0.1:1123"], local_stratum: 10, chronyd: none}
ca: {listen: "127.0.0.1:8443"}
dhcp: {interfaces: [br0], lease_time: 1h}
subnets:
  - {name: lab, cidr: 10.77.0.0/24}
  - {name: lab6, cidr: "fd00:77::/64", ra: {router: %t}}
hosts:
  - {name: infra, ip: 10.77.0.1, ip6: "fd00:77::1"}
`

// ipv6 gives the server's bridge fd00:77::1/64, and has it take no advertisement, its
// own included, as a router does (forwarding does the same).
func (l *lab) ipv6(t *testing.T) {
	t.Helper()
	sh(t, "ip", "-n", l.srv, "addr", "add", "fd00:77::1/64", "dev", "br0", "nodad")
	sh(t, "ip", "netns", "exec", l.srv, "sysctl", "-qw", "net.ipv6.conf.br0.accept_ra=0")
}

func TestRouterAdvertisements(t *testing.T) {
	testenv.NeedRoot(t, "ip", "rdisc6", "dig", "curl")
	l := newLab(t)
	l.ipv6(t)
	dir := t.TempDir()
	site := filepath.Join(dir, "site.yaml")
	writeFile(t, site, fmt.Sprintf(raSite, filepath.Join(dir, "data"), false))
	p := l.serveIn(t, dir)

	rdisc := func() string {
		out, _ := exec.Command("ip", "netns", "exec", l.cli, "rdisc6", "-1", "-w", "2000", "-r", "3", clientIf).CombinedOutput()
		return string(out)
	}
	var ra string
	testenv.WaitFor(t, "an advertisement that rdisc6 reads", func() bool {
		ra = rdisc()
		return strings.Contains(ra, "fd00:77::/64")
	})
	field := func(ra, name string) string {
		for _, line := range strings.Split(ra, "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == name {
				return strings.Fields(v)[0]
			}
		}
		return ""
	}
	for name, want := range map[string]string{
		"Stateful address conf.": "No", "Stateful other conf.": "No", "Router lifetime": "0",
		"Prefix": "fd00:77::/64", "On-link": "Yes", "Autonomous address conf.": "Yes",
		"Recursive DNS server": "fd00:77::1", "DNS search list": "lab.test",
	} {
		if got := field(ra, name); got != want {
			t.Errorf("rdisc6: %s is %q, want %q:\n%s", name, got, want, ra)
		}
	}

	// The client's kernel takes an address from the prefix, and asks the DNS server
	// the advertisement names, over IPv6, for the dual-stack host's names.
	testenv.WaitFor(t, "a SLAAC address on the client", func() bool {
		out, _ := exec.Command("ip", "-n", l.cli, "-6", "addr", "show", "dev", clientIf, "scope", "global").Output()
		return strings.Contains(string(out), "inet6 fd00:77:") && strings.Contains(string(out), "dynamic")
	})
	for q, want := range map[string]string{"infra.lab.test AAAA": "fd00:77::1", "infra.lab.test A": "10.77.0.1",
		"-x fd00:77::1": "infra.lab.test."} {
		out, err := exec.Command("ip", append([]string{"netns", "exec", l.cli, "dig", "@fd00:77::1", "+short", "+time=2", "+tries=2"}, strings.Fields(q)...)...).Output()
		if got := strings.TrimSpace(string(out)); err != nil || got != want {
			t.Errorf("dig @fd00:77::1 %s from the client: %q (%v), want %s", q, got, err, want)
		}
	}
	if out, _ := exec.Command("ip", "-n", l.cli, "-6", "route", "show", "default").Output(); strings.TrimSpace(string(out)) != "" {
		t.Errorf("a default route from an advertisement with router lifetime 0: %s", out)
	}

	// infrad the link's router (ra: {router: true}), reloaded: the lifetime says so,
	// and the client routes through it.
	writeFile(t, site, fmt.Sprintf(raSite, filepath.Join(dir, "data"), true))
	p.cmd.Process.Signal(syscall.SIGHUP)
	testenv.WaitFor(t, "an advertisement with a router lifetime", func() bool {
		return field(rdisc(), "Router lifetime") == "1800"
	})
	testenv.WaitFor(t, "the client's default route through infrad", func() bool {
		out, _ := exec.Command("ip", "-n", l.cli, "-6", "route", "show", "default").Output()
		return strings.Contains(string(out), "via fe80::")
	})
}

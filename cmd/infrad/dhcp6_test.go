package main

// DHCPv6 end to end: ISC dhclient -6 in the client namespace gets the address
// reserved for its MAC on a dual-stack host, and infrad's DNS, domain and NTP;
// stateless (-S) it gets the options alone; the router advertisements say both (M
// and O); and the host's AAAA and PTR are answered to the client over IPv6.

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/infrad/infrad/internal/testenv"
)

// lab6Head is the DHCPv6 tests' site file up to DHCP: the lab's services, DNS and NTP
// on IPv6 too, and the data directory to fill in.
const lab6Head = `domain: lab.test
data_dir: %s
api: {listen: "127.0.0.1:8080"}
dns: {listen: ["127.0.0.1:1053", "[::]:53"], advertise: 10.77.0.1}
ntp: {listen: ["127.0.0.1:1123", "[::]:123"], local_stratum: 10, chronyd: none}
ca: {listen: "127.0.0.1:8443"}
`

const dhcp6Site = lab6Head + `dhcp: {interfaces: [br0], lease_time: 1h}
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

// dhclient6Args writes dhclient -6's script and a configuration that gives the
// client's name to d, and returns the arguments of ip that run it in l's client
// namespace with extra flags.
func (l *lab) dhclient6Args(t *testing.T, d, name string, extra ...string) []string {
	t.Helper()
	os.MkdirAll(d, 0o755)
	script := filepath.Join(d, "script")
	writeFile(t, script, strings.ReplaceAll(dhclient6Script, "$DIR", d))
	os.Chmod(script, 0o755)
	conf := filepath.Join(d, "conf")
	writeFile(t, conf, fmt.Sprintf("send fqdn.fqdn %q;\n", name))
	writeFile(t, filepath.Join(d, "leases"), "")
	args := append([]string{"netns", "exec", l.cli, "dhclient", "-6", "-cf", conf, "-lf", filepath.Join(d, "leases"),
		"-pf", filepath.Join(d, "pid"), "-sf", script}, extra...)
	return append(args, clientIf)
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

const dhcp6RelaySite = lab6Head + `dhcp: {interfaces: [s0], lease_time: 1h}
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

const dhcp6PoolSite = lab6Head + `dhcp: {interfaces: [br0], lease_time: 10s}
subnets:
  - {name: lab, cidr: 10.77.0.0/24}
  - name: lab6
    cidr: "fd00:77::/64"
    ra: {}
    dhcp6: stateful
    ranges: [{kind: dhcp, start: "fd00:77::100", end: "fd00:77::1ff"}]
hosts:
  - {name: infra, ip: 10.77.0.1, ip6: "fd00:77::1"}
`

// dhclient6Binding is dhclient6Script that, once bound, asks infrad's DNS for the
// client's AAAA and PTR before anything else happens, and records the answers.
const dhclient6Binding = dhclient6Script + `[ "$reason" = BOUND6 ] && {
	dig @fd00:77::1 +short +time=1 +tries=3 AAAA $NAME.lab.test > "$DIR/aaaa" 2>&1
	dig @fd00:77::1 +short +time=1 +tries=3 -x "$new_ip6_address" > "$DIR/ptr" 2>&1
	touch "$DIR/asked"
}
exit 0
`

// TestDHCPv6PoolWithRealClients: clients without a reservation get leases from the
// subnet's DHCPv6 range, each with its name: ISC dhclient -6, WIDE dhcp6c and dhcpcd.
// Each is bound to an address of the range, with infrad's DNS; a client that gave its
// name (dhclient, dhcpcd) finds its AAAA and PTR answered the moment it is bound;
// each renews (the lease's expiry moves on) and releases (the lease and its names
// are gone).
func TestDHCPv6PoolWithRealClients(t *testing.T) {
	testenv.NeedRoot(t, "ip", "dhclient", "dhcp6c", "dhcpcd", "unshare", "dig", "curl")
	l := newLab(t)
	l.ipv6(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "site.yaml"), fmt.Sprintf(dhcp6PoolSite, filepath.Join(dir, "data")))
	l.serveIn(t, dir)
	inRange := func(a string) bool {
		ip, err := netip.ParseAddr(a)
		return err == nil && !ip.Less(netip.MustParseAddr("fd00:77::100")) && !netip.MustParseAddr("fd00:77::1ff").Less(ip)
	}
	leaseOf := func(ip string) (lease, bool) {
		for _, ls := range l.leases(t, dir) {
			if ls.IP == ip {
				return ls, true
			}
		}
		return lease{}, false
	}
	// renewed waits for the client's renewal, and returns when the renewed lease ends.
	renewed := func(who, ip string) time.Time {
		t.Helper()
		first, ok := leaseOf(ip)
		if !ok {
			t.Fatalf("%s: no lease of %s", who, ip)
		}
		var now lease
		testenv.WaitFor(t, who+" to renew its lease", func() bool {
			time.Sleep(100 * time.Millisecond) // the API's rate limit
			now, _ = leaseOf(ip)
			return now.Expires.After(first.Expires)
		})
		return now.Expires
	}
	// released checks that the lease, ending at ends, went before it ended.
	released := func(who, ip, name string, ends time.Time) {
		t.Helper()
		testenv.WaitFor(t, who+"'s release", func() bool {
			time.Sleep(100 * time.Millisecond)
			_, held := leaseOf(ip)
			return !held
		})
		if time.Now().After(ends) {
			t.Errorf("%s: the lease of %s went only as it ended", who, ip)
		}
		if name != "" {
			if got := l.dig("AAAA", name+".lab.test"); got != "" {
				t.Errorf("%s: %s still resolves to %s after its release", who, name, got)
			}
		}
	}

	// ISC dhclient -6, giving its name.
	{
		l.setMAC(t, "52:54:00:77:00:99")
		linkLocal(t, l)
		onLink(t, l)
		d := filepath.Join(dir, "dhclient")
		os.MkdirAll(d, 0o755)
		script := filepath.Join(d, "script")
		writeFile(t, script, strings.NewReplacer("$DIR", d, "$NAME", "laptop6").Replace(dhclient6Binding))
		os.Chmod(script, 0o755)
		conf := filepath.Join(d, "conf")
		writeFile(t, conf, `send fqdn.fqdn "laptop6";`+"\n")
		writeFile(t, filepath.Join(d, "leases"), "")
		args := []string{"netns", "exec", l.cli, "dhclient", "-6", "-cf", conf, "-lf", filepath.Join(d, "leases"), "-pf", filepath.Join(d, "pid"), "-sf", script}
		p := startCmd(t, d, "ip", append(append(args, "-d"), clientIf)...)
		var bound map[string]string
		testenv.WaitFor(t, "dhclient -6 bound", func() bool { bound = readEnv(filepath.Join(d, "BOUND6")); return bound != nil })
		ip := bound["new_ip6_address"]
		if !inRange(ip) || bound["new_dhcp6_name_servers"] != "fd00:77::1" {
			t.Fatalf("dhclient -6: %v, want an address of fd00:77::100-1ff and infrad's DNS", bound)
		}
		testenv.WaitFor(t, "dhclient -6's script to ask DNS", func() bool { _, err := os.Stat(filepath.Join(d, "asked")); return err == nil })
		aaaa, _ := os.ReadFile(filepath.Join(d, "aaaa"))
		ptr, _ := os.ReadFile(filepath.Join(d, "ptr"))
		if strings.TrimSpace(string(aaaa)) != ip || strings.TrimSpace(string(ptr)) != "laptop6.lab.test." {
			t.Errorf("asked as it was bound: laptop6's AAAA %q and %s's PTR %q, want %s and laptop6.lab.test.", aaaa, ip, ptr, ip)
		}
		ends := renewed("dhclient -6", ip)
		p.cmd.Process.Signal(syscall.SIGTERM)
		<-p.done
		sh(t, append(append([]string{"ip"}, args...), "-r", clientIf)...)
		released("dhclient -6", ip, "laptop6", ends)
	}

	// WIDE dhcp6c, which gives no name and configures its address itself.
	{
		l.setMAC(t, "52:54:00:77:00:98")
		linkLocal(t, l)
		d := filepath.Join(dir, "dhcp6c")
		p := l.dhcp6c(t, d)
		ip := waitForPoolAddress(t, l, inRange, "dhcp6c")
		var env map[string]string
		testenv.WaitFor(t, "dhcp6c's script", func() bool { env = readEnv(filepath.Join(d, "env")); return env != nil })
		if env["new_domain_name_servers"] != "fd00:77::1" {
			t.Errorf("dhcp6c's script: %v, want infrad's DNS", env)
		}
		ends := renewed("dhcp6c", ip)
		p.cmd.Process.Signal(syscall.SIGTERM) // dhcp6c releases as it stops
		<-p.done
		released("dhcp6c", ip, "", ends)
	}

	// dhcpcd, giving its name.
	{
		l.setMAC(t, "52:54:00:77:00:97")
		linkLocal(t, l)
		d := filepath.Join(dir, "dhcpcd")
		p := l.dhcpcd(t, d, "dcpd6")
		var bound map[string]string
		testenv.WaitFor(t, "dhcpcd bound", func() bool { bound = readEnv(filepath.Join(d, "env.BOUND6")); return bound != nil })
		ip := bound["new_dhcp6_ia_na1_ia_addr1"]
		if !inRange(ip) || bound["new_dhcp6_name_servers"] != "fd00:77::1" {
			t.Fatalf("dhcpcd: %v, want an address of fd00:77::100-1ff and infrad's DNS", bound)
		}
		if got := l.dig("AAAA", "dcpd6.lab.test"); got != ip {
			t.Errorf("dcpd6's AAAA: %q, want %s", got, ip)
		}
		if got := l.dig("-x", ip); got != "dcpd6.lab.test." {
			t.Errorf("%s's PTR: %q, want dcpd6.lab.test.", ip, got)
		}
		ends := renewed("dhcpcd", ip)
		if stopDhcpcd(t, p, syscall.SIGALRM) { // dhcpcd releases its lease and stops
			released("dhcpcd", ip, "dcpd6", ends)
		} else {
			t.Logf("dhcpcd hung on its release: the release is not checked this run (dhclient's and dhcp6c's are)")
		}
	}
}

// onLink waits for the client's route to fd00:77::/64, from infrad's advertisement:
// a DHCPv6 address is a /128, and the prefix is on the link by the advertisement.
func onLink(t *testing.T, l *lab) {
	t.Helper()
	testenv.WaitFor(t, "the client's route to fd00:77::/64", func() bool {
		out, _ := exec.Command("ip", "-n", l.cli, "-6", "route", "show", "fd00:77::/64").Output()
		return strings.Contains(string(out), "fd00:77::/64")
	})
}

// dhcp6c starts WIDE dhcp6c in l's client namespace, asking for an address and the
// DNS options, with a script that records what it was given in d/env.
func (l *lab) dhcp6c(t *testing.T, d string) *proc {
	t.Helper()
	os.MkdirAll(d, 0o755)
	conf := filepath.Join(d, "conf")
	writeFile(t, conf, fmt.Sprintf("interface %s {\n\tsend ia-na 1;\n\trequest domain-name-servers;\n\trequest domain-name;\n\tscript \"%s/script\";\n};\nid-assoc na 1 { };\n", clientIf, d))
	writeFile(t, filepath.Join(d, "script"), "#!/bin/sh\nenv | grep ^new_ | sort > "+d+"/env.tmp && mv "+d+"/env.tmp "+d+"/env\n")
	os.Chmod(filepath.Join(d, "script"), 0o755)
	// Its DUID file is at a fixed path: a tmpfs over it keeps the machine's.
	return startCmd(t, d, "ip", "netns", "exec", l.cli, "unshare", "-m", "sh", "-c",
		"mount -t tmpfs tmpfs /var/lib/dhcpv6 && exec dhcp6c -f -c "+conf+" -p "+d+"/pid "+clientIf)
}

// dhcpcd starts dhcpcd for DHCPv6 alone in l's client namespace, giving name, with a
// script that records what it was given in d/env.REASON.
func (l *lab) dhcpcd(t *testing.T, d, name string) *proc {
	t.Helper()
	os.MkdirAll(d, 0o755)
	conf := filepath.Join(d, "conf")
	writeFile(t, conf, "ipv6only\nia_na 1\nhostname "+name+"\nfqdn both\n")
	writeFile(t, filepath.Join(d, "script"), "#!/bin/sh\nenv | grep ^new_ | sort > "+d+"/env.tmp && mv "+d+"/env.tmp "+d+"/env.$reason\n")
	os.Chmod(filepath.Join(d, "script"), 0o755)
	// Its DUID, leases and control socket are at fixed paths: tmpfs over them.
	return startCmd(t, d, "ip", "netns", "exec", l.cli, "unshare", "-m", "sh", "-c",
		"mount -t tmpfs tmpfs /var/lib/dhcpcd && mount -t tmpfs tmpfs /run && exec dhcpcd -6 -B -d -f "+conf+" -c "+d+"/script "+clientIf)
}

// stopDhcpcd stops dhcpcd with sig (SIGTERM, or SIGALRM to release its lease first),
// and reports whether it stopped so. In two clean-clone runs dhcpcd 9.4.1 (privilege
// separated: a master and its proxies) took the signal and never stopped: after 10 s
// it and its proxies are killed (a client's bug, not infrad's; logged), and what it
// was to do as it stopped is not done.
func stopDhcpcd(t *testing.T, p *proc, sig syscall.Signal) bool {
	t.Helper()
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return true
	case <-time.After(10 * time.Second):
	}
	t.Logf("dhcpcd did not stop on %s: killed with its proxies", sig)
	for _, pid := range descendants(p.cmd.Process.Pid) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	p.cmd.Process.Kill()
	<-p.done
	return false
}

// descendants are the processes below pid, read from /proc.
func descendants(pid int) []int {
	parent := map[int]int{}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, f := range stats {
		raw, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so read after its ')'.
		i := strings.LastIndexByte(string(raw), ')')
		var self, ppid int
		fmt.Sscan(filepath.Base(filepath.Dir(f)), &self)
		if fields := strings.Fields(string(raw[i+1:])); i > 0 && len(fields) > 1 {
			fmt.Sscan(fields[1], &ppid)
			parent[self] = ppid
		}
	}
	var out []int
	for child, pp := range parent {
		for p := pp; p > 1; p = parent[p] {
			if p == pid {
				out = append(out, child)
				break
			}
		}
	}
	return out
}

// waitForPoolAddress waits for a client that configures its interface itself to hold
// an address inRange, and returns it.
func waitForPoolAddress(t *testing.T, l *lab, inRange func(string) bool, who string) string {
	t.Helper()
	var ip string
	testenv.WaitFor(t, who+"'s address from the pool", func() bool {
		out, _ := exec.Command("ip", "-n", l.cli, "-6", "-o", "addr", "show", "dev", clientIf, "scope", "global").Output()
		for _, f := range strings.Fields(string(out)) {
			if a, _, ok := strings.Cut(f, "/128"); ok && inRange(a) {
				ip = a
				return true
			}
		}
		return false
	})
	return ip
}

// readEnv reads the NAME=value lines a client's script recorded; nil when there are
// none yet.
func readEnv(path string) map[string]string {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(raw), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = strings.Trim(strings.TrimSpace(v), "'")
		}
	}
	return env
}

// TestDHCPv6Burst: perfdhcp -6 as a thousand clients at once against a pool of
// sixteen: every address is leased once, to one client (perfdhcp sees no address
// twice, and the store holds each once). Then, the pool grown by a reload, a burst
// during which infrad is killed (SIGKILL): every Reply perfdhcp received was for a
// lease that is on disk after the restart.
func TestDHCPv6Burst(t *testing.T) {
	testenv.NeedRoot(t, "ip", "perfdhcp", "curl")
	l := newLab(t)
	l.ipv6(t)
	// perfdhcp sends from the link's global address: one usable at once (no SLAAC,
	// which would be tentative as it starts).
	sh(t, "ip", "netns", "exec", l.cli, "sysctl", "-qw", "net.ipv6.conf."+clientIf+".autoconf=0")
	sh(t, "ip", "-n", l.cli, "addr", "add", "fd00:77::50/64", "dev", clientIf, "nodad")
	dir := t.TempDir()
	site := filepath.Join(dir, "site.yaml")
	small := strings.Replace(fmt.Sprintf(dhcp6PoolSite, filepath.Join(dir, "data")), `end: "fd00:77::1ff"`, `end: "fd00:77::10f"`, 1)
	writeFile(t, site, strings.Replace(small, "lease_time: 10s", "lease_time: 1h", 1))
	server := l.serveIn(t, dir)
	perf := func(rate, secs string) *exec.Cmd {
		return exec.Command("ip", "netns", "exec", l.cli, "perfdhcp", "-6", "-l", clientIf, "-r", rate, "-R", "100000", "-p", secs)
	}
	held := func() map[string]string {
		byIP := map[string]string{}
		for _, ls := range l.leases(t, dir) {
			if prev, ok := byIP[ls.IP]; ok {
				t.Errorf("%s is leased twice: to %s and %s", ls.IP, prev, ls.Client)
			}
			if ls.Client == "" {
				t.Errorf("a DHCPv6 lease without its client: %+v", ls)
			}
			byIP[ls.IP] = ls.Client
		}
		return byIP
	}

	out, _ := perf("500", "3").CombinedOutput()
	if regexp.MustCompile(`non unique addresses: [1-9]`).Match(out) {
		t.Errorf("perfdhcp saw an address given twice:\n%s", out)
	}
	if got := held(); len(got) != 16 {
		t.Errorf("%d leases of the sixteen addresses: %v\n%s", len(got), got, out)
	}

	// The pool grown; a burst, and the server killed in it.
	large := strings.Replace(fmt.Sprintf(dhcp6PoolSite, filepath.Join(dir, "data")), `end: "fd00:77::1ff"`, `end: "fd00:77::ffff"`, 1)
	writeFile(t, site, strings.Replace(large, "lease_time: 10s", "lease_time: 1h", 1))
	server.cmd.Process.Signal(syscall.SIGHUP)
	testenv.WaitFor(t, "the reloaded pool", func() bool {
		time.Sleep(100 * time.Millisecond)
		var sn struct{ Ranges []struct{ End string } }
		l.api(t, dir, "/api/v1/subnets/lab6", &sn)
		return len(sn.Ranges) == 1 && sn.Ranges[0].End == "fd00:77::ffff"
	})
	cmd := perf("5000", "4")
	var report strings.Builder
	cmd.Stdout, cmd.Stderr = &report, &report
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // a point in the burst, not a bound on anything
	server.cmd.Process.Signal(syscall.SIGKILL)
	<-server.done
	cmd.Wait()
	replied := perfCount(report.String(), "REQUEST-REPLY", "received")
	if replied <= 0 {
		t.Fatalf("perfdhcp got no Reply before the kill:\n%s", report.String())
	}
	l.serveIn(t, dir)
	if got := held(); len(got) < 16+replied {
		t.Errorf("perfdhcp received %d Replies before the kill, and %d leases are stored after it (16 from before)", replied, len(got))
	} else {
		t.Logf("%d Replies before the kill, %d leases after (16 from before)", replied, len(got))
	}
}

// TestDHCPv6SubnetFromTheAPI: a subnet given DHCPv6 through the API is served at once,
// with no reload: dhclient -6 gets an address of its range; deleted, the service
// closes its socket.
func TestDHCPv6SubnetFromTheAPI(t *testing.T) {
	testenv.NeedRoot(t, "ip", "dhclient", "curl", "ss")
	l := newLab(t)
	l.ipv6(t)
	l.setMAC(t, "52:54:00:77:00:99")
	linkLocal(t, l)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "site.yaml"), fmt.Sprintf(raSite, filepath.Join(dir, "data"), false))
	l.serveIn(t, dir)
	listening := func() bool {
		out, _ := exec.Command("ip", "netns", "exec", l.srv, "ss", "-uln", "sport", "= :547").Output()
		return strings.Contains(string(out), ":547")
	}
	if listening() {
		t.Fatal("DHCPv6 listens before any subnet asks for it")
	}
	token := readToken(t, filepath.Join(dir, "data"))
	api := func(method, path, body string) {
		t.Helper()
		sh(t, "ip", "netns", "exec", l.srv, "curl", "-sf", "-X", method, "-H", "Authorization: Bearer "+token,
			"http://127.0.0.1:8080"+path, "-d", body)
	}
	api("POST", "/api/v1/subnets", `{"name": "lab6b", "cidr": "fd00:79::/64", "dhcp6": "stateful",
		"ranges": [{"kind": "dhcp", "start": "fd00:79::100", "end": "fd00:79::1ff"}]}`)
	// The subnet is on the link too: infrad answers for the subnet its interface holds an address in.
	sh(t, "ip", "-n", l.srv, "addr", "add", "fd00:79::1/64", "dev", "br0", "nodad")
	sh(t, "ip", "-n", l.srv, "addr", "del", "fd00:77::1/64", "dev", "br0")
	testenv.WaitFor(t, "DHCPv6 to listen for the API's subnet", listening)
	got := dhclient6(t, l, filepath.Join(dir, "api"), "BOUND6")
	if a := got["new_ip6_address"]; !strings.HasPrefix(a, "fd00:79::1") || len(a) != len("fd00:79::1xx") {
		t.Errorf("dhclient -6: %v, want an address of fd00:79::100-1ff", got)
	}
	api("DELETE", "/api/v1/dhcp/leases/"+got["new_ip6_address"], "") // a subnet with leases stays
	api("DELETE", "/api/v1/subnets/lab6b", "")
	testenv.WaitFor(t, "DHCPv6 to close its socket", func() bool { return !listening() })
}

const dhcp6ReservedSite = lab6Head + `dhcp: {interfaces: [br0], lease_time: 1h}
subnets:
  - {name: lab, cidr: 10.77.0.0/24}
  - {name: lab6, cidr: "fd00:77::/64", ra: {}, dhcp6: stateful}
hosts:
  - {name: infra, ip: 10.77.0.1, ip6: "fd00:77::1"}
  - {name: cp01, ip: 10.77.0.11, ip6: "fd00:77::11", mac: "52:54:00:77:00:11"}
  - {name: cp02, ip: 10.77.0.12, ip6: "fd00:77::12", mac: "52:54:00:77:00:12"}
  - {name: cp03, ip: 10.77.0.13, ip6: "fd00:77::13", mac: "52:54:00:77:00:13"}
`

// TestDHCPv6ReservedWithEachClient: a dual-stack site file's nodes, each reserved by
// its MAC, get their IPv6 addresses from ISC dhclient -6, WIDE dhcp6c and dhcpcd (each
// sends its own kind of DUID), and DNS answers both names' families and both PTRs.
func TestDHCPv6ReservedWithEachClient(t *testing.T) {
	testenv.NeedRoot(t, "ip", "dhclient", "dhcp6c", "dhcpcd", "unshare", "dig")
	l := newLab(t)
	l.ipv6(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "site.yaml"), fmt.Sprintf(dhcp6ReservedSite, filepath.Join(dir, "data")))
	l.serveIn(t, dir)
	for _, c := range []struct{ client, mac, host string }{
		{"dhclient", "52:54:00:77:00:11", "cp01"}, {"dhcp6c", "52:54:00:77:00:12", "cp02"}, {"dhcpcd", "52:54:00:77:00:13", "cp03"},
	} {
		l.setMAC(t, c.mac)
		linkLocal(t, l)
		d := filepath.Join(dir, c.client)
		want := "fd00:77::" + c.mac[len(c.mac)-2:]
		var got string
		switch c.client {
		case "dhclient":
			got = dhclient6(t, l, d, "BOUND6")["new_ip6_address"]
		case "dhcp6c":
			p := l.dhcp6c(t, d)
			got = waitForPoolAddress(t, l, func(a string) bool { return a == want }, "dhcp6c")
			p.cmd.Process.Signal(syscall.SIGTERM)
			<-p.done
		case "dhcpcd":
			p := l.dhcpcd(t, d, c.host)
			var bound map[string]string
			testenv.WaitFor(t, "dhcpcd bound", func() bool { bound = readEnv(filepath.Join(d, "env.BOUND6")); return bound != nil })
			got = bound["new_dhcp6_ia_na1_ia_addr1"]
			stopDhcpcd(t, p, syscall.SIGTERM)
		}
		if got != want {
			t.Errorf("%s with %s's MAC: got %q, want %s", c.client, c.host, got, want)
		}
		for q, want := range map[string]string{
			"A " + c.host + ".lab.test": "10.77.0." + c.mac[len(c.mac)-2:], "AAAA " + c.host + ".lab.test": want,
			"-x " + want: c.host + ".lab.test.", "-x 10.77.0." + c.mac[len(c.mac)-2:]: c.host + ".lab.test.",
		} {
			if got := l.dig(strings.Fields(q)...); got != want {
				t.Errorf("dig %s: %q, want %s", q, got, want)
			}
		}
	}
}

// TestDHCPv6PrefixDelegation: routers ask for prefixes (IA_PD): ISC dhclient -6 -P
// and dhcpcd (ia_pd) each get a /56 of the site's delegation pool, another each, and
// each is a lease of its router; dhclient's release gives its prefix back.
func TestDHCPv6PrefixDelegation(t *testing.T) {
	testenv.NeedRoot(t, "ip", "dhclient", "dhcpcd", "unshare", "curl")
	l := newLab(t)
	l.ipv6(t)
	dir := t.TempDir()
	site := strings.Replace(fmt.Sprintf(dhcp6PoolSite, filepath.Join(dir, "data")), "hosts:\n", "    delegate: {prefix: \"fd00:200::/48\", length: 56}\nhosts:\n", 1)
	writeFile(t, filepath.Join(dir, "site.yaml"), strings.Replace(site, "lease_time: 10s", "lease_time: 1h", 1))
	l.serveIn(t, dir)
	pool := netip.MustParsePrefix("fd00:200::/48")
	delegated := func(who, p string) netip.Prefix {
		t.Helper()
		got, err := netip.ParsePrefix(p)
		if err != nil || got.Bits() != 56 || !pool.Contains(got.Addr()) {
			t.Fatalf("%s was delegated %q, want a /56 of %s", who, p, pool)
		}
		for _, ls := range l.leases(t, dir) {
			if ls.IP == got.Addr().String() && ls.Length == 56 && strings.HasSuffix(ls.Client, "/pd") {
				return got
			}
		}
		t.Fatalf("%s's prefix %s is no lease of its: %v", who, got, l.leases(t, dir))
		return got
	}

	l.setMAC(t, "52:54:00:77:00:99")
	linkLocal(t, l)
	d := filepath.Join(dir, "dhclient")
	args := l.dhclient6Args(t, d, "router1", "-P")
	p := startCmd(t, d, "ip", append(args[:len(args)-1:len(args)-1], "-d", clientIf)...)
	var bound map[string]string
	testenv.WaitFor(t, "dhclient -6 -P bound", func() bool { bound = readEnv(filepath.Join(d, "BOUND6")); return bound != nil })
	first := delegated("dhclient -6 -P", bound["new_ip6_prefix"])
	p.cmd.Process.Signal(syscall.SIGTERM)
	<-p.done

	l.setMAC(t, "52:54:00:77:00:98")
	linkLocal(t, l)
	dd := filepath.Join(dir, "dhcpcd")
	os.MkdirAll(dd, 0o755)
	writeFile(t, filepath.Join(dd, "conf"), "ipv6only\nia_pd 2\n")
	writeFile(t, filepath.Join(dd, "script"), "#!/bin/sh\nenv | grep ^new_ | sort > "+dd+"/env.tmp && mv "+dd+"/env.tmp "+dd+"/env.$reason\n")
	os.Chmod(filepath.Join(dd, "script"), 0o755)
	q := startCmd(t, dd, "ip", "netns", "exec", l.cli, "unshare", "-m", "sh", "-c",
		"mount -t tmpfs tmpfs /var/lib/dhcpcd && mount -t tmpfs tmpfs /run && exec dhcpcd -6 -B -d -f "+dd+"/conf -c "+dd+"/script "+clientIf)
	testenv.WaitFor(t, "dhcpcd's delegated prefix", func() bool { bound = readEnv(filepath.Join(dd, "env.BOUND6")); return bound != nil })
	second := delegated("dhcpcd", bound["new_dhcp6_ia_pd1_prefix1"]+"/"+bound["new_dhcp6_ia_pd1_prefix1_length"])
	if second == first {
		t.Errorf("%s delegated to two routers", first)
	}
	stopDhcpcd(t, q, syscall.SIGTERM)

	l.setMAC(t, "52:54:00:77:00:99")
	sh(t, "ip", "-n", l.cli, "link", "set", clientIf, "addrgenmode", "eui64") // dhcpcd turned the kernel's off
	linkLocal(t, l)
	sh(t, append(append([]string{"ip"}, args[:len(args)-1]...), "-r", clientIf)...)
	testenv.WaitFor(t, "dhclient's prefix back in the pool", func() bool {
		time.Sleep(100 * time.Millisecond) // the API's rate limit
		for _, ls := range l.leases(t, dir) {
			if ls.IP == first.Addr().String() {
				return false
			}
		}
		return true
	})
}

// networkd starts systemd-networkd in l's client namespace with DHCPv6 on the client's
// interface, giving name, in a mount namespace of its own: its configuration and state
// directories are the test's, and /sys read-only, as in a container, so that it takes
// links without udev.
// With a uuid, its DUID is that DUID-UUID; else networkd's own (DUID-EN).
func (l *lab) networkd(t *testing.T, d, name, uuid string) *proc {
	t.Helper()
	conf := filepath.Join(d, "network")
	os.MkdirAll(conf, 0o755)
	network := fmt.Sprintf("[Match]\nName=%s\n\n[Network]\nDHCP=ipv6\nIPv6AcceptRA=yes\n\n[DHCP]\nHostname=%s\n", clientIf, name)
	if uuid != "" {
		network += "\n[DHCPv6]\nDUIDType=uuid\nDUIDRawData=" + uuid + "\n"
	}
	writeFile(t, filepath.Join(conf, "10-c0.network"), network)
	return startCmd(t, d, "ip", "netns", "exec", l.cli, "unshare", "-m", "sh", "-c",
		"mount --bind "+conf+" /etc/systemd/network && mkdir -p /run/systemd && mount -t tmpfs tmpfs /run/systemd && "+
			"mount -o remount,ro /sys && mkdir -p /run/systemd/netif && chown systemd-network /run/systemd/netif && "+
			"SYSTEMD_LOG_LEVEL=debug exec /lib/systemd/systemd-networkd")
}

// TestDHCPv6WithSystemdNetworkd: systemd-networkd (DUID-EN, rapid commit, asking for
// a prefix too) gets the address reserved for its MAC (learnt from its link-local
// address); with a DUID-UUID, the address reserved for that DUID; and on another MAC
// a lease of the pool under the name it gives, whose AAAA and PTR DNS answers, and a
// delegated prefix.
func TestDHCPv6WithSystemdNetworkd(t *testing.T) {
	testenv.NeedRoot(t, "ip", "unshare", "dig", "curl", "/lib/systemd/systemd-networkd")
	l := newLab(t)
	l.ipv6(t)
	dir := t.TempDir()
	site := strings.Replace(fmt.Sprintf(dhcp6PoolSite, filepath.Join(dir, "data")), "hosts:\n", "    delegate: {prefix: \"fd00:200::/48\", length: 56}\nhosts:\n", 1)
	site = strings.Replace(site, "lease_time: 10s", "lease_time: 1h", 1)
	const uuid = "6b:0c:36:1e:8e:3a:4f:43:9c:1f:45:5b:8a:7e:02:11"
	writeFile(t, filepath.Join(dir, "site.yaml"), site+`  - {name: cp01, ip: 10.77.0.11, ip6: "fd00:77::11", mac: "52:54:00:77:00:11"}
  - {name: cp02, ip: 10.77.0.12, ip6: "fd00:77::12", duid: "00:04:`+uuid+`"}
`)
	l.serveIn(t, dir)

	l.setMAC(t, "52:54:00:77:00:11")
	linkLocal(t, l)
	p := l.networkd(t, filepath.Join(dir, "reserved"), "whatever", "")
	waitForPoolAddress(t, l, func(a string) bool { return a == "fd00:77::11" }, "systemd-networkd (reserved by MAC)")
	p.cmd.Process.Signal(syscall.SIGTERM)
	<-p.done

	l.setMAC(t, "52:54:00:77:00:96")
	linkLocal(t, l)
	p = l.networkd(t, filepath.Join(dir, "duid"), "whatever", uuid)
	waitForPoolAddress(t, l, func(a string) bool { return a == "fd00:77::12" }, "systemd-networkd (reserved by DUID)")
	p.cmd.Process.Signal(syscall.SIGTERM)
	<-p.done

	l.setMAC(t, "52:54:00:77:00:97")
	linkLocal(t, l)
	p = l.networkd(t, filepath.Join(dir, "pool"), "nd6", "")
	inRange := func(a string) bool {
		ip, err := netip.ParseAddr(a)
		return err == nil && !ip.Less(netip.MustParseAddr("fd00:77::100")) && !netip.MustParseAddr("fd00:77::1ff").Less(ip)
	}
	ip := waitForPoolAddress(t, l, inRange, "systemd-networkd")
	if got := l.dig("AAAA", "nd6.lab.test"); got != ip {
		t.Errorf("nd6's AAAA: %q, want %s", got, ip)
	}
	if got := l.dig("-x", ip); got != "nd6.lab.test." {
		t.Errorf("%s's PTR: %q, want nd6.lab.test.", ip, got)
	}
	var prefix lease
	for _, ls := range l.leases(t, dir) {
		if ls.Length == 56 {
			prefix = ls
		}
	}
	if !strings.HasPrefix(prefix.IP, "fd00:200:") || !strings.HasSuffix(prefix.Client, "/pd") {
		t.Errorf("no prefix delegated to systemd-networkd: %v", l.leases(t, dir))
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	<-p.done
}

const dhcp6BootSite = lab6Head + `dhcp: {interfaces: [br0], lease_time: 1h}
boot:
  http_listen: "[::]:8081"
  profiles:
    - {name: debian, kernel: debian/vmlinuz}
subnets:
  - {name: lab, cidr: 10.77.0.0/24}
  - {name: lab6, cidr: "fd00:77::/64", ra: {}, dhcp6: stateful}
hosts:
  - {name: infra, ip: 10.77.0.1, ip6: "fd00:77::1"}
  - {name: cp09, ip: 10.77.0.9, ip6: "fd00:77::9", mac: "52:54:00:77:00:99", boot: debian}
`

// TestDHCPv6NetbootURL: ISC dhclient -6 posing as iPXE (user class "iPXE") is given
// its machine's script URL (option 59) on the boot endpoint's IPv6 address, and the
// script fetched there loads the profile's kernel over IPv6; posing as UEFI HTTP boot
// (vendor class HTTPClient, architecture 16) it is given the iPXE binary's URL.
func TestDHCPv6NetbootURL(t *testing.T) {
	testenv.NeedRoot(t, "ip", "dhclient", "curl")
	l := newLab(t)
	l.ipv6(t)
	l.setMAC(t, "52:54:00:77:00:99")
	linkLocal(t, l)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "site.yaml"), fmt.Sprintf(dhcp6BootSite, filepath.Join(dir, "data")))
	l.serveIn(t, dir)
	asking := func(name, send string) map[string]string {
		d := filepath.Join(dir, name)
		args := l.dhclient6Args(t, d, name)
		writeFile(t, args[slices.Index(args, "-cf")+1], "option dhcp6.boot-url code 59 = text;\n"+
			"option dhcp6.user-class-raw code 15 = string;\noption dhcp6.vendor-class-raw code 16 = string;\n"+
			"option dhcp6.arch code 61 = unsigned integer 16;\nalso request dhcp6.boot-url;\n"+send)
		p := startCmd(t, d, "ip", append(args[:len(args)-1:len(args)-1], "-d", clientIf)...)
		defer func() { p.cmd.Process.Signal(syscall.SIGTERM); <-p.done }()
		var bound map[string]string
		testenv.WaitFor(t, "dhclient -6 as "+name, func() bool { bound = readEnv(filepath.Join(d, "BOUND6")); return bound != nil })
		return bound
	}
	fetch := func(url string) string {
		out, _ := exec.Command("ip", "netns", "exec", l.cli, "curl", "-sf", "-m", "5", url).Output()
		return string(out)
	}

	got := asking("ipxe", "send dhcp6.user-class-raw 00:04:69:50:58:45;\n") // "iPXE", as a length-prefixed class
	script := "http://[fd00:77::1]:8081/ipxe/52-54-00-77-00-99"
	if got["new_dhcp6_boot_url"] != script {
		t.Errorf("iPXE's boot URL: %q, want %s (%v)", got["new_dhcp6_boot_url"], script, got)
	}
	if body := fetch(script); !strings.Contains(body, "#!ipxe") || !strings.Contains(body, "kernel http://[fd00:77::1]:8081/files/debian/vmlinuz") {
		t.Errorf("the script over IPv6: %q", body)
	}

	// Enterprise 343, then "HTTPClient" length-prefixed.
	got = asking("uefi-http", "send dhcp6.vendor-class-raw 00:00:01:57:00:0a:48:54:54:50:43:6c:69:65:6e:74;\nsend dhcp6.arch 16;\n")
	if want := "http://[fd00:77::1]:8081/files/ipxe.efi"; got["new_dhcp6_boot_url"] != want {
		t.Errorf("UEFI HTTP boot's boot URL: %q, want %s (%v)", got["new_dhcp6_boot_url"], want, got)
	}
}

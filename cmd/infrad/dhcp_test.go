package main

// DHCP end to end: infrad in one network namespace, real clients (dhclient, perfdhcp)
// in another, joined by a veth pair on a bridge. The test makes the namespaces and
// removes them; no packet leaves them. Its sections share one server's life (restarts
// included), so they run in order in one test rather than as subtests.

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/infrad/infrad/internal/testenv"
)

// lab is a server namespace with a bridge at 10.77.0.1/24 and a client namespace
// whose interface c0 is on that bridge.
type lab struct {
	srv, cli string
}

const clientIf = "c0"

func sh(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func newLab(t *testing.T) *lab {
	t.Helper()
	b := make([]byte, 3)
	rand.Read(b)
	id := hex.EncodeToString(b)
	l := &lab{srv: "ifd-srv-" + id, cli: "ifd-cli-" + id}
	sh(t, "ip", "netns", "add", l.srv)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", l.srv).Run() })
	sh(t, "ip", "netns", "add", l.cli)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", l.cli).Run() })
	for _, cmd := range [][]string{
		{"ip", "-n", l.srv, "link", "set", "lo", "up"},
		{"ip", "-n", l.cli, "link", "set", "lo", "up"},
		{"ip", "-n", l.srv, "link", "add", "br0", "type", "bridge"},
		{"ip", "-n", l.srv, "addr", "add", "10.77.0.1/24", "dev", "br0"},
		{"ip", "-n", l.srv, "link", "set", "br0", "up"},
		{"ip", "-n", l.srv, "link", "add", "s0", "type", "veth", "peer", "name", clientIf, "netns", l.cli},
		{"ip", "-n", l.srv, "link", "set", "s0", "master", "br0", "up"},
		{"ip", "-n", l.cli, "link", "set", clientIf, "up"},
	} {
		sh(t, cmd...)
	}
	return l
}

// setMAC gives the client's interface mac, with no address.
func (l *lab) setMAC(t *testing.T, mac string) {
	t.Helper()
	sh(t, "ip", "-n", l.cli, "addr", "flush", "dev", clientIf)
	sh(t, "ip", "-n", l.cli, "link", "set", clientIf, "address", mac)
}

// dhclient runs ISC dhclient in the client namespace, in the foreground, with a
// script that records what it is given in dir instead of touching the machine.
type dhclient struct {
	dir string
	p   *proc
}

const dhclientScript = `#!/bin/sh
env | grep -E '^(reason|new_)' | sort > "$DIR/$reason.tmp" && mv "$DIR/$reason.tmp" "$DIR/$reason"
echo "$reason" >> "$DIR/reasons"
case "$reason" in
BOUND|RENEW|REBIND|REBOOT) ip addr replace "$new_ip_address/$new_subnet_mask" dev "$interface"
	[ -z "$new_routers" ] || ip route replace default via "${new_routers%% *}" dev "$interface" ;;
EXPIRE|FAIL|RELEASE|STOP) ip addr flush dev "$interface" ;;
esac
`

const dhclientConf = `send host-name "%s";
request subnet-mask, broadcast-address, routers, domain-name, domain-name-servers,
	domain-search, ntp-servers, interface-mtu, tftp-server-name, bootfile-name, host-name;
`

func (l *lab) dhclient(t *testing.T, dir, hostname string, extra ...string) *dhclient {
	t.Helper()
	return &dhclient{dir: dir, p: startCmd(t, dir, "ip", l.dhclientArgs(t, dir, hostname, extra...)...)}
}

// dhclientArgs writes dhclient's script and configuration to dir and returns the
// arguments of ip that run it in the client namespace.
func (l *lab) dhclientArgs(t *testing.T, dir, hostname string, extra ...string) []string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "script")
	os.WriteFile(script, []byte(strings.Replace(dhclientScript, "$DIR", dir, -1)), 0o755)
	conf := filepath.Join(dir, "dhclient.conf")
	os.WriteFile(conf, fmt.Appendf(nil, dhclientConf, hostname), 0o644)
	args := append([]string{"netns", "exec", l.cli, "dhclient", "-4", "-cf", conf,
		"-lf", filepath.Join(dir, "leases"), "-pf", filepath.Join(dir, "pid"), "-sf", script}, extra...)
	return append(args, clientIf)
}

// got returns what dhclient was given when reason last happened, or nil.
func (c *dhclient) got(reason string) map[string]string {
	raw, err := os.ReadFile(filepath.Join(c.dir, reason))
	if err != nil {
		return nil
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(raw), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = strings.Trim(v, "'")
		}
	}
	return env
}

func (c *dhclient) reasons() string {
	raw, _ := os.ReadFile(filepath.Join(c.dir, "reasons"))
	return string(raw)
}

func (c *dhclient) stop() {
	c.p.cmd.Process.Signal(syscall.SIGTERM)
	<-c.p.done
}

// labSiteFor is labSite with its data directory.
func labSiteFor(dataDir string) string { return fmt.Sprintf(labSite, dataDir) }

// labServices are the lab's services but DHCP, on the server namespace's loopback
// (DNS and NTP advertised at the bridge's address).
const labServices = `api: {listen: "127.0.0.1:8080"}
dns: {listen: ["127.0.0.1:1053"], advertise: 10.77.0.1}
ntp: {listen: ["127.0.0.1:1123"], local_stratum: 10, chronyd: none}
ca: {listen: "127.0.0.1:8443"}
`

const labSite = `domain: lab.test
data_dir: %s
` + labServices + `dhcp: {interfaces: [br0], lease_time: 20s}
subnets:
  - name: lab
    cidr: 10.77.0.0/24
    gateway: 10.77.0.254
    dhcp_options: {mtu: 1400, domain_search: [lab.test, example.test]}
    ranges:
      - {kind: dhcp, start: 10.77.0.100, end: 10.77.0.103}
hosts:
  - {name: infra, ip: 10.77.0.1}
  - {name: cp01, ip: 10.77.0.10, mac: "52:54:00:77:00:10", dhcp_options: {next_server: 10.77.0.1, boot_file: pxelinux.0}}
`

// serveIn runs infrad in the server namespace, and waits until it is ready.
func (l *lab) serveIn(t *testing.T, dir string) *proc {
	t.Helper()
	p := startCmd(t, dir, "ip", "netns", "exec", l.srv, binary, "serve", "-c", filepath.Join(dir, "site.yaml"))
	testenv.WaitFor(t, "infrad ready in its namespace", func() bool {
		out, err := exec.Command("ip", "netns", "exec", l.srv, "curl", "-sf", "http://127.0.0.1:8080/readyz").Output()
		return err == nil && strings.Contains(string(out), `"ready": true`)
	})
	return p
}

// api GETs path from the infrad in the server namespace.
func (l *lab) api(t *testing.T, dir, path string, v any) {
	t.Helper()
	token := readToken(t, filepath.Join(dir, "data"))
	out := sh(t, "ip", "netns", "exec", l.srv, "curl", "-sf", "-H", "Authorization: Bearer "+token, "http://127.0.0.1:8080"+path)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("GET %s: %v\n%s", path, err, out)
	}
}

type lease struct {
	IP, MAC, Hostname string
	Client            string // a DHCPv6 client's DUID and IAID
	Length            int    // a delegated prefix's
	Expires           time.Time
	Declined          bool
	Released          uint64 // the index of an early end its address waits on
}

func (l *lab) leases(t *testing.T, dir string) []lease {
	t.Helper()
	var ls []lease
	l.api(t, dir, "/api/v1/dhcp/leases", &ls)
	return ls
}

func (l *lab) dig(args ...string) string {
	out, _ := exec.Command("ip", append([]string{"netns", "exec", l.srv, "dig", "@127.0.0.1", "-p", "1053", "+short"}, args...)...).Output()
	return strings.TrimSpace(string(out))
}

func TestDHCPWithRealClients(t *testing.T) {
	testenv.NeedRoot(t, "ip", "dhclient", "perfdhcp", "curl", "dig")
	l := newLab(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "site.yaml"), fmt.Appendf(nil, labSite, filepath.Join(dir, "data")), 0o644)
	server := l.serveIn(t, dir)

	// reservation and every option.
	{
		l.setMAC(t, "52:54:00:77:00:10")
		c := l.dhclient(t, filepath.Join(dir, "cp01"), "some-name", "-d", "-1") // a reserved client is known by its host's name
		testenv.WaitFor(t, "cp01 bound", func() bool { return c.got("BOUND") != nil })
		got := c.got("BOUND")
		c.stop()
		for k, want := range map[string]string{
			"new_ip_address":             "10.77.0.10",
			"new_subnet_mask":            "255.255.255.0",
			"new_broadcast_address":      "10.77.0.255",
			"new_routers":                "10.77.0.254",
			"new_domain_name_servers":    "10.77.0.1",
			"new_domain_name":            "lab.test",
			"new_domain_search":          "lab.test. example.test.",
			"new_ntp_servers":            "10.77.0.1",
			"new_interface_mtu":          "1400",
			"new_dhcp_lease_time":        "20",
			"new_dhcp_server_identifier": "10.77.0.1",
			"new_tftp_server_name":       "10.77.0.1",
			"new_bootfile_name":          "pxelinux.0",
			"new_filename":               "pxelinux.0",
			"new_next_server":            "10.77.0.1",
			"new_host_name":              "cp01",
		} {
			if got[k] != want {
				t.Errorf("%s: got %q, want %q", k, got[k], want)
			}
		}
	}

	var laptop *dhclient
	// dynamic lease, DNS name, renewal.
	{
		l.setMAC(t, "52:54:00:77:00:99")
		laptop = l.dhclient(t, filepath.Join(dir, "laptop"), "Laptop_01", "-d")
		testenv.WaitFor(t, "laptop bound", func() bool { return laptop.got("BOUND") != nil })
		ip := laptop.got("BOUND")["new_ip_address"]
		if ip != "10.77.0.100" {
			t.Errorf("got %s, want the first address of the dhcp range", ip)
		}
		// Bound means ACKed, and the ACK left after the lease was in the model: DNS has it.
		if a, ptr := l.dig("laptop-01.lab.test"), l.dig("-x", ip); a != ip || ptr != "laptop-01.lab.test." {
			t.Errorf("right after the ACK: got A %q, PTR %q; want %s and laptop-01.lab.test.", a, ptr, ip)
		}
		// The activity view has the exchange, both ways.
		var events []struct {
			Type, MAC, IP string
			Sent          bool
		}
		l.api(t, dir, "/api/v1/dhcp/events?q=52:54:00:77:00:99", &events)
		seen := map[string]bool{}
		for _, e := range events {
			if e.MAC == "52:54:00:77:00:99" {
				seen[fmt.Sprintf("%s sent=%v", e.Type, e.Sent)] = true
			}
		}
		for _, want := range []string{"DISCOVER sent=false", "OFFER sent=true", "REQUEST sent=false", "ACK sent=true"} {
			if !seen[want] {
				t.Errorf("the activity view lacks %s: %+v", want, events)
			}
		}
		// T1 is half the 20 s lease: dhclient renews, by unicast, within about 10 s.
		testenv.WaitFor(t, "a renewal", func() bool { return strings.Contains(laptop.reasons(), "RENEW") })
		if got := laptop.got("RENEW")["new_ip_address"]; got != ip {
			t.Errorf("renewed to %s, want %s", got, ip)
		}

		// Pin the lease: the laptop becomes a host with its address and MAC, and keeps
		// renewing the same address, now its reservation.
		token := readToken(t, filepath.Join(dir, "data"))
		out := sh(t, "ip", "netns", "exec", l.srv, "curl", "-s", "-X", "POST", "-H", "Authorization: Bearer "+token,
			"http://127.0.0.1:8080/api/v1/dhcp/leases/"+ip+"/reserve")
		var host struct{ Name, IP, MAC string }
		if json.Unmarshal([]byte(out), &host) != nil || host.Name != "laptop-01" || host.IP != ip || host.MAC != "52:54:00:77:00:99" {
			t.Fatalf("pin the laptop's lease: %s", out)
		}
		renewals := strings.Count(laptop.reasons(), "RENEW")
		testenv.WaitFor(t, "a renewal after the pin", func() bool { return strings.Count(laptop.reasons(), "RENEW") > renewals })
		if got := laptop.got("RENEW")["new_ip_address"]; got != ip {
			t.Errorf("after the pin, renewed to %s, want %s", got, ip)
		}
		if a, ptr := l.dig("laptop-01.lab.test"), l.dig("-x", ip); a != ip || ptr != "laptop-01.lab.test." {
			t.Errorf("after the pin: got A %q, PTR %q; want %s and laptop-01.lab.test.", a, ptr, ip)
		}
		var changes struct {
			Changes []struct{ Source, Command string }
		}
		l.api(t, dir, "/api/v1/changes?object=laptop-01&limit=1", &changes)
		if len(changes.Changes) != 1 || changes.Changes[0].Command != "PinLease" || changes.Changes[0].Source != "token api-token" {
			t.Errorf("the change log's newest for laptop-01: %+v, want the pin by token api-token", changes.Changes)
		}
	}

	// leases survive a restart and kill -9.
	{
		server.cmd.Process.Signal(syscall.SIGTERM)
		if code := server.wait(t, 10*time.Second); code != exitOK {
			t.Fatalf("SIGTERM: exit %d", code)
		}
		server = l.serveIn(t, dir)
		if ls := l.leases(t, dir); !hasLease(ls, "10.77.0.100", "52:54:00:77:00:99") {
			t.Errorf("after restart: got %v, want the laptop's lease", ls)
		}
		laptop.stop()

		// A fresh client: kill -9 the server as soon as the client holds its ACK.
		l.setMAC(t, "52:54:00:77:00:aa")
		c := l.dhclient(t, filepath.Join(dir, "crash"), "crash", "-d", "-1")
		testenv.WaitFor(t, "crash bound", func() bool { return c.got("BOUND") != nil })
		server.cmd.Process.Signal(syscall.SIGKILL)
		<-server.done
		ip := c.got("BOUND")["new_ip_address"]
		c.stop()
		l.serveIn(t, dir) // the last server: the test's cleanup ends it
		if ls := l.leases(t, dir); !hasLease(ls, ip, "52:54:00:77:00:aa") {
			t.Errorf("after kill -9: got %v, want the lease of %s that was ACKed", ls, ip)
		}
	}

	// pool exhaustion under perfdhcp, no address twice.
	{
		// perfdhcp is a relay: its interface needs an address on the subnet.
		l.setMAC(t, "52:54:00:77:00:50")
		sh(t, "ip", "-n", l.cli, "addr", "add", "10.77.0.50/24", "dev", clientIf)
		out, _ := exec.Command("ip", "netns", "exec", l.cli, "perfdhcp", "-4", "-l", clientIf,
			"-r", "20", "-R", "20", "-p", "3", "10.77.0.1").CombinedOutput()
		ls := l.leases(t, dir)
		seen := map[string]bool{}
		pool := 0
		for _, le := range ls {
			if seen[le.IP] {
				t.Errorf("%s is leased twice: %v", le.IP, ls)
			}
			seen[le.IP] = true
			if strings.HasPrefix(le.IP, "10.77.0.10") && len(le.IP) == len("10.77.0.100") {
				pool++
			}
		}
		if pool != 4 {
			t.Errorf("got %d leases of the pool 10.77.0.100-103, want all 4: %v\nperfdhcp:\n%s", pool, ls, out)
		}
		metrics := sh(t, "ip", "netns", "exec", l.srv, "curl", "-sf", "http://127.0.0.1:8080/metrics")
		if !strings.Contains(metrics, `infrad_dhcp_pool_exhausted_total{subnet="lab"}`) {
			t.Errorf("no exhaustion counted in /metrics")
		}
	}
}

func hasLease(ls []lease, ip, mac string) bool {
	for _, l := range ls {
		if l.IP == ip && l.MAC == mac {
			return true
		}
	}
	return false
}

// TestDHCPInterfaceLosesItsAddress takes the served interface's address away under a
// running infrad: /readyz says DHCP has failed and why, the service manager restarts
// it until the address is back, and then a real client gets a lease again.
func TestDHCPInterfaceLosesItsAddress(t *testing.T) {
	testenv.NeedRoot(t, "ip", "dhclient", "curl")
	l := newLab(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "site.yaml"), fmt.Appendf(nil, labSite, filepath.Join(dir, "data")), 0o644)
	l.serveIn(t, dir)
	dhcpState := func() (string, string) {
		var rd struct {
			Services []struct {
				Name, State string
				LastError   string `json:"last_error"`
			}
		}
		out, _ := exec.Command("ip", "netns", "exec", l.srv, "curl", "-s", "http://127.0.0.1:8080/readyz").Output()
		json.Unmarshal(out, &rd)
		for _, s := range rd.Services {
			if s.Name == "dhcp" {
				return s.State, s.LastError
			}
		}
		return "", ""
	}

	sh(t, "ip", "-n", l.srv, "addr", "del", "10.77.0.1/24", "dev", "br0")
	testenv.WaitFor(t, "dhcp failed in /readyz, saying why", func() bool {
		state, why := dhcpState()
		return state == "failed" && strings.Contains(why, "br0")
	})
	sh(t, "ip", "-n", l.srv, "addr", "add", "10.77.0.1/24", "dev", "br0")
	testenv.WaitFor(t, "dhcp ready again", func() bool { state, _ := dhcpState(); return state == "ready" })

	l.setMAC(t, "52:54:00:77:00:33")
	c := l.dhclient(t, filepath.Join(dir, "after"), "after", "-d", "-1")
	testenv.WaitFor(t, "a lease after the recovery", func() bool { return c.got("BOUND") != nil })
	c.stop()
}

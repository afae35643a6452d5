package main

// Two or three boxes, end to end: each infrad node in its own network namespace, the
// nodes and a client namespace on one bridge (in a switch namespace), real clients
// (dig, perfdhcp, curl) in the client namespace. The test makes the namespaces and
// removes them; no packet leaves them.

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"

	"github.com/infrad/infrad/internal/testenv"
	"github.com/infrad/infrad/pkg/site"
	"github.com/infrad/infrad/pkg/store"
)

type clusterLab struct {
	id      string // in the namespaces' names
	sw, cli string // the switch's namespace (the bridge) and the clients'
	dir     string
	site    string // the site file every node runs
	nodes   []*clusterNode
}

type clusterNode struct {
	name, ns, addr, data string
	witness              bool
	bin                  string // the infrad it runs; "": the build under test
	p                    *proc
}

const clusterSite = `domain: lab.test
data_dir: /nonexistent
api: {listen: "127.0.0.1:8080"}
dns:
  listen: ["0.0.0.0:1053"]
  secondaries: ["10.78.0.99:5300"]
  transfer_from: [10.78.0.0/16]
  records:
    - {name: lego1, type: A, value: 127.0.0.1}
ntp: {listen: ["0.0.0.0:1123"], local_stratum: 10, chronyd: none}
ca: {listen: "127.0.0.1:8443", http01_port: 5002}
dhcp: {interfaces: [eth0], lease_time: 120s}
cluster:
  port: 7443
  nodes:
%s
subnets:
  - name: lab
    cidr: 10.78.0.0/16
    gateway: 10.78.0.254
    ranges:
      - {kind: dhcp, start: 10.78.1.1, end: 10.78.9.254}
hosts:
  - {name: cp01, ip: 10.78.0.10, mac: "52:54:00:78:00:10"}
  - {name: infra1, ip: 10.78.0.1}
  - {name: infra2, ip: 10.78.0.2}
  - {name: infra3, ip: 10.78.0.3}
`

// newClusterLab makes the namespaces for nodes named infra1, infra2, ... (the last
// one a witness when witness is set) at 10.78.0.1, .2, ..., and a client namespace
// whose interface c0 is on the same bridge.
func newClusterLab(t *testing.T, n int, witness bool) *clusterLab {
	t.Helper()
	testenv.NeedRoot(t, "ip", "dig", "curl", "perfdhcp")
	b := make([]byte, 3)
	rand.Read(b)
	id := hex.EncodeToString(b)
	l := &clusterLab{id: id, sw: "ifd-sw-" + id, dir: t.TempDir()}
	addNS(t, l.sw)
	sh(t, "ip", "-n", l.sw, "link", "add", "br0", "type", "bridge")
	sh(t, "ip", "-n", l.sw, "link", "set", "br0", "up")
	var decl []string
	for i := range n {
		node := &clusterNode{name: fmt.Sprintf("infra%d", i+1), ns: fmt.Sprintf("ifd-n%d-%s", i+1, id), addr: fmt.Sprintf("10.78.0.%d", i+1),
			witness: witness && i == n-1}
		node.data = filepath.Join(l.dir, node.name)
		addNS(t, node.ns)
		l.plug(t, node.ns, fmt.Sprintf("p%d", i+1), "eth0", node.addr)
		l.nodes = append(l.nodes, node)
		decl = append(decl, fmt.Sprintf("    - {name: %s, address: %s, witness: %v}", node.name, node.addr, node.witness))
	}
	l.cli = l.addClient(t, "c", "10.78.0.99")
	l.site = filepath.Join(l.dir, "site.yaml")
	writeFile(t, l.site, fmt.Sprintf(clusterSite, strings.Join(decl, "\n")))
	return l
}

func addNS(t *testing.T, ns string) {
	sh(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	sh(t, "ip", "-n", ns, "link", "set", "lo", "up")
}

// plug connects namespace ns to the bridge, through its interface ifname at addr.
func (l *clusterLab) plug(t *testing.T, ns, port, ifname, addr string) {
	sh(t, "ip", "-n", l.sw, "link", "add", port, "type", "veth", "peer", "name", ifname, "netns", ns)
	sh(t, "ip", "-n", l.sw, "link", "set", port, "master", "br0", "up")
	sh(t, "ip", "-n", ns, "link", "set", ifname, "up")
	sh(t, "ip", "-n", ns, "addr", "add", addr+"/16", "dev", ifname)
}

// addClient makes another client namespace on the bridge, its interface clientIf at
// addr, and returns its name.
func (l *clusterLab) addClient(t *testing.T, name, addr string) string {
	ns := fmt.Sprintf("ifd-%s-%s", name, l.id)
	addNS(t, ns)
	l.plug(t, ns, "p"+name, clientIf, addr)
	return ns
}

// start starts node (joining with token when it is given) and waits until it serves.
func (l *clusterLab) start(t *testing.T, node *clusterNode, token string) {
	t.Helper()
	verb := "serve"
	if node.witness {
		verb = "witness"
	}
	bin := binary
	if node.bin != "" {
		bin = node.bin
	}
	args := []string{"netns", "exec", node.ns, bin, verb, "-c", l.site, "--node", node.name, "--data", node.data}
	if token != "" {
		args = append(args, "--join", token)
	}
	node.p = startCmd(t, l.dir, "ip", args...)
	if node.witness {
		testenv.WaitFor(t, node.name+" a voter", func() bool {
			st, ok := l.anyStatus(t)
			return ok && slices.ContainsFunc(st.Nodes, func(n nodeStatus) bool { return n.Name == node.name && n.Voter && n.State == "follower" })
		})
		return
	}
	testenv.WaitFor(t, node.name+" ready", func() bool {
		out, err := exec.Command("ip", "netns", "exec", node.ns, "curl", "-sf", "http://127.0.0.1:8080/readyz?read=1").Output()
		return err == nil && strings.Contains(string(out), `"ready": true`)
	})
}

// kill ends node at once (SIGKILL), as a power cut would.
func (l *clusterLab) kill(node *clusterNode) {
	node.p.cmd.Process.Signal(syscall.SIGKILL)
	<-node.p.done
}

// form starts the first node and joins the others with its token.
func (l *clusterLab) form(t *testing.T) string {
	t.Helper()
	l.start(t, l.nodes[0], "")
	raw, err := os.ReadFile(filepath.Join(l.nodes[0].data, "join-token"))
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(raw))
	for _, n := range l.nodes[1:] {
		l.start(t, n, token)
	}
	testenv.WaitFor(t, "every node a voter", func() bool {
		st, ok := l.status(t, l.nodes[0])
		if !ok || st.Leader == "" {
			return false
		}
		for _, n := range st.Nodes {
			if !n.Voter || n.State == "unreachable" {
				return false
			}
		}
		return true
	})
	return token
}

type nodeStatus struct {
	Name    string
	Voter   bool
	State   string
	Applied uint64
}

type clusterStatus struct {
	Node, Leader string
	Quorum       bool
	DHCPServers  int  `json:"dhcp_servers"`
	LeaseGrants  bool `json:"lease_grants"`
	Nodes        []nodeStatus
}

// curl runs curl with the API token in node's namespace against its API.
func (l *clusterLab) curl(node *clusterNode, args ...string) (string, error) {
	token, _ := os.ReadFile(filepath.Join(node.data, "api-token"))
	args = append([]string{"netns", "exec", node.ns, "curl", "-s", "--max-time", "10", "-H", "Authorization: Bearer " + strings.TrimSpace(string(token))}, args...)
	out, err := exec.Command("ip", args...).Output()
	return string(out), err
}

func (l *clusterLab) status(t *testing.T, node *clusterNode) (clusterStatus, bool) {
	var st clusterStatus
	out, err := l.curl(node, "-f", "http://127.0.0.1:8080/api/v1/cluster")
	return st, err == nil && json.Unmarshal([]byte(out), &st) == nil
}

// anyStatus is the status as the first serving node that answers sees it.
func (l *clusterLab) anyStatus(t *testing.T) (clusterStatus, bool) {
	for _, n := range l.nodes {
		if n.witness || n.p == nil {
			continue
		}
		select {
		case <-n.p.done:
			continue
		default:
		}
		if st, ok := l.status(t, n); ok {
			return st, true
		}
	}
	return clusterStatus{}, false
}

func (l *clusterLab) node(name string) *clusterNode {
	for _, n := range l.nodes {
		if n.name == name {
			return n
		}
	}
	return nil
}

// leases is what node's API lists.
func (l *clusterLab) leases(t *testing.T, node *clusterNode) []lease {
	t.Helper()
	ls, err := l.tryLeases(node)
	if err != nil {
		t.Fatalf("leases of %s: %v", node.name, err)
	}
	return ls
}

// tryLeases is what node's API lists, or why it said nothing (a wait that asks
// faster than the API's rate limit is told to slow down).
func (l *clusterLab) tryLeases(node *clusterNode) ([]lease, error) {
	out, err := l.curl(node, "-f", "http://127.0.0.1:8080/api/v1/dhcp/leases")
	var ls []lease
	if err == nil {
		err = json.Unmarshal([]byte(out), &ls)
	}
	return ls, err
}

// putHost creates a host through node's API, and says whether it was made.
func (l *clusterLab) putHost(node *clusterNode, name, ip string) (bool, string) {
	out, err := l.curl(node, "-X", "POST", "-w", "\n%{http_code}", "http://127.0.0.1:8080/api/v1/hosts", "-d", fmt.Sprintf(`{"name":%q,"ip":%q}`, name, ip))
	return err == nil && strings.HasSuffix(out, "\n201"), out
}

// digLoop asks each of servers for cp01's address from the client namespace, over
// and over until stop is closed, counting the queries that got no right answer.
func (l *clusterLab) digLoop(servers []string, stop chan struct{}) (asked, failed *atomic.Int64, done *sync.WaitGroup) {
	asked, failed, done = &atomic.Int64{}, &atomic.Int64{}, &sync.WaitGroup{}
	for _, s := range servers {
		done.Add(1)
		go func() {
			defer done.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				out, _ := exec.Command("ip", "netns", "exec", l.cli, "dig", "@"+s, "-p", "1053", "+short", "+tries=1", "+time=2", "cp01.lab.test").Output()
				asked.Add(1)
				if strings.TrimSpace(string(out)) != "10.78.0.10" {
					failed.Add(1)
				}
			}
		}()
	}
	return asked, failed, done
}

// resolve asks for cp01 until stop is closed, trying each node in turn as a stub
// resolver with the three as name servers does, and counts the names no node
// answered.
func (l *clusterLab) resolve(stop chan struct{}, asked, unanswered *atomic.Int64) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		asked.Add(1)
		if !slices.ContainsFunc(l.nodes, func(n *clusterNode) bool { return l.dig(n.addr, "cp01.lab.test") == "10.78.0.10" }) {
			unanswered.Add(1)
		}
	}
}

// perfdhcp runs perfdhcp's four-way exchanges, broadcast from the client namespace,
// at rate a second for secs seconds, and returns its output.
func (l *clusterLab) perfdhcp(t *testing.T, rate, secs int) *exec.Cmd {
	t.Helper()
	return perfdhcpIn(t, l.cli, rate, secs)
}

// perfdhcpIn is perfdhcp from namespace ns.
func perfdhcpIn(t *testing.T, ns string, rate, secs int) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, "perfdhcp", "-4", "-l", clientIf, "-r", strconv.Itoa(rate), "-R", "100000", "-p", strconv.Itoa(secs))
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

func perfACKs(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	cmd.Wait()
	out := cmd.Stdout.(*strings.Builder).String()
	n := perfCount(out, "REQUEST-ACK", "received")
	if n < 0 {
		t.Fatalf("perfdhcp said nothing of ACKs:\n%s", out)
	}
	t.Logf("perfdhcp: %d ACKs\n%s", n, out)
	return n
}

// perfCount is a figure of perfdhcp's report: the packets of stage (DISCOVER-OFFER,
// REQUEST-ACK) sent or received; -1 when the report has none.
func perfCount(report, stage, field string) int {
	m := regexp.MustCompile(`(?s)` + stage + `.*?` + field + ` packets: (\d+)`).FindStringSubmatch(report)
	if m == nil {
		return -1
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// checkLeases fails unless every survivor lists the same leases, at least acked of
// them from the pool, and no address or client twice.
func (l *clusterLab) checkLeases(t *testing.T, survivors []*clusterNode, acked int) {
	t.Helper()
	var first []lease
	testenv.WaitFor(t, "the survivors to list the same leases", func() bool {
		first = l.leases(t, survivors[0])
		for _, s := range survivors[1:] {
			if !slices.Equal(l.leases(t, s), first) {
				return false
			}
		}
		return true
	})
	ips, macs := map[string]bool{}, map[string]bool{}
	for _, le := range first {
		if ips[le.IP] {
			t.Errorf("%s is leased twice", le.IP)
		}
		if macs[le.MAC] && !le.Declined && le.Released == 0 {
			t.Errorf("%s holds two leases", le.MAC)
		}
		ips[le.IP], macs[le.MAC] = true, true
	}
	if len(first) < acked {
		t.Errorf("perfdhcp received %d ACKs, and the survivors hold %d leases", acked, len(first))
	}
	t.Logf("%d ACKs, %d leases on every survivor", acked, len(first))
}

// TestClusterLosesItsLeader: three nodes; the leader is killed during a DHCP burst
// and a dig loop. Every ACKed lease is on both survivors, no address is held twice,
// no query to a survivor fails, and writes resume on the survivors.
func TestClusterLosesItsLeader(t *testing.T) {
	l := newClusterLab(t, 3, false)
	l.form(t)

	// A write on a follower is read back from it at once, and reaches the others.
	st, _ := l.status(t, l.nodes[0])
	var follower *clusterNode
	for _, n := range l.nodes {
		if n.name != st.Leader {
			follower = n
			break
		}
	}
	if ok, out := l.putHost(follower, "w1", "10.78.0.21"); !ok {
		t.Fatalf("a write on follower %s: %s", follower.name, out)
	}
	if out, _ := l.curl(follower, "-f", "http://127.0.0.1:8080/api/v1/hosts/w1"); !strings.Contains(out, "10.78.0.21") {
		t.Fatalf("%s does not read its own write: %s", follower.name, out)
	}
	for _, n := range l.nodes {
		testenv.WaitFor(t, "w1 in "+n.name+"'s DNS", func() bool {
			out, _ := exec.Command("ip", "netns", "exec", l.cli, "dig", "@"+n.addr, "-p", "1053", "+short", "w1.lab.test").Output()
			return strings.TrimSpace(string(out)) == "10.78.0.21"
		})
	}

	survivors := l.killDuringLoad(t, l.node(st.Leader))
	l.lego(t, survivors[1], "lego1.lab.test")
}

// killDuringLoad SIGKILLs victim during a DHCP burst and a dig loop against the other
// serving nodes, and checks that no query to them failed, that every ACKed lease is
// on each of them and none twice, and that they take writes. It returns them.
func (l *clusterLab) killDuringLoad(t *testing.T, victim *clusterNode) []*clusterNode {
	t.Helper()
	var survivors []*clusterNode
	var addrs []string
	for _, n := range l.nodes {
		if n != victim && !n.witness {
			survivors, addrs = append(survivors, n), append(addrs, n.addr)
		}
	}
	stop := make(chan struct{})
	asked, failed, digs := l.digLoop(addrs, stop)
	perf := l.perfdhcp(t, 100, 5)
	time.Sleep(2 * time.Second) // a point in the burst, not a bound on anything
	l.kill(victim)
	killed := time.Now()
	var resumed time.Duration
	testenv.WaitFor(t, "a write on a survivor", func() bool {
		ok, _ := l.putHost(survivors[0], "after-"+victim.name, "10.78.0.22")
		resumed = time.Since(killed)
		return ok
	})
	t.Logf("writes went on %s after %s's death", resumed.Round(time.Millisecond), victim.name)
	acked := perfACKs(t, perf)
	close(stop)
	digs.Wait()
	if failed.Load() > 0 {
		t.Errorf("%d of %d queries to the survivors failed", failed.Load(), asked.Load())
	}
	t.Logf("%d queries to the survivors, none failed", asked.Load())
	if acked == 0 {
		t.Fatal("perfdhcp got no ACK")
	}
	l.checkLeases(t, survivors, acked)
	return survivors
}

// TestClusterDHCPv6LosesItsLeader: three nodes serve a DHCPv6 pool; the leader is
// killed during a perfdhcp -6 burst. Every lease perfdhcp was given a Reply for is
// on both survivors, no address is held twice, and the survivors go on granting.
func TestClusterDHCPv6LosesItsLeader(t *testing.T) {
	l := newClusterLab(t, 3, false)
	site, _ := os.ReadFile(l.site)
	writeFile(t, l.site, strings.Replace(string(site), "hosts:\n", `  - name: lab6
    cidr: "fd00:78::/64"
    dhcp6: stateful
    ranges: [{kind: dhcp, start: "fd00:78::1:0", end: "fd00:78::1:ffff"}]
hosts:
`, 1))
	for i, n := range l.nodes {
		sh(t, "ip", "-n", n.ns, "addr", "add", fmt.Sprintf("fd00:78::%d/64", i+1), "dev", "eth0", "nodad")
	}
	// perfdhcp sends from the link's global address: one usable at once.
	sh(t, "ip", "netns", "exec", l.cli, "sysctl", "-qw", "net.ipv6.conf."+clientIf+".autoconf=0")
	sh(t, "ip", "-n", l.cli, "addr", "add", "fd00:78::99/64", "dev", clientIf, "nodad")
	l.form(t)
	st, _ := l.status(t, l.nodes[0])
	var survivors []*clusterNode
	for _, n := range l.nodes {
		if n.name != st.Leader {
			survivors = append(survivors, n)
		}
	}
	burst := func(secs int) int {
		cmd := exec.Command("ip", "netns", "exec", l.cli, "perfdhcp", "-6", "-l", clientIf, "-r", "100", "-R", "100000", "-p", strconv.Itoa(secs))
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if secs > 3 {
			time.Sleep(2 * time.Second) // a point in the burst, not a bound on anything
			l.kill(l.node(st.Leader))
		}
		cmd.Wait()
		if regexp.MustCompile(`non unique addresses: [1-9]`).MatchString(out.String()) {
			t.Errorf("perfdhcp saw an address given twice:\n%s", out.String())
		}
		n := perfCount(out.String(), "REQUEST-REPLY", "received")
		t.Logf("perfdhcp -6: %d Replies\n%s", n, out.String())
		return n
	}
	replied := burst(5)
	if replied <= 0 {
		t.Fatal("perfdhcp got no Reply")
	}
	l.checkLeases(t, survivors, replied)
	if more := burst(2); more <= 0 {
		t.Error("the survivors granted nothing after the leader's death")
	}
}

// TestClusterLosesAFollowerOrTheWitness: the same as the leader's death, with a
// follower of three nodes, and with the witness of two boxes.
func TestClusterLosesAFollowerOrTheWitness(t *testing.T) {
	t.Run("follower", func(t *testing.T) {
		l := newClusterLab(t, 3, false)
		l.form(t)
		st, _ := l.status(t, l.nodes[0])
		for _, n := range l.nodes {
			if n.name != st.Leader {
				l.killDuringLoad(t, n)
				return
			}
		}
	})
	t.Run("witness", func(t *testing.T) {
		l := newClusterLab(t, 3, true)
		l.form(t)
		l.killDuringLoad(t, l.nodes[2])
	})
}

// lego gets a certificate for domain from node's CA with http-01, lego running in
// node's namespace.
func (l *clusterLab) lego(t *testing.T, node *clusterNode, domain string) {
	t.Helper()
	if out, err := l.tryLego(t, node, domain); err != nil {
		t.Fatalf("lego against %s: %v\n%s", node.name, err, out)
	}
}

// tryLego is lego's attempt, with its output.
func (l *clusterLab) tryLego(t *testing.T, node *clusterNode, domain string) ([]byte, error) {
	t.Helper()
	testenv.Need(t, "lego")
	path := filepath.Join(l.dir, "lego-"+node.name)
	cmd := exec.Command("ip", "netns", "exec", node.ns, "lego", "--server", "https://127.0.0.1:8443/acme/acme/directory", "--accept-tos",
		"--email", "ops@lab.test", "--domains", domain, "--path", path, "--http", "--http.port", "127.0.0.1:5002", "run")
	cmd.Env = append(os.Environ(), "LEGO_CA_CERTIFICATES="+filepath.Join(node.data, "ca", "root.crt"))
	return cmd.CombinedOutput()
}

// offersSent is the OFFERs node's /metrics counts.
func (l *clusterLab) offersSent(t *testing.T, node *clusterNode) int {
	t.Helper()
	out, err := l.curl(node, "-f", "http://127.0.0.1:8080/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^infrad_dhcp_sent_total\{type="OFFER"\} (\d+)`).FindStringSubmatch(out)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestClusterOneOfferPerClient: while every node is up, each DISCOVER gets one OFFER
// from one node, and the nodes share the clients.
func TestClusterOneOfferPerClient(t *testing.T) {
	l := newClusterLab(t, 3, false)
	l.form(t)
	perf := l.perfdhcp(t, 100, 3)
	acked := perfACKs(t, perf)
	out := perf.Stdout.(*strings.Builder).String()
	discovers := perfCount(out, "DISCOVER-OFFER", "sent")
	total := 0
	for _, n := range l.nodes {
		offers := l.offersSent(t, n)
		t.Logf("%s sent %d offers", n.name, offers)
		if offers == 0 {
			t.Errorf("%s answered no client", n.name)
		}
		total += offers
	}
	if total != discovers {
		t.Errorf("%d DISCOVERs got %d OFFERs from the nodes together, want one each", discovers, total)
	}
	l.checkLeases(t, l.nodes, acked)

	// The exports name every serving node.
	first := l.nodes[0]
	chrony, err := exec.Command("ip", "netns", "exec", first.ns, binary, "export", "--data", first.data, "--server", first.addr, "chrony").CombinedOutput()
	if err != nil {
		t.Fatalf("infrad export chrony: %v\n%s", err, chrony)
	}
	for _, n := range l.nodes {
		if !strings.Contains(string(chrony), "server "+n.addr+" iburst\n") {
			t.Errorf("chrony.conf does not name %s:\n%s", n.name, chrony)
		}
	}

	// Every serving node is a name server of the zone, and infrad check asks each for
	// the node's name and time (cp01 stands for a node of the Kubernetes cluster).
	ns, _ := exec.Command("ip", "netns", "exec", l.cli, "dig", "@"+first.addr, "-p", "1053", "+short", "lab.test", "NS").Output()
	for _, n := range l.nodes {
		if !strings.Contains(string(ns), n.name+".lab.test.") {
			t.Errorf("the zone's NS records do not name %s:\n%s", n.name, ns)
		}
	}
	check, _ := exec.Command("ip", "netns", "exec", first.ns, binary, "check", "--server", first.addr, "--dns-port", "1053", "--ntp-port", "1123",
		"--ca-port", "8443", "--api", "http://127.0.0.1:8080", "--name", "cp01").CombinedOutput()
	for _, n := range l.nodes[1:] {
		for _, want := range []string{"ok    name from " + n.name + ".lab.test", "ok    clock of " + n.name + ".lab.test"} {
			if !strings.Contains(string(check), want) {
				t.Errorf("infrad check does not say %q:\n%s", want, check)
			}
		}
	}
}

// TestClusterZoneIsOneOnEveryNode: a host written through one node is in the zone of
// every node at once, under one SOA serial that rose; each node transfers the zone
// (AXFR) to an outside secondary and NOTIFYs it. Then a follower's backup holds the
// host, and a node that died is removed, leaving two that take writes.
func TestClusterZoneIsOneOnEveryNode(t *testing.T) {
	l := newClusterLab(t, 3, false)
	stub := &notifyStub{}
	srv := &dns.Server{PacketConn: listenPacketIn(t, l.cli, "10.78.0.99:5300"), Handler: stub}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	l.form(t)

	serial := func(n *clusterNode) uint64 {
		out, _ := exec.Command("ip", "netns", "exec", l.cli, "dig", "@"+n.addr, "-p", "1053", "+short", "+tries=1", "+time=2", "lab.test", "SOA").Output()
		fields := strings.Fields(string(out))
		if len(fields) < 3 {
			t.Fatalf("no SOA from %s: %q", n.name, fields)
		}
		if primary := l.dig(n.addr, fields[0]); !slices.ContainsFunc(l.nodes, func(n *clusterNode) bool { return n.addr == primary }) {
			t.Errorf("the SOA's primary %s resolves to %q on %s, want a node's address", fields[0], primary, n.name)
		}
		v, _ := strconv.ParseUint(fields[2], 10, 32)
		return v
	}
	before := serial(l.nodes[0])
	if ok, out := l.putHost(l.nodes[2], "web9", "10.78.0.50"); !ok {
		t.Fatalf("a host through %s: %s", l.nodes[2].name, out)
	}
	var serials []uint64
	for _, n := range l.nodes {
		testenv.WaitFor(t, "web9 on "+n.name, func() bool { return l.dig(n.addr, "web9.lab.test") == "10.78.0.50" })
		serials = append(serials, serial(n))
		axfr, _ := exec.Command("ip", "netns", "exec", l.cli, "dig", "@"+n.addr, "-p", "1053", "+tries=1", "+time=5", "lab.test", "AXFR").Output()
		if !regexp.MustCompile(`(?m)^web9\.lab\.test\.\s+\d+\s+IN\s+A\s+10\.78\.0\.50$`).Match(axfr) {
			t.Errorf("the zone %s transfers lacks web9:\n%s", n.name, axfr)
		}
	}
	if slices.Min(serials) != slices.Max(serials) || serials[0] <= before {
		t.Errorf("SOA serials %v on the three nodes after the write, %d before: want one serial, risen", serials, before)
	}
	testenv.WaitFor(t, "a NOTIFY of lab.test from every node", func() bool {
		from := map[string]bool{}
		for _, n := range stub.notifiers("lab.test.") {
			from[n] = true
		}
		return from["10.78.0.1"] && from["10.78.0.2"] && from["10.78.0.3"]
	})

	// An import through a node that may not lead is one change, and every node serves
	// it: the reservation, the host's name and its PTR.
	conf := filepath.Join(l.dir, "dnsmasq.conf")
	os.WriteFile(conf, []byte("domain=lab.test\nhost-record=nas9.lab.test,10.78.0.60\ndhcp-host=52:54:00:78:00:61,10.78.0.61,tv9\n"), 0o644)
	if out, code := runImport(t, l.nodes[1].ns, "dnsmasq", conf, "--api", "--data", l.nodes[1].data); code != 0 || !strings.Contains(out, "2 hosts") {
		t.Fatalf("an import through %s: exit %d\n%s", l.nodes[1].name, code, out)
	}
	for _, n := range l.nodes {
		testenv.WaitFor(t, "the import on "+n.name, func() bool {
			return l.dig(n.addr, "nas9.lab.test") == "10.78.0.60" && l.dig(n.addr, "tv9.lab.test") == "10.78.0.61"
		})
		if ptr, _ := exec.Command("ip", "netns", "exec", l.cli, "dig", "@"+n.addr, "-p", "1053", "+short", "-x", "10.78.0.60").Output(); strings.TrimSpace(string(ptr)) != "nas9.lab.test." {
			t.Errorf("the PTR of 10.78.0.60 on %s: %q", n.name, ptr)
		}
	}

	// A named token made through one node signs requests on every node, and a revoke
	// through another refuses it everywhere; the change log is one on every node.
	out, err := l.curl(l.nodes[2], "-X", "POST", "http://127.0.0.1:8080/api/v1/tokens", "-d", `{"name":"ops"}`)
	var tok struct{ Token string }
	if err != nil || json.Unmarshal([]byte(out), &tok) != nil || tok.Token == "" {
		t.Fatalf("a token through %s: %v %s", l.nodes[2].name, err, out)
	}
	codeWith := func(n *clusterNode, token string) string {
		out, _ := exec.Command("ip", "netns", "exec", n.ns, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
			"-H", "Authorization: Bearer "+token, "http://127.0.0.1:8080/api/v1/hosts").Output()
		return string(out)
	}
	for _, n := range l.nodes {
		testenv.WaitFor(t, "the token ops on "+n.name, func() bool { return codeWith(n, tok.Token) == "200" })
	}
	if out, err := l.curl(l.nodes[0], "-X", "DELETE", "-w", "%{http_code}", "http://127.0.0.1:8080/api/v1/tokens/ops"); err != nil || out != "204" {
		t.Fatalf("revoke ops through %s: %v %s", l.nodes[0].name, err, out)
	}
	if got := codeWith(l.nodes[0], tok.Token); got != "401" {
		t.Errorf("ops on %s right after its revoke there: %s, want 401", l.nodes[0].name, got)
	}
	for _, n := range l.nodes {
		testenv.WaitFor(t, "ops refused on "+n.name, func() bool { return codeWith(n, tok.Token) == "401" })
	}
	logOf := func(n *clusterNode) string {
		out, _ := l.curl(n, "http://127.0.0.1:8080/api/v1/changes?limit=1000")
		return out
	}
	defer func() {
		if t.Failed() {
			for _, n := range l.nodes {
				t.Logf("%s's change log:\n%s", n.name, logOf(n))
			}
		}
	}()
	testenv.WaitFor(t, "one change log on the three nodes", func() bool {
		a := logOf(l.nodes[0])
		return strings.Contains(a, `"DeleteToken"`) && strings.Contains(a, `"web9"`) && a == logOf(l.nodes[1]) && a == logOf(l.nodes[2])
	})

	l.checkOneSSHCA(t)

	// A backup taken from a follower holds what was written through another node.
	st, _ := l.status(t, l.nodes[0])
	follower := l.nodes[0]
	if st.Leader == follower.name {
		follower = l.nodes[1]
	}
	backup := filepath.Join(l.dir, "backup.db")
	if out, err := exec.Command("ip", "netns", "exec", follower.ns, binary, "backup", "--api", "http://127.0.0.1:8080", "--data", follower.data, backup).CombinedOutput(); err != nil {
		t.Fatalf("infrad backup from %s: %v\n%s", follower.name, err, out)
	}
	copied, err := store.Open(store.Options{Path: backup})
	if err != nil {
		t.Fatal(err)
	}
	var inBackup bool
	copied.View(func(tx *store.Tx) error {
		_, inBackup, err = store.Get[site.Host](tx, store.BucketHosts, "web9")
		return err
	})
	copied.Close()
	if !inBackup {
		t.Errorf("the backup from %s lacks web9 (%v)", follower.name, err)
	}

	// A node that died for good is taken out: the other two are the cluster, and
	// take writes.
	gone, from := l.nodes[2], l.nodes[0]
	if st.Leader == gone.name {
		gone, from = l.nodes[0], l.nodes[1]
	}
	l.kill(gone)
	if out, err := exec.Command("ip", "netns", "exec", from.ns, binary, "cluster", "--api", "http://127.0.0.1:8080", "--data", from.data, "remove", gone.name).CombinedOutput(); err != nil {
		t.Fatalf("infrad cluster remove %s: %v\n%s", gone.name, err, out)
	}
	testenv.WaitFor(t, gone.name+" no longer a voter, a leader among the others", func() bool {
		st, ok := l.status(t, from)
		if !ok || !st.Quorum || st.Leader == "" || st.Leader == gone.name {
			return false
		}
		for _, n := range st.Nodes {
			if n.Name == gone.name && n.Voter {
				return false
			}
		}
		return true
	})
	if ok, out := l.putHost(from, "web10", "10.78.0.51"); !ok {
		t.Errorf("a write after the removal: %s", out)
	}
}

// checkOneSSHCA asks every node at once for the SSH CA's keys, which the first ask
// makes: every node gives the same, signs a user certificate with them, and serves
// the same KRL once one node revokes what another signed.
func (l *clusterLab) checkOneSSHCA(t *testing.T) {
	t.Helper()
	keys := make([]string, len(l.nodes))
	var wg sync.WaitGroup
	for i, n := range l.nodes {
		wg.Go(func() {
			out, err := l.curl(n, "-f", "http://127.0.0.1:8080/api/v1/ca/ssh")
			var k struct{ Host, User string }
			if err == nil && json.Unmarshal([]byte(out), &k) == nil {
				keys[i] = k.Host + " " + k.User
			}
		})
	}
	wg.Wait()
	if keys[0] == "" || len(slices.Compact(slices.Clone(keys))) != 1 {
		t.Fatalf("the SSH CA's keys, asked of the three nodes at once: %q, want one pair", keys)
	}
	userCA, _, _, _, err := ssh.ParseAuthorizedKey([]byte(strings.Fields(keys[0])[2] + " " + strings.Fields(keys[0])[3]))
	if err != nil {
		t.Fatal(err)
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(priv)
	body, _ := json.Marshal(map[string]any{"public_key": string(ssh.MarshalAuthorizedKey(signer.PublicKey())), "principals": []string{"ops"}, "hours": 1})
	var serials []uint64
	for _, n := range l.nodes {
		out, err := l.curl(n, "-f", "-X", "POST", "http://127.0.0.1:8080/api/v1/ca/ssh/users", "-d", string(body))
		var got struct{ Certificate string }
		if err != nil || json.Unmarshal([]byte(out), &got) != nil {
			t.Fatalf("a user certificate from %s: %v %s", n.name, err, out)
		}
		k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(got.Certificate))
		cert, ok := k.(*ssh.Certificate)
		if err != nil || !ok || ssh.FingerprintSHA256(cert.SignatureKey) != ssh.FingerprintSHA256(userCA) {
			t.Fatalf("%s's user certificate is not signed by the user CA every node gives: %v %s", n.name, err, got.Certificate)
		}
		serials = append(serials, cert.Serial)
	}
	krlOf := func(n *clusterNode) string {
		out, _ := l.curl(n, "-f", "http://127.0.0.1:8080/api/v1/ca/ssh/krl")
		return out
	}
	before := krlOf(l.nodes[0])
	if out, err := l.curl(l.nodes[2], "-f", "-X", "POST", "http://127.0.0.1:8080/api/v1/ca/ssh/revoke", "-d", fmt.Sprintf(`{"serial": "%d"}`, serials[0])); err != nil {
		t.Fatalf("revoke through %s what %s signed: %v %s", l.nodes[2].name, l.nodes[0].name, err, out)
	}
	testenv.WaitFor(t, "one KRL with the revocation on the three nodes", func() bool {
		a := krlOf(l.nodes[0])
		return a != before && a == krlOf(l.nodes[1]) && a == krlOf(l.nodes[2])
	})
}

// listenPacketIn opens a UDP socket at addr in the network namespace ns.
func listenPacketIn(t *testing.T, ns, addr string) net.PacketConn {
	t.Helper()
	var pc net.PacketConn
	var err error
	inNetns(t, ns, func() { pc, err = net.ListenPacket("udp", addr) })
	if err != nil {
		t.Fatal(err)
	}
	return pc
}

// inNetns runs fn in the network namespace ns: the test's own thread enters it, and
// leaves it after. What fn opens (sockets) stays in ns.
func inNetns(t *testing.T, ns string, fn func()) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	defer self.Close()
	target, err := os.Open("/run/netns/" + ns)
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		t.Fatal(err)
	}
	fn()
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
		panic(err) // this thread is in the wrong namespace: better no test process than a wrong one
	}
}

// dora runs one DHCP exchange of the client with mac: broadcast when server is "",
// else relayed (giaddr: the client namespace's address) to the node at server alone.
// It returns how many OFFERs and ACKs perfdhcp received.
func (l *clusterLab) dora(t *testing.T, mac, server string) (offers, acks int) {
	t.Helper()
	args := []string{"netns", "exec", l.cli, "perfdhcp", "-4", "-l", clientIf, "-R", "1", "-b", "mac=" + mac, "-r", "1", "-p", "2", "-W", "1000000"}
	if server != "" {
		args = append(args, server)
	}
	out, _ := exec.Command("ip", args...).CombinedOutput()
	offers, acks = perfCount(string(out), "DISCOVER-OFFER", "received"), perfCount(string(out), "REQUEST-ACK", "received")
	if offers < 0 || acks < 0 {
		t.Logf("perfdhcp:\n%s", out)
	}
	return max(offers, 0), max(acks, 0)
}

// partition cuts node off from the other nodes (its packets to them are dropped),
// leaving the client namespace's path to it; heal undoes it.
func (l *clusterLab) partition(t *testing.T, node *clusterNode, cut bool) {
	t.Helper()
	op := "add"
	if !cut {
		op = "del"
	}
	for _, n := range l.nodes {
		if n != node {
			sh(t, "ip", "-n", node.ns, "route", op, "blackhole", n.addr+"/32")
		}
	}
}

func (l *clusterLab) dig(server, name string) string {
	out, _ := exec.Command("ip", "netns", "exec", l.cli, "dig", "@"+server, "-p", "1053", "+short", "+tries=1", "+time=2", name).Output()
	return strings.TrimSpace(string(out))
}

// TestClusterPartition: a node cut off from the others keeps answering DNS, its
// reservations and the leases it holds, grants nothing new and refuses writes saying
// why; healed, it catches up with what the others wrote meanwhile.
func TestClusterPartition(t *testing.T) {
	l := newClusterLab(t, 3, false)
	l.form(t)
	const held, fresh = "52:54:00:78:00:77", "52:54:00:78:00:88"
	if _, acks := l.dora(t, held, ""); acks != 1 {
		t.Fatal("no lease before the partition")
	}
	cut := l.nodes[0] // the first node, the leader as it bootstrapped
	l.partition(t, cut, true)
	testenv.WaitFor(t, cut.name+" to see it has no quorum", func() bool {
		st, ok := l.status(t, cut)
		return ok && !st.Quorum
	})
	if got := l.dig(cut.addr, "cp01.lab.test"); got != "10.78.0.10" {
		t.Errorf("the cut-off node answers cp01 with %q", got)
	}
	out, _ := l.curl(cut, "-X", "POST", "-w", "\n%{http_code}", "http://127.0.0.1:8080/api/v1/hosts", "-d", `{"name":"w9","ip":"10.78.0.29"}`)
	if !strings.HasSuffix(out, "\n503") || !strings.Contains(out, `"no_quorum"`) || !strings.Contains(out, "majority") {
		t.Errorf("a write on the cut-off node: %s", out)
	}
	if out, _ := l.curl(cut, "-w", "\n%{http_code}", "http://127.0.0.1:8080/readyz"); !strings.Contains(out, `"quorum": false`) || !strings.HasSuffix(out, "\n503") {
		t.Errorf("/readyz on the cut-off node: %s, want 503 saying the quorum is lost", out)
	}
	if out, _ := l.curl(cut, "-w", "\n%{http_code}", "http://127.0.0.1:8080/readyz?read=1"); !strings.HasSuffix(out, "\n200") {
		t.Errorf("/readyz?read=1 on the cut-off node, which still answers DNS: %s, want 200", out)
	}
	if offers, acks := l.dora(t, "52:54:00:78:00:10", cut.addr); offers != 1 || acks != 1 {
		t.Errorf("the reservation got %d OFFERs and %d ACKs from the cut-off node, want 1 and 1", offers, acks)
	}
	if offers, acks := l.dora(t, held, cut.addr); offers != 1 || acks != 1 {
		t.Errorf("the held lease got %d OFFERs and %d ACKs from the cut-off node, want 1 and 1", offers, acks)
	}
	if offers, _ := l.dora(t, fresh, cut.addr); offers != 0 {
		t.Errorf("the cut-off node offered a new client an address")
	}
	if out, err := l.tryLego(t, cut, "lego1.lab.test"); err == nil || !strings.Contains(string(out), "503") {
		t.Errorf("the cut-off node's CA, without the quorum: want a 503, got %v\n%s", err, out)
	}

	// The others go on, and write.
	others := l.nodes[1:]
	testenv.WaitFor(t, "a write on the majority", func() bool { ok, _ := l.putHost(others[0], "w3", "10.78.0.23"); return ok })
	l.partition(t, cut, false)
	testenv.WaitFor(t, cut.name+" to catch up", func() bool { return l.dig(cut.addr, "w3.lab.test") == "10.78.0.23" })
	testenv.WaitFor(t, cut.name+" to take writes again", func() bool { ok, _ := l.putHost(cut, "w4", "10.78.0.24"); return ok })
	l.checkLeases(t, l.nodes, 1)
}

// TestClusterTwoBoxesAndAWitness: two serving nodes and a witness; either box may
// die, or the leader be cut off, and the other goes on serving and writing, and
// leading: the witness never keeps the leadership, and holds no key of the CA's.
func TestClusterTwoBoxesAndAWitness(t *testing.T) {
	l := newClusterLab(t, 3, true)
	token := l.form(t)
	a, b := l.nodes[0], l.nodes[1]
	for i, pair := range [][2]*clusterNode{{a, b}, {b, a}} {
		dead, alive := pair[0], pair[1]
		l.kill(dead)
		name := fmt.Sprintf("x%d", i)
		testenv.WaitFor(t, "a write on "+alive.name+" with "+dead.name+" dead", func() bool {
			ok, _ := l.putHost(alive, name, fmt.Sprintf("10.78.0.%d", 40+i))
			return ok
		})
		if got := l.dig(alive.addr, name+".lab.test"); got != fmt.Sprintf("10.78.0.%d", 40+i) {
			t.Errorf("%s answers %s with %q", alive.name, name, got)
		}
		// The witness only votes: if it won the election, it hands the lead over.
		testenv.WaitFor(t, "the leadership on "+alive.name+", not the witness", func() bool {
			st, ok := l.status(t, alive)
			return ok && st.Leader == alive.name
		})
		if _, acks := l.dora(t, fmt.Sprintf("52:54:00:78:01:%02d", i), ""); acks != 1 {
			t.Errorf("no lease from %s with %s dead", alive.name, dead.name)
		}
		l.start(t, dead, token) // back, with its state: the token is not used again
		testenv.WaitFor(t, dead.name+" to catch up", func() bool { return l.dig(dead.addr, name+".lab.test") != "" })
	}
	// The witness serves nothing, and holds no key of the CA's, no API token, no join
	// token: only its own certificate and key, and the root's certificate.
	witness := l.nodes[2]
	if got := l.dig(witness.addr, "cp01.lab.test"); strings.Contains(got, "10.78.0.10") {
		t.Errorf("the witness answered DNS: %q", got)
	}
	for _, f := range []string{"ca/root.key", "ca/intermediate.key", "api-token", "join-token"} {
		if _, err := os.Stat(filepath.Join(witness.data, f)); err == nil {
			t.Errorf("the witness holds %s", f)
		}
	}
	for _, f := range []string{"ca/root.crt", "ca/node.crt", "ca/node.key"} {
		if _, err := os.Stat(filepath.Join(witness.data, f)); err != nil {
			t.Errorf("the witness lacks its %s: %v", f, err)
		}
	}
	// Restarted, it is a voter again with its own certificate.
	l.kill(witness)
	l.start(t, witness, "")

	// The leader cut off from the others: the other box leads, not the witness,
	// whichever wins the election.
	st, _ := l.anyStatus(t)
	leader, other := l.node(st.Leader), a
	if leader == a {
		other = b
	}
	l.partition(t, leader, true)
	testenv.WaitFor(t, "the leadership on "+other.name+" with "+leader.name+" cut off", func() bool {
		st, ok := l.status(t, other)
		return ok && st.Quorum && st.Leader == other.name
	})
	l.partition(t, leader, false)
	testenv.WaitFor(t, leader.name+" back with the quorum", func() bool {
		st, ok := l.status(t, leader)
		return ok && st.Quorum
	})
	testenv.WaitFor(t, "a box, not the witness, leading after the partition healed", func() bool {
		st, ok := l.status(t, other)
		return ok && st.Leader != "" && st.Leader != witness.name
	})
	l.checkLeases(t, []*clusterNode{a, b}, 2)
}

// TestClusterRollingRestart: each node in turn is stopped and started again while
// perfdhcp and a resolver (which tries each node in turn, as a stub resolver with
// three name servers does) run: no ACKed lease is lost, and no name goes unanswered.
func TestClusterRollingRestart(t *testing.T) {
	l := newClusterLab(t, 3, false)
	l.form(t)
	stop := make(chan struct{})
	var asked, unanswered atomic.Int64
	var resolver sync.WaitGroup
	resolver.Go(func() { l.resolve(stop, &asked, &unanswered) })
	perf := l.perfdhcp(t, 50, 20)
	for _, n := range l.nodes {
		n.p.cmd.Process.Signal(syscall.SIGTERM)
		if code := n.p.wait(t, 15*time.Second); code != 0 {
			t.Errorf("%s stopped with %d", n.name, code)
		}
		l.start(t, n, "")
		testenv.WaitFor(t, n.name+" back among the voters", func() bool {
			st, ok := l.status(t, n)
			return ok && st.Quorum
		})
	}
	acked := perfACKs(t, perf)
	close(stop)
	resolver.Wait()
	if unanswered.Load() > 0 {
		t.Errorf("%d of %d names went unanswered by every node", unanswered.Load(), asked.Load())
	}
	t.Logf("%d names asked during the restarts, every one answered", asked.Load())
	l.checkLeases(t, l.nodes, acked)
}

// TestClusterRecoversFromALostQuorum: two of three nodes are lost for good; the
// survivor, stopped, is made the only voter with infrad cluster recover, serves and
// takes writes again with everything it had, and a new node joins it.
func TestClusterRecoversFromALostQuorum(t *testing.T) {
	l := newClusterLab(t, 3, false)
	token := l.form(t)
	survivor := l.nodes[0]
	if ok, out := l.putHost(survivor, "w1", "10.78.0.21"); !ok {
		t.Fatal(out)
	}
	l.kill(l.nodes[1])
	l.kill(l.nodes[2])
	testenv.WaitFor(t, "the survivor to lose the quorum", func() bool {
		st, ok := l.status(t, survivor)
		return ok && !st.Quorum
	})
	if ok, _ := l.putHost(survivor, "w2", "10.78.0.22"); ok {
		t.Fatal("a write without the quorum was made")
	}
	survivor.p.cmd.Process.Signal(syscall.SIGTERM)
	survivor.p.wait(t, 15*time.Second)
	if out, err := exec.Command("ip", "netns", "exec", survivor.ns, binary, "cluster", "recover", "-c", l.site, "--node", survivor.name, "--data", survivor.data).CombinedOutput(); err != nil {
		t.Fatalf("infrad cluster recover: %v\n%s", err, out)
	}
	l.start(t, survivor, "")
	if ok, out := l.putHost(survivor, "w2", "10.78.0.22"); !ok {
		t.Fatalf("a write after the recovery: %s", out)
	}
	if got := l.dig(survivor.addr, "w1.lab.test"); got != "10.78.0.21" {
		t.Errorf("the recovered node lost w1: %q", got)
	}
	// A replacement for infra2 joins from an empty data directory.
	fresh := l.nodes[1]
	if err := os.RemoveAll(fresh.data); err != nil {
		t.Fatal(err)
	}
	l.start(t, fresh, token)
	testenv.WaitFor(t, "the new node to serve what the cluster holds", func() bool {
		return l.dig(fresh.addr, "w2.lab.test") == "10.78.0.22" && l.dig(fresh.addr, "w1.lab.test") == "10.78.0.21"
	})

	// infra3 comes back on its old data: the recovery left it out, so it is evicted,
	// says so, and serves nothing from its store, which will never catch up.
	old := l.nodes[2]
	old.p = startCmd(t, l.dir, "ip", "netns", "exec", old.ns, binary, "serve", "-c", l.site, "--node", old.name, "--data", old.data)
	testenv.WaitFor(t, old.name+" to say it is no longer a member", func() bool {
		out, _ := l.curl(old, "-w", "\n%{http_code}", "http://127.0.0.1:8080/readyz?read=1")
		return strings.HasSuffix(out, "\n503") && strings.Contains(out, `"evicted": "this node is no longer a member`)
	})
	if !strings.Contains(old.p.output.String(), "no longer a member of the cluster") {
		t.Errorf("the evicted node's log does not say so")
	}
	out, _ := exec.Command("ip", "netns", "exec", l.cli, "dig", "@"+old.addr, "-p", "1053", "+tries=1", "+time=2", "w1.lab.test").Output()
	if !strings.Contains(string(out), "status: SERVFAIL") {
		t.Errorf("the evicted node answered from its store:\n%s", out)
	}
	if offers, _ := l.dora(t, "52:54:00:78:00:99", old.addr); offers != 0 {
		t.Errorf("the evicted node offered an address")
	}
}

// TestClusterFromOneBox: a box that served its site alone becomes the first node of
// a cluster with its data, and a second node joins it.
func TestClusterFromOneBox(t *testing.T) {
	l := newClusterLab(t, 2, false)
	first, second := l.nodes[0], l.nodes[1]
	site, _ := os.ReadFile(l.site)
	alone := regexp.MustCompile(`(?s)cluster:.*?\nsubnets:`).ReplaceAllString(string(site), "subnets:")
	aloneSite := filepath.Join(l.dir, "alone.yaml")
	writeFile(t, aloneSite, alone)
	first.p = startCmd(t, l.dir, "ip", "netns", "exec", first.ns, binary, "serve", "-c", aloneSite, "--data", first.data)
	testenv.WaitFor(t, "the box alone ready", func() bool {
		out, err := exec.Command("ip", "netns", "exec", first.ns, "curl", "-sf", "http://127.0.0.1:8080/readyz").Output()
		return err == nil && strings.Contains(string(out), `"ready": true`)
	})
	if ok, out := l.putHost(first, "w1", "10.78.0.21"); !ok {
		t.Fatal(out)
	}
	first.p.cmd.Process.Signal(syscall.SIGTERM)
	first.p.wait(t, 15*time.Second)

	l.start(t, first, "")
	if got := l.dig(first.addr, "w1.lab.test"); got != "10.78.0.21" {
		t.Fatalf("the first node lost w1: %q", got)
	}
	raw, err := os.ReadFile(filepath.Join(first.data, "join-token"))
	if err != nil {
		t.Fatal(err)
	}
	l.start(t, second, strings.TrimSpace(string(raw)))
	testenv.WaitFor(t, "the second node to serve the box's data", func() bool { return l.dig(second.addr, "w1.lab.test") == "10.78.0.21" })
	if ok, out := l.putHost(second, "w2", "10.78.0.22"); !ok {
		t.Fatalf("a write on the second node: %s", out)
	}
}

// TestClusterRacesForOneAddress: two clients, on two nodes, ask for the same address
// at the same moment, round after round: exactly one gets it, and every node agrees
// which.
func TestClusterRacesForOneAddress(t *testing.T) {
	l := newClusterLab(t, 3, false)
	l.form(t)
	a, b := l.nodes[1], l.nodes[2]
	for round := range 25 {
		ip := fmt.Sprintf("10.78.0.%d", 100+round) // outside the DHCP range
		names := [2]string{fmt.Sprintf("a%d", round), fmt.Sprintf("b%d", round)}
		var won [2]bool
		var wg sync.WaitGroup
		for i, n := range []*clusterNode{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				won[i], _ = l.putHost(n, names[i], ip)
			}()
		}
		wg.Wait()
		if won[0] == won[1] {
			t.Fatalf("round %d: %s on %s got it %v, %s on %s got it %v: want exactly one", round, names[0], a.name, won[0], names[1], b.name, won[1])
		}
		winner := names[0]
		if won[1] {
			winner = names[1]
		}
		for _, n := range l.nodes {
			testenv.WaitFor(t, n.name+" to name the winner", func() bool {
				return l.dig(n.addr, winner+".lab.test") == ip
			})
		}
	}
}

package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/infrad/infrad/internal/testenv"
)

// notifyStub is a secondary that only records the NOTIFYs it gets, and from where,
// and acknowledges them.
type notifyStub struct {
	mu    sync.Mutex
	zones []string
	from  []string // the sender of each, by address
}

func (n *notifyStub) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	if r.Opcode == dns.OpcodeNotify && len(r.Question) == 1 {
		n.mu.Lock()
		n.zones = append(n.zones, r.Question[0].Name)
		host, _, _ := net.SplitHostPort(w.RemoteAddr().String())
		n.from = append(n.from, host)
		n.mu.Unlock()
	}
	m := new(dns.Msg).SetReply(r)
	m.Authoritative = true
	w.WriteMsg(m)
}

func (n *notifyStub) got() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.zones)
}

// notifiers are the addresses that sent a NOTIFY of zone.
func (n *notifyStub) notifiers(zone string) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for i, z := range n.zones {
		if z == zone {
			out = append(out, n.from[i])
		}
	}
	return out
}

// TestNotifyOnStartAndQuietReload: the secondaries get a NOTIFY for every zone as soon
// as infrad starts; a SIGHUP with an unchanged site file raises no serial and sends no
// NOTIFY; a change sends one.
func TestNotifyOnStartAndQuietReload(t *testing.T) {
	stub := &notifyStub{}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: stub}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })

	dir := t.TempDir()
	api, dnsPort := testenv.FreePort(t), testenv.FreePort(t)
	site := fmt.Sprintf(`domain: k8s.example.com
data_dir: %s
api: {listen: "127.0.0.1:%d"}
dns: {listen: ["127.0.0.1:%d"], secondaries: ["%s"]}
ntp: {listen: ["127.0.0.1:%d"], local_stratum: 10, chronyd: none}
ca: {listen: "127.0.0.1:%d"}
subnets:
  - {name: vm, cidr: 10.0.40.0/24}
hosts:
  - {name: cp01, ip: 10.0.40.10}
`, filepath.Join(dir, "data"), api, dnsPort, pc.LocalAddr(), testenv.FreePort(t), testenv.FreePort(t))
	path := filepath.Join(dir, "site.yaml")
	os.WriteFile(path, []byte(site), 0o644)
	p := start(t, dir, "serve", "-c", path)
	base := fmt.Sprintf("http://127.0.0.1:%d", api)
	waitReady(t, base)

	zones := []string{"40.0.10.in-addr.arpa.", "k8s.example.com."}
	testenv.WaitFor(t, "a NOTIFY of every zone at start", func() bool {
		got := stub.got()
		slices.Sort(got)
		return slices.Equal(slices.Compact(got), zones)
	})
	serial := func() uint32 {
		r, err := dns.Exchange(new(dns.Msg).SetQuestion("k8s.example.com.", dns.TypeSOA), fmt.Sprintf("127.0.0.1:%d", dnsPort))
		if err != nil || len(r.Answer) != 1 {
			t.Fatalf("SOA: %v %v", r, err)
		}
		return r.Answer[0].(*dns.SOA).Serial
	}
	before, notified := serial(), len(stub.got())

	p.cmd.Process.Signal(syscall.SIGHUP)
	testenv.WaitFor(t, "the reload", func() bool { return strings.Contains(p.output.String(), "site reloaded") })
	time.Sleep(500 * time.Millisecond) // ten times the NOTIFY coalescing window: a NOTIFY would be here
	if after := serial(); after != before {
		t.Errorf("an unchanged site file raised the serial from %d to %d", before, after)
	}
	if n := len(stub.got()); n != notified {
		t.Errorf("an unchanged site file sent %d NOTIFYs", n-notified)
	}

	os.WriteFile(path, []byte(strings.Replace(site, "hosts:\n", "hosts:\n  - {name: cp02, ip: 10.0.40.11}\n", 1)), 0o644)
	p.cmd.Process.Signal(syscall.SIGHUP)
	testenv.WaitFor(t, "a NOTIFY after a change", func() bool { return len(stub.got()) > notified })
	if after := serial(); after == before {
		t.Errorf("a new host left the serial at %d", before)
	}
}

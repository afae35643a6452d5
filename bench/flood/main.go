// Command flood sends a server requests from many different clients, each client
// once, to fill the server's per-client tables: bench/flood.sh runs it against each of
// infrad's rate limits and reports how much memory each flood cost.
//
//	ntp, dns   UDP from spoofed loopback sources 127.0.0.0/8 (a raw socket; root)
//	dhcp-mac   DHCPDISCOVERs, each from a new MAC, unicast to the server
//	dhcp-relay relayed DHCPDISCOVERs, each from a new relay address (giaddr)
//	api        an HTTP request per TCP connection, each from a new loopback address
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

func main() {
	kind := flag.String("kind", "ntp", "ntp, dns, dhcp-mac, dhcp-relay or api")
	to := flag.String("to", "127.0.0.1:123", "the server's address and port")
	count := flag.Int("count", 300000, "clients, one request each")
	name := flag.String("name", "example.", "the name a DNS query asks for")
	flag.Parse()

	server, err := netip.ParseAddrPort(*to)
	if err != nil {
		fail(err)
	}
	start := time.Now()
	switch *kind {
	case "ntp":
		ntp := make([]byte, 48)
		ntp[0] = 0x23 // version 4, client
		err = spoof(server, *count, func(int) []byte { return ntp })
	case "dns":
		q := new(dns.Msg).SetQuestion(dns.Fqdn(*name), dns.TypeA)
		wire, perr := q.Pack()
		if perr != nil {
			fail(perr)
		}
		err = spoof(server, *count, func(i int) []byte {
			binary.BigEndian.PutUint16(wire, uint16(i))
			return wire
		})
	case "dhcp-mac", "dhcp-relay":
		err = dhcp(server, *count, *kind == "dhcp-relay")
	case "api":
		err = api(server, *count)
	default:
		err = fmt.Errorf("no kind %q", *kind)
	}
	if err != nil {
		fail(err)
	}
	d := time.Since(start)
	fmt.Printf("%s: %d clients in %.1f s (%.0f a second)\n", *kind, *count, d.Seconds(), float64(*count)/d.Seconds())
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "flood:", err)
	os.Exit(1)
}

// client is the i-th client's address: 127.0.0.2 onwards, through 127.255.255.254.
func client(i int) [4]byte {
	n := uint32(i + 2)
	return [4]byte{127, byte(n >> 16), byte(n >> 8), byte(n)}
}

// spoof sends count UDP datagrams to server from a different loopback source each,
// through a raw socket that writes its own IPv4 header (the kernel fills in the
// header's checksum and length; a UDP checksum of 0 is none).
func spoof(server netip.AddrPort, count int, payload func(i int) []byte) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW)
	if err != nil {
		return fmt.Errorf("a raw socket (root only): %w", err)
	}
	defer unix.Close(fd)
	dst := &unix.SockaddrInet4{Addr: server.Addr().As4()}
	pkt := make([]byte, 0, 1500)
	for i := range count {
		p := payload(i)
		src := client(i)
		pkt = pkt[:28+len(p)]
		ip := pkt[:20]
		clear(ip)
		ip[0] = 0x45 // version 4, a 5-word header
		ip[8] = 64   // TTL
		ip[9] = unix.IPPROTO_UDP
		copy(ip[12:16], src[:])
		copy(ip[16:20], dst.Addr[:])
		udp := pkt[20:28]
		binary.BigEndian.PutUint16(udp[0:], 40000+uint16(i%20000))
		binary.BigEndian.PutUint16(udp[2:], server.Port())
		binary.BigEndian.PutUint16(udp[4:], uint16(8+len(p)))
		binary.BigEndian.PutUint16(udp[6:], 0)
		copy(pkt[28:], p)
		for {
			err := unix.Sendto(fd, pkt, 0, dst)
			if err == nil {
				break
			}
			if err != unix.ENOBUFS && err != unix.EAGAIN {
				return err
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	return nil
}

// dhcp sends count DHCPDISCOVERs to server from a plain socket: each from a new MAC,
// or (relays) relayed by a new relay address, from port 67 as relays send.
func dhcp(server netip.AddrPort, count int, relays bool) error {
	laddr := &net.UDPAddr{}
	if relays {
		laddr.Port = 67
	}
	conn, err := net.ListenUDP("udp4", laddr)
	if err != nil {
		return err
	}
	defer conn.Close()
	to := net.UDPAddrFromAddrPort(server)
	for i := range count {
		mac := net.HardwareAddr{0x02, 0xf1, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}
		m, err := dhcpv4.NewDiscovery(mac)
		if err != nil {
			return err
		}
		if relays {
			relay := client(i)
			m.GatewayIPAddr = net.IP(relay[:])
			m.HopCount = 1
		}
		for {
			_, err = conn.WriteTo(m.ToBytes(), to)
			if err == nil {
				break
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	return nil
}

// api makes count requests to server, each over a TCP connection of its own from a new
// loopback address, 32 at a time. Any answer counts (the token is not given: the rate
// limit comes first).
func api(server netip.AddrPort, count int) error {
	var next atomic.Int64
	var failed atomic.Int64
	var wg sync.WaitGroup
	url := "http://" + server.String() + "/api/v1/status"
	for range 32 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= count {
					return
				}
				src := client(i)
				tr := &http.Transport{DisableKeepAlives: true, DialContext: (&net.Dialer{
					LocalAddr: &net.TCPAddr{IP: net.IP(src[:])}, Timeout: 5 * time.Second,
				}).DialContext}
				resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get(url)
				if err != nil {
					failed.Add(1)
					continue
				}
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	if n := failed.Load(); n > int64(count)/100 {
		return fmt.Errorf("%d of %d requests failed", n, count)
	}
	return nil
}

// Command ntpload loads an NTP server with client requests for a while, many sockets
// at once and in batches (sendmmsg/recvmmsg), and reports the replies per second and
// the median offset and delay it measured. With -nts, each socket first runs NTS-KE
// and every request carries a cookie and an authenticator (RFC 8915), as chronyd's
// do. bench/ntp.sh runs it against infrad and against chronyd.
package main

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/facebook/time/ntp/ntske"
	"github.com/facebook/time/ntp/protocol"
	"github.com/facebook/time/ntp/protocol/nts"
	"github.com/facebook/time/ntp/protocol/nts/aessiv"
	"golang.org/x/net/ipv4"
)

func main() {
	server := flag.String("server", "127.0.0.1:123", "the NTP server")
	duration := flag.Duration("duration", 10*time.Second, "how long to load it")
	sockets := flag.Int("sockets", 8, "client sockets")
	batch := flag.Int("batch", 32, "requests sent at once per socket (the window)")
	ke := flag.String("nts", "", "the NTS-KE server (host:port): authenticate every request")
	root := flag.String("root", "", "with -nts: the PEM root its certificate chains to")
	aead := flag.Int("aead", int(protocol.AEADAESSIVCMAC256), "with -nts: the AEAD (15: AES-SIV-CMAC-256, chronyd's; 30: AES-128-GCM-SIV)")
	flag.Parse()

	to, err := net.ResolveUDPAddr("udp", *server)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var replies atomic.Int64
	var mu sync.Mutex
	var offsets, delays []float64
	deadline := time.Now().Add(*duration)
	var wg sync.WaitGroup
	for range *sockets {
		wg.Go(func() {
			conn, err := net.ListenUDP("udp4", &net.UDPAddr{})
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return
			}
			defer conn.Close()
			pc := ipv4.NewPacketConn(conn)
			out := make([]ipv4.Message, *batch)
			in := make([]ipv4.Message, *batch)
			for i := range out {
				out[i] = ipv4.Message{Buffers: [][]byte{make([]byte, protocol.PacketSizeBytes)}, Addr: to}
				in[i] = ipv4.Message{Buffers: [][]byte{make([]byte, 1024)}}
			}
			var session *ntske.HandshakeResult
			if *ke != "" {
				if session, err = handshake(*ke, *root, uint16(*aead)); err != nil {
					fmt.Fprintln(os.Stderr, "nts-ke:", err)
					return
				}
			}
			var sampled []float64
			var sampledDelay []float64
			for n := 0; time.Now().Before(deadline); n++ {
				t1 := time.Now()
				req := protocol.Packet{Settings: 4<<3 | 3}
				req.TxTimeSec, req.TxTimeFrac = protocol.Time(t1)
				b, _ := req.Bytes()
				if session != nil { // a fresh unique identifier each batch; the cookie reused (the server keeps no state)
					if b, err = ntsRequest(req, session); err != nil {
						fmt.Fprintln(os.Stderr, err)
						return
					}
				}
				for i := range out {
					out[i].Buffers[0] = append(out[i].Buffers[0][:0], b...)
				}
				if _, err := pc.WriteBatch(out, 0); err != nil {
					continue
				}
				conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
				got := 0
				for got < *batch {
					k, err := pc.ReadBatch(in[:*batch-got], 0)
					if err != nil {
						break // lost ones: carry on with the next batch
					}
					for _, m := range in[:k] { // an NTS NAK, or a reply without an authenticator, is none
						if session != nil && (m.N <= protocol.PacketSizeBytes || m.Buffers[0][1] == 0) {
							fmt.Fprintln(os.Stderr, "an NTS request got no authenticated reply")
							os.Exit(1)
						}
					}
					if n%64 == 0 && got == 0 && k > 0 { // sample one reply in a while
						t4 := time.Now()
						if resp, err := protocol.BytesToPacket(in[0].Buffers[0][:in[0].N]); err == nil {
							rx, tx := protocol.Unix(resp.RxTimeSec, resp.RxTimeFrac), protocol.Unix(resp.TxTimeSec, resp.TxTimeFrac)
							sampled = append(sampled, float64(protocol.Offset(t1, rx, tx, t4))/1e3)
							sampledDelay = append(sampledDelay, float64(protocol.RoundTripDelay(t1, rx, tx, t4))/1e3)
						}
					}
					got += k
				}
				replies.Add(int64(got))
			}
			mu.Lock()
			offsets = append(offsets, sampled...)
			delays = append(delays, sampledDelay...)
			mu.Unlock()
		})
	}
	wg.Wait()
	fmt.Printf("replies/s %.0f offset_us %.1f delay_us %.1f\n",
		float64(replies.Load())/duration.Seconds(), median(offsets), median(delays))
}

// ntsRequest is base with NTS's fields: a fresh unique identifier, the session's first
// cookie, and an authenticator. For AES-SIV-CMAC-256 the authenticator carries a
// nonce, as chronyd's do and as chronyd, as a server, requires (facebook/time's
// BuildNTSRequest sends none, and chronyd drops such requests).
func ntsRequest(base protocol.Packet, s *ntske.HandshakeResult) ([]byte, error) {
	uid := make([]byte, nts.MinUniqueIdentifierLen)
	rand.Read(uid)
	base.ExtensionFields = []protocol.ExtensionField{nts.NewUniqueIdentifier(uid), nts.NewCookie(s.Cookies[0])}
	ad, err := base.AssociatedData(2)
	if err != nil {
		return nil, err
	}
	var auth protocol.ExtensionField
	if protocol.AEADAlgorithm(s.AEAD) == protocol.AEADAESSIVCMAC256 {
		siv, err := aessiv.NewAESSIV(s.C2S)
		if err != nil {
			return nil, err
		}
		nonce := make([]byte, 16)
		rand.Read(nonce)
		ct, err := siv.Seal(nil, nil, ad, nonce)
		if err != nil {
			return nil, err
		}
		body, err := nts.MarshalAuthenticatorBody(nonce, ct)
		if err != nil {
			return nil, err
		}
		auth = protocol.ExtensionField{Type: protocol.NTSAuthenticator, Body: body}
	} else {
		a, err := nts.NewAEAD(protocol.AEADAlgorithm(s.AEAD), s.C2S)
		if err != nil {
			return nil, err
		}
		if auth, err = nts.SealAuthenticator(a, ad, nil); err != nil {
			return nil, err
		}
	}
	base.ExtensionFields = append(base.ExtensionFields, auth)
	return base.Bytes()
}

// handshake runs NTS-KE with the server at addr, trusting root.
func handshake(addr, root string, aead uint16) (*ntske.HandshakeResult, error) {
	conf, err := ntske.ClientTLSConfig(root)
	if err != nil {
		return nil, err
	}
	host, _, _ := net.SplitHostPort(addr)
	conf.ServerName = host
	return (&ntske.Client{SupportedAEAD: []uint16{aead}}).Handshake(context.Background(), addr, conf)
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	return v[len(v)/2]
}

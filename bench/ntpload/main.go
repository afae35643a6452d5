// Command ntpload loads an NTP server with client requests for a while, many sockets
// at once and in batches (sendmmsg/recvmmsg), and reports the replies per second and
// the median offset and delay it measured. bench/ntp.sh runs it against infrad and
// against chronyd.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/facebook/time/ntp/protocol"
	"golang.org/x/net/ipv4"
)

func main() {
	server := flag.String("server", "127.0.0.1:123", "the NTP server")
	duration := flag.Duration("duration", 10*time.Second, "how long to load it")
	sockets := flag.Int("sockets", 8, "client sockets")
	batch := flag.Int("batch", 32, "requests sent at once per socket (the window)")
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
			conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
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
			var sampled []float64
			var sampledDelay []float64
			for n := 0; time.Now().Before(deadline); n++ {
				t1 := time.Now()
				req := protocol.Packet{Settings: 4<<3 | 3}
				req.TxTimeSec, req.TxTimeFrac = protocol.Time(t1)
				b, _ := req.Bytes()
				for i := range out {
					copy(out[i].Buffers[0], b)
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

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	return v[len(v)/2]
}

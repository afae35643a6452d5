package ntp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/facebook/time/ntp/protocol"
	"github.com/facebook/time/timestamp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// precision is the clock's precision we announce: 2^-20 s, about a microsecond.
const precision = -20

// batch is how many requests a socket takes from the kernel at once (recvmmsg).
const batch = 32

// serve answers the requests on conn until it is closed. It reads in batches, each
// request with its kernel receive timestamp, and sends each reply on its own, its
// transmit timestamp taken just before: a batched send would stamp a reply up to a
// batch's worth of sends before it leaves. A packet that is not an NTP client request
// (mode 3, version 1 to 4) is dropped without a word.
func (s *Service) serve(conn *net.UDPConn) {
	var r interface {
		ReadBatch([]ipv4.Message, int) (int, error)
	}
	if conn.LocalAddr().(*net.UDPAddr).IP.To4() != nil {
		r = ipv4.NewPacketConn(conn)
	} else {
		r = ipv6.NewPacketConn(conn)
	}
	msgs := make([]ipv4.Message, batch)
	for i := range msgs {
		msgs[i].Buffers = [][]byte{make([]byte, 1024)}
		msgs[i].OOB = make([]byte, timestamp.ControlSizeBytes)
	}
	for {
		n, err := r.ReadBatch(msgs, 0)
		if errors.Is(err, net.ErrClosed) {
			if !s.closing.Load() {
				s.health.Fail("socket "+conn.LocalAddr().String(), fmt.Sprintf("the socket on %s was closed under the service", conn.LocalAddr()))
			}
			return
		}
		if err != nil {
			continue
		}
		for _, m := range msgs[:n] {
			from, ok := m.Addr.(*net.UDPAddr)
			if !ok {
				continue
			}
			rx, err := timestamp.ReadRXTimestamp(m.OOB, m.NN)
			if err != nil {
				rx = time.Now() // no kernel timestamp: the next best
			}
			client := from.AddrPort()
			if reply := s.answer(m.Buffers[0][:m.N], client, rx); reply != nil {
				conn.WriteToUDPAddrPort(reply, client)
			}
		}
	}
}

// answer is the reply to the request in b from client, received at rx; nil drops it.
func (s *Service) answer(b []byte, client netip.AddrPort, rx time.Time) []byte {
	var req protocol.Packet
	if req.UnmarshalBinary(b) != nil || !req.ValidSettingsFormat() {
		s.metrics.dropped.Inc()
		return nil
	}
	s.metrics.requests.Inc()
	var resp *protocol.Packet
	if !s.limit.Load().Allow(client.Addr().Unmap(), rx) {
		s.metrics.limited.Inc()
		resp = kissOfDeath(&req, "RATE")
	} else {
		resp = s.state.Load().reply(&req, rx)
	}
	// The transmit timestamp, as late as can be: just before the packet is encoded,
	// or, with NTS, authenticated.
	resp.TxTimeSec, resp.TxTimeFrac = protocol.Time(time.Now())
	if s.cfg.Load().NTS && protocol.HasNTSField(req.ExtensionFields) {
		if resp = s.authenticated(&req, resp); resp == nil {
			return nil
		}
	}
	out, err := resp.Bytes()
	if err != nil {
		return nil
	}
	return out
}

// version is the request's version, echoed in the reply.
func version(req *protocol.Packet) uint8 { return (req.Settings >> 3) & 7 }

// reply answers req, received at rx, from state st.
func (st *State) reply(req *protocol.Packet, rx time.Time) *protocol.Packet {
	resp := &protocol.Packet{
		Settings:       st.leap<<6 | version(req)<<3 | 4,
		Stratum:        st.stratum,
		Poll:           req.Poll,
		Precision:      precision,
		RootDelay:      st.rootDelay,
		RootDispersion: st.rootDispersion,
		ReferenceID:    st.refID,
		OrigTimeSec:    req.TxTimeSec,
		OrigTimeFrac:   req.TxTimeFrac,
	}
	resp.RefTimeSec, resp.RefTimeFrac = protocol.Time(st.refTime)
	if st.refTime.IsZero() {
		resp.RefTimeSec, resp.RefTimeFrac = 0, 0
	}
	resp.RxTimeSec, resp.RxTimeFrac = protocol.Time(rx)
	return resp
}

// kissOfDeath is a KoD packet (RFC 5905 §7.4): stratum 0, the code as reference ID.
func kissOfDeath(req *protocol.Packet, code string) *protocol.Packet {
	return &protocol.Packet{
		Settings:     3<<6 | version(req)<<3 | 4,
		Poll:         req.Poll,
		Precision:    precision,
		ReferenceID:  refIDOf(code),
		OrigTimeSec:  req.TxTimeSec,
		OrigTimeFrac: req.TxTimeFrac,
	}
}

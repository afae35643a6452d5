package ntp

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/facebook/time/ntp/protocol"
	"github.com/facebook/time/timestamp"
)

// precision is the clock's precision we announce: 2^-20 s, about a microsecond.
const precision = -20

// serve answers the requests on conn until it is closed. A packet that is not an NTP
// client request (mode 3, version 1 to 4) is dropped without a word.
func (s *Service) serve(conn *net.UDPConn) {
	buf := make([]byte, 1024)
	oob := make([]byte, timestamp.ControlSizeBytes)
	for {
		n, oobn, _, from, err := conn.ReadMsgUDPAddrPort(buf, oob)
		if errors.Is(err, net.ErrClosed) {
			if !s.closing.Load() {
				s.health.Fail("socket "+conn.LocalAddr().String(), fmt.Sprintf("the socket on %s was closed under the service", conn.LocalAddr()))
			}
			return
		}
		if err != nil {
			continue
		}
		rx, err := timestamp.ReadRXTimestamp(oob, oobn)
		if err != nil {
			rx = time.Now() // no kernel timestamp: the next best
		}
		req, err := protocol.BytesToPacket(buf[:n])
		if err != nil || !req.ValidSettingsFormat() {
			s.metrics.dropped.Inc()
			continue
		}
		s.metrics.requests.Inc()
		var resp *protocol.Packet
		if !s.limit.Load().Allow(from.Addr(), rx) {
			s.metrics.limited.Inc()
			resp = kissOfDeath(req, "RATE")
		} else {
			resp = s.state.Load().reply(req, rx)
		}
		// The transmit timestamp, as late as can be: just before the packet is encoded.
		resp.TxTimeSec, resp.TxTimeFrac = protocol.Time(time.Now())
		out, err := resp.Bytes()
		if err != nil {
			continue
		}
		conn.WriteToUDPAddrPort(out, from)
	}
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

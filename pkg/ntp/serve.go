package ntp

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/facebook/time/ntp/protocol"
	"github.com/facebook/time/timestamp"
)

// precision is the clock's precision we announce: 2^-20 s, about a microsecond.
const precision = -20

// serve answers the requests on conn until it is closed. A packet that is not an NTP
// client request (mode 3, version 1 to 4) is dropped without a word.
func (s *Service) serve(conn *net.UDPConn, limit *limiter) {
	buf := make([]byte, 1024)
	oob := make([]byte, timestamp.ControlSizeBytes)
	for {
		n, oobn, _, from, err := conn.ReadMsgUDPAddrPort(buf, oob)
		if errors.Is(err, net.ErrClosed) {
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
		if !limit.allow(from.Addr(), rx) {
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

// limiter allows each client rate requests a second, with a burst of twice that, by
// token bucket. A zero rate allows everything.
type limiter struct {
	rate float64
	mu   sync.Mutex
	last time.Time // of the last sweep of idle clients
	by   map[netip.Addr]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newLimiter(rate int) *limiter {
	return &limiter{rate: float64(rate), by: map[netip.Addr]*bucket{}}
}

func (l *limiter) allow(client netip.Addr, now time.Time) bool {
	if l.rate == 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.last) > time.Minute { // forget the clients that went quiet
		for a, b := range l.by {
			if now.Sub(b.at) > time.Minute {
				delete(l.by, a)
			}
		}
		l.last = now
	}
	b, ok := l.by[client]
	if !ok {
		b = &bucket{tokens: 2 * l.rate, at: now}
		l.by[client] = b
	}
	b.tokens = min(2*l.rate, b.tokens+now.Sub(b.at).Seconds()*l.rate)
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

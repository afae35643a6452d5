package ntp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"time"

	"github.com/facebook/time/ntp/chrony"
	"github.com/facebook/time/ntp/protocol"

	"github.com/infrad/infrad/pkg/config"
)

// The sources of time, in the order they are preferred.
const (
	SourceChronyd  = "chronyd"  // a co-located chronyd that is synchronised
	SourceUpstream = "upstream" // infrad's own watch of ntp.upstream
	SourceLocal    = "local"    // the local clock at ntp.local_stratum, reference LOCL
	SourceNone     = "none"     // nothing to trust: leap 3, stratum 16
)

// State is what infrad serves, and why. It is immutable once made.
type State struct {
	Source    string     `json:"source"`
	Stratum   uint8      `json:"stratum"`
	Leap      uint8      `json:"leap"` // 0, or 3: not synchronised
	RefID     string     `json:"refid"`
	Offset    float64    `json:"offset_seconds"` // of this clock against the source; 0 when none
	LastSync  time.Time  `json:"last_sync,omitzero"`
	Why       string     `json:"why,omitempty"` // why it is not synchronised
	Upstreams []Upstream `json:"upstreams"`

	stratum, leap  uint8
	refID          uint32
	rootDelay      uint32 // NTP short format
	rootDispersion uint32
	refTime        time.Time
}

// Upstream is the last look at one upstream server.
type Upstream struct {
	Server   string    `json:"server"`
	Stratum  uint8     `json:"stratum,omitempty"`
	RefID    string    `json:"refid,omitempty"`
	Offset   float64   `json:"offset_seconds"` // of this clock: positive when it is behind
	Delay    float64   `json:"delay_seconds"`
	LastSeen time.Time `json:"last_seen,omitzero"`
	Error    string    `json:"error,omitempty"`
	addr     netip.Addr
	root     float64 // the server's root delay, seconds
}

// track assesses the source every interval until ctx ends.
func (s *Service) track(ctx context.Context) {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.assess(ctx)
		}
	}
}

// assess decides where time comes from now and publishes it.
func (s *Service) assess(ctx context.Context) {
	cfg := s.cfg.Load()
	ups := pollUpstreams(ctx, cfg.Upstream)
	st := decide(ctx, cfg, ups)
	st.Upstreams = ups
	old := s.state.Swap(st)
	s.metrics.publish(st)
	if old.Source != st.Source || old.Leap != st.Leap {
		log := s.log.Info
		if st.Leap == 3 {
			log = s.log.Warn
		}
		log("ntp source", "source", st.Source, "stratum", st.Stratum, "refid", st.RefID, "leap", st.Leap, "why", st.Why)
	}
}

func decide(ctx context.Context, cfg *config.NTP, ups []Upstream) *State {
	if cfg.Chronyd.IsValid() {
		if t, err := chronydTracking(ctx, cfg.Chronyd); err == nil && t.LeapStatus != 3 && t.Stratum > 0 && t.Stratum < 15 {
			return State{Source: SourceChronyd, stratum: uint8(t.Stratum) + 1, leap: uint8(t.LeapStatus),
				refID: t.RefID, refTime: t.RefTime, Offset: -t.CurrentCorrection, LastSync: t.RefTime,
				rootDelay: short(t.RootDelay), rootDispersion: short(t.RootDispersion)}.named()
		}
	}
	if best, ok := bestUpstream(ups); ok {
		st := &State{Source: SourceUpstream, stratum: best.Stratum + 1, refID: refIDOfAddr(best.addr),
			refTime: best.LastSeen, Offset: best.Offset, LastSync: best.LastSeen,
			rootDelay: short(best.root + best.Delay), rootDispersion: short(math.Abs(best.Offset))}
		if off := time.Duration(math.Abs(best.Offset) * float64(time.Second)); off > cfg.MaxOffset {
			st.leap = 3
			st.Why = fmt.Sprintf("this clock is %s off %s (more than %s), and infrad does not steer the clock: run chronyd, or set the time", off.Round(time.Microsecond), best.Server, cfg.MaxOffset)
		}
		return st.named()
	}
	if cfg.LocalStratum > 0 {
		return State{Source: SourceLocal, stratum: uint8(cfg.LocalStratum), refID: refIDOf("LOCL"), refTime: time.Now()}.named()
	}
	why := "no source: no synchronised chronyd, no upstream answering, and no local_stratum"
	if len(cfg.Upstream) > 0 {
		why = "no upstream answers with a usable time, no synchronised chronyd, and no local_stratum"
	}
	return unsynchronised(why, nil)
}

func unsynchronised(why string, ups []Upstream) *State {
	return State{Source: SourceNone, stratum: 16, leap: 3, Why: why, Upstreams: ups}.named()
}

// named fills the exported fields from the wire ones.
func (st State) named() *State {
	st.Stratum, st.Leap = st.stratum, st.leap
	st.RefID = refIDString(st.refID, st.stratum)
	if st.Upstreams == nil {
		st.Upstreams = []Upstream{}
	}
	return &st
}

// bestUpstream is the answering upstream with the lowest delay.
func bestUpstream(ups []Upstream) (Upstream, bool) {
	var best Upstream
	found := false
	for _, u := range ups {
		if u.Error == "" && (!found || u.Delay < best.Delay) {
			best, found = u, true
		}
	}
	return best, found
}

func pollUpstreams(ctx context.Context, servers []string) []Upstream {
	out := make([]Upstream, len(servers))
	done := make(chan struct{}, len(servers))
	for i, server := range servers {
		go func() {
			out[i] = query(ctx, server)
			done <- struct{}{}
		}()
	}
	for range servers {
		<-done
	}
	return out
}

// query asks server for the time, as a client does (RFC 5905), and measures this
// clock's offset against it and the round trip.
func query(ctx context.Context, server string) Upstream {
	u := Upstream{Server: server}
	addr := server
	if _, _, err := net.SplitHostPort(server); err != nil {
		addr = net.JoinHostPort(server, "123")
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", addr)
	if err != nil {
		u.Error = err.Error()
		return u
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	u.addr = conn.RemoteAddr().(*net.UDPAddr).AddrPort().Addr().Unmap()

	t1 := time.Now()
	req := protocol.Packet{Settings: 4<<3 | 3}
	req.TxTimeSec, req.TxTimeFrac = protocol.Time(t1)
	b, _ := req.Bytes()
	if _, err := conn.Write(b); err != nil {
		u.Error = err.Error()
		return u
	}
	buf := make([]byte, 1024)
	n, err := conn.Read(buf)
	t4 := time.Now()
	if err != nil {
		u.Error = err.Error()
		return u
	}
	resp, err := protocol.BytesToPacket(buf[:n])
	switch {
	case err != nil:
		u.Error = "malformed reply"
	case resp.Settings&7 != 4 || resp.OrigTimeSec != req.TxTimeSec || resp.OrigTimeFrac != req.TxTimeFrac:
		u.Error = "not a reply to our request"
	case resp.Stratum == 0:
		u.Error = "kiss of death " + refIDString(resp.ReferenceID, 0)
	case resp.Settings>>6 == 3 || resp.Stratum >= 16:
		u.Error = "the server is not synchronised"
	}
	if u.Error != "" {
		return u
	}
	rx, tx := protocol.Unix(resp.RxTimeSec, resp.RxTimeFrac), protocol.Unix(resp.TxTimeSec, resp.TxTimeFrac)
	u.Stratum = resp.Stratum
	u.RefID = refIDString(resp.ReferenceID, resp.Stratum)
	u.Offset = float64(protocol.Offset(t1, rx, tx, t4)) / 1e9
	u.Delay = float64(protocol.RoundTripDelay(t1, rx, tx, t4)) / 1e9
	u.root = float64(resp.RootDelay) / 65536
	u.LastSeen = t4
	return u
}

// chronydTracking reads a co-located chronyd's tracking over its command port.
func chronydTracking(ctx context.Context, addr netip.AddrPort) (*chrony.Tracking, error) {
	ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", addr.String())
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	resp, err := (&chrony.Client{Connection: conn}).Communicate(chrony.NewTrackingPacket())
	if err != nil {
		return nil, err
	}
	tracking, ok := resp.(*chrony.ReplyTracking)
	if !ok {
		return nil, errors.New("chronyd answered tracking with something else")
	}
	return &tracking.Tracking, nil
}

// short is seconds in NTP's 16.16 short format.
func short(seconds float64) uint32 {
	return uint32(min(math.Abs(seconds), 65535) * 65536)
}

func refIDOf(code string) uint32 {
	var b [4]byte
	copy(b[:], code)
	return binary.BigEndian.Uint32(b[:])
}

func refIDOfAddr(a netip.Addr) uint32 {
	if !a.Is4() {
		return 0 // an IPv6 server's reference ID is a hash (RFC 5905); we send none
	}
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

// refIDString shows a reference ID as RFC 5905 reads it: four letters at stratum 0
// and 1 (and for our LOCL), an IPv4 address above.
func refIDString(id uint32, stratum uint8) string {
	if id == 0 {
		return "" // none: an unsynchronised server's
	}
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], id)
	if stratum <= 1 || id == refIDOf("LOCL") {
		s := []byte{}
		for _, c := range b {
			if c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
				s = append(s, c)
			}
		}
		return string(s)
	}
	return netip.AddrFrom4(b).String()
}

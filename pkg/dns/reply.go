package dns

import (
	"encoding/binary"
	"net"
	"slices"
	"time"

	"github.com/miekg/dns"
)

// maxUDPSize is the most a UDP reply takes, and the size infrad's OPT record
// advertises: the DNS flag day's 1232 bytes, which fit any path's MTU unfragmented
// (NSD's and BIND's default). A larger answer is truncated, and the client asks again
// over TCP.
const maxUDPSize = 1232

// maxMACLen is the longest MAC a TSIG record carries (hmac-sha512's).
const maxMACLen = 64

// maxTSIGLen is the most a reply's TSIG record may take once signed: its key's name
// and algorithm (at most 255 bytes each), the fixed fields and the MAC.
const maxTSIGLen = 2*255 + 32 + maxMACLen

// replyWriter is the dns.ResponseWriter a query is answered through, as miekg/dns's
// server gives its handlers one: a signed request's TSIG status, and replies that
// carry a TSIG record signed with its key, a transfer's each chained to the last. A
// UDP reply is cut to the client's size (RFC 6891) and may be kept for a batched
// write (out); a TCP reply is compressed and framed.
type replyWriter struct {
	local, remote net.Addr
	tcp           net.Conn     // nil: UDP
	udp           *net.UDPConn // UDP, written at once unless batch
	oob           []byte       // UDP: the control message that sends from the query's address
	batch         bool         // UDP: keep the reply in out for the reader's batched write
	out           []byte
	size          int // UDP: the most the reply may take

	tsig       dns.TsigProvider // nil: the request is not signed
	tsigStatus error
	tsigMAC    string // the request's MAC, then the last reply's
	timersOnly bool
}

func (w *replyWriter) LocalAddr() net.Addr  { return w.local }
func (w *replyWriter) RemoteAddr() net.Addr { return w.remote }

func (w *replyWriter) TsigStatus() error              { return w.tsigStatus }
func (w *replyWriter) TsigTimersOnly(timersOnly bool) { w.timersOnly = timersOnly }
func (w *replyWriter) Hijack()                        {}
func (w *replyWriter) Close() error                   { return nil }

// WriteMsg packs m, cut to the client's size over UDP, signs it when it carries a
// TSIG record, and writes it.
func (w *replyWriter) WriteMsg(m *dns.Msg) error {
	t := m.IsTsig()
	if w.tcp != nil {
		m.Compress = true
	} else {
		truncate(m, t, w.size)
	}
	var b []byte
	var err error
	if t != nil && w.tsig != nil {
		b, w.tsigMAC, err = dns.TsigGenerateWithProvider(m, w.tsig, w.tsigMAC, w.timersOnly)
	} else {
		b, err = m.PackBuffer(w.out[:cap(w.out)])
	}
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// truncate cuts m to size, keeping its TSIG record t (nil: none) last, with room to
// sign it: miekg/dns does not cut a signed message, nor any below 512 bytes.
func truncate(m *dns.Msg, t *dns.TSIG, size int) {
	if t == nil {
		m.Truncate(size)
		return
	}
	m.Extra = m.Extra[:len(m.Extra)-1]
	room := dns.Len(t) + maxMACLen // (t has no MAC yet)
	m.Truncate(size - room)
	for m.Len()+room > size { // the last records go, as Truncate would have them go
		extra := len(m.Extra) - 1 // the last additional record but the OPT
		for extra >= 0 && m.Extra[extra].Header().Rrtype == dns.TypeOPT {
			extra--
		}
		switch {
		case extra >= 0:
			m.Extra = slices.Delete(m.Extra, extra, extra+1)
		case len(m.Ns) > 0:
			m.Ns = m.Ns[:len(m.Ns)-1]
		case len(m.Answer) > 0:
			m.Answer = m.Answer[:len(m.Answer)-1]
		default:
			m.Extra = append(m.Extra, t)
			return // a header, a question and an OPT: nothing more to cut
		}
		m.Truncated, m.Compress = true, true
	}
	m.Extra = append(m.Extra, t)
}

// Write writes b as one reply.
func (w *replyWriter) Write(b []byte) (int, error) {
	switch {
	case w.tcp != nil:
		frame := make([]byte, 2+len(b))
		binary.BigEndian.PutUint16(frame, uint16(len(b)))
		copy(frame[2:], b)
		w.tcp.SetWriteDeadline(time.Now().Add(tcpWriteLimit))
		if _, err := w.tcp.Write(frame); err != nil {
			return 0, err
		}
		return len(b), nil
	case w.batch:
		w.out = append(w.out[:0], b...)
		return len(b), nil
	default:
		n, _, err := w.udp.WriteMsgUDP(b, w.oob, w.remote.(*net.UDPAddr))
		return n, err
	}
}

package ipam

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/infrad/infrad/pkg/site"
)

// The JSON of a lease and of its CommitLease (and CommitLease6), written by hand: both are encoded for
// every DHCP exchange (the command into the log, the lease into the store), where
// encoding/json's reflection cost a twelfth of the CPU. Each writes exactly what
// encoding/json writes (TestFastJSONIsEncodingJSON holds them to it), and falls back
// to it for what it does not know how to write alone.

// AppendJSON appends l as json.Marshal writes it (a store.JSONAppender, for store.Put).
func (l Lease) AppendJSON(b []byte) ([]byte, error) {
	if !plainString(l.Hostname) || !printable(l.Client) || !writableTime(l.Expires) {
		raw, err := json.Marshal(l)
		return append(b, raw...), err
	}
	b = append(b, `{"ip":"`...)
	b = append(l.IP.AppendTo(b), '"')
	if !l.MAC.IsZero() {
		b = append(b, `,"mac":"`...)
		b = append(appendMAC(b, l.MAC), '"')
	}
	if l.Hostname != "" {
		b = append(b, `,"hostname":"`...)
		b = append(append(b, l.Hostname...), '"')
	}
	b = append(b, `,"expires":`...)
	b = appendTime(b, l.Expires)
	if l.Declined {
		b = append(b, `,"declined":true`...)
	}
	if l.Released != 0 {
		b = append(b, `,"released":`...)
		b = strconv.AppendUint(b, l.Released, 10)
	}
	if l.Granted != 0 {
		b = append(b, `,"granted":`...)
		b = strconv.AppendUint(b, l.Granted, 10)
	}
	if l.Client != "" {
		b = append(b, `,"client":"`...)
		b = append(append(b, l.Client...), '"')
	}
	if l.Length != 0 {
		b = strconv.AppendInt(append(b, `,"length":`...), int64(l.Length), 10)
	}
	return append(b, '}'), nil
}

// AppendJSON appends c as json.Marshal writes it (a store.JSONAppender, for the log).
func (c CommitLease) AppendJSON(b []byte) ([]byte, error) {
	if c.By != "" || !plainString(c.Subnet) || !plainString(c.Hostname) || !writableTime(c.At) || !writableTime(c.Expires) {
		raw, err := json.Marshal(c)
		return append(b, raw...), err
	}
	b = append(b, `{"at":`...)
	b = appendTime(b, c.At)
	b = append(b, `,"subnet":"`...)
	b = append(append(b, c.Subnet...), `","mac":"`...)
	b = append(appendMAC(b, c.MAC), `","ip":"`...)
	b = append(c.IP.AppendTo(b), '"')
	return appendCommitTail(b, c.Hostname, c.Expires, c.Renewal), nil
}

// appendCommitTail appends the fields both lease commits end with, and the closing brace.
func appendCommitTail(b []byte, hostname string, expires time.Time, renewal bool) []byte {
	if hostname != "" {
		b = append(b, `,"hostname":"`...)
		b = append(append(b, hostname...), '"')
	}
	b = append(b, `,"expires":`...)
	b = appendTime(b, expires)
	if renewal {
		b = append(b, `,"renewal":true`...)
	}
	return append(b, '}')
}

// AppendJSON appends c as json.Marshal writes it (a store.JSONAppender, for the log).
func (c CommitLease6) AppendJSON(b []byte) ([]byte, error) {
	if c.By != "" || !plainString(c.Subnet) || !printable(c.Client) || !plainString(c.Hostname) || !writableTime(c.At) || !writableTime(c.Expires) {
		raw, err := json.Marshal(c)
		return append(b, raw...), err
	}
	b = append(b, `{"at":`...)
	b = appendTime(b, c.At)
	b = append(b, `,"subnet":"`...)
	b = append(append(b, c.Subnet...), `","client":"`...)
	b = append(append(b, c.Client...), '"')
	if !c.MAC.IsZero() {
		b = append(b, `,"mac":"`...)
		b = append(appendMAC(b, c.MAC), '"')
	}
	b = append(b, `,"ip":"`...)
	b = append(c.IP.AppendTo(b), '"')
	if c.Length != 0 {
		b = strconv.AppendInt(append(b, `,"length":`...), int64(c.Length), 10)
	}
	return appendCommitTail(b, c.Hostname, c.Expires, c.Renewal), nil
}

// AppendJSON appends e as json.Marshal writes it (a store.JSONAppender, for the
// change log, which gets an entry for every new DHCP client). Its objects' values are
// json.Marshal's already.
func (e *ChangeEntry) AppendJSON(b []byte) ([]byte, error) {
	plain := e.ID == 0 && len(e.Changes) > 0 && writableTime(e.At) && printable(e.Source) && printable(e.Command)
	for _, c := range e.Changes {
		plain = plain && printable(c.Kind) && printable(c.Key) && printable(c.Op)
	}
	if !plain {
		raw, err := json.Marshal(e)
		return append(b, raw...), err
	}
	b = append(b, `{"at":`...)
	b = appendTime(b, e.At)
	b = append(append(b, `,"source":"`...), e.Source...)
	b = append(append(b, `","command":"`...), e.Command...)
	b = append(b, `","changes":[`...)
	for i, c := range e.Changes {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(append(b, `{"kind":"`...), c.Kind...)
		b = append(append(b, `","key":"`...), c.Key...)
		b = append(append(b, `","op":"`...), c.Op...)
		b = append(b, '"')
		if len(c.Before) > 0 {
			b = append(append(b, `,"before":`...), c.Before...)
		}
		if len(c.After) > 0 {
			b = append(append(b, `,"after":`...), c.After...)
		}
		b = append(b, '}')
	}
	b = append(b, ']')
	if e.More != 0 {
		b = strconv.AppendInt(append(b, `,"more":`...), int64(e.More), 10)
	}
	return append(b, '}'), nil
}

// printable reports whether encoding/json writes s as it is, between quotes: printable
// ASCII but the quote, the backslash and the three it escapes for HTML.
func printable(s string) bool {
	for i := range len(s) {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// plainString reports whether encoding/json writes s as it is, between quotes.
func plainString(s string) bool {
	for i := range len(s) {
		switch c := s[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '.', c == '_':
		default:
			return false
		}
	}
	return true
}

// writableTime reports whether t is a time time.MarshalJSON writes (years 0 to 9999).
func writableTime(t time.Time) bool { y := t.Year(); return y >= 0 && y <= 9999 }

func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	return append(t.AppendFormat(b, time.RFC3339Nano), '"')
}

func appendMAC(b []byte, m site.MAC) []byte {
	const hex = "0123456789abcdef"
	for i, x := range m {
		if i > 0 {
			b = append(b, ':')
		}
		b = append(b, hex[x>>4], hex[x&0xf])
	}
	return b
}

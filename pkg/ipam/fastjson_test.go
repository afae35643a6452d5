package ipam

import (
	"encoding/json"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/infrad/infrad/pkg/site"
)

// The hand-written JSON of a lease and of a CommitLease is encoding/json's, byte for
// byte, whatever the fields hold: plain, empty, zero, escaped or out of range.
func TestFastJSONIsEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	names := []string{"", "laptop", "web-01.lab", "x_y", "<b>&", "ünï", "a\"b", "tab\there", "\u2028"}
	addrs := []netip.Addr{{}, netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("::ffff:10.0.0.1"), netip.MustParseAddr("fe80::1%eth0"), netip.MustParseAddr("2001:db8::7")}
	times := []time.Time{{}, time.Date(2026, 12, 2, 7, 1, 2, 345678900, time.UTC), time.Date(2026, 12, 2, 8, 0, 0, 0, time.FixedZone("X", 3600)),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC), time.Now()}
	clients := []string{"", "000100012f3a5c1e525400004021/00000001", "a\"b"}
	for range 2000 {
		var mac site.MAC
		if r.IntN(4) > 0 {
			for i := range mac {
				mac[i] = byte(r.Uint32())
			}
		}
		l := Lease{IP: addrs[r.IntN(len(addrs))], MAC: mac, Hostname: names[r.IntN(len(names))], Expires: times[r.IntN(len(times))], Declined: r.IntN(2) == 0,
			Released: uint64(r.IntN(2) * r.IntN(1000)), Granted: uint64(r.IntN(2) * r.IntN(1000)), Client: clients[r.IntN(len(clients))], Length: []int{0, 56, 64}[r.IntN(3)]}
		type plainLease Lease // encoding/json's own encoding: no methods
		want, wantErr := json.Marshal(plainLease(l))
		if got, err := l.AppendJSON(nil); string(got) != string(want) || (err == nil) != (wantErr == nil) {
			t.Fatalf("lease %+v:\n got %s, %v\nwant %s, %v", l, got, err, want, wantErr)
		}
		c := CommitLease{Stamp: Stamp{At: times[r.IntN(len(times))]}, Subnet: names[r.IntN(len(names))], MAC: mac,
			IP: l.IP, Hostname: names[r.IntN(len(names))], Expires: times[r.IntN(len(times))], Renewal: r.IntN(2) == 0}
		want, wantErr = json.Marshal(c)
		if got, err := c.AppendJSON(nil); string(got) != string(want) || (err == nil) != (wantErr == nil) {
			t.Fatalf("command %+v:\n got %s, %v\nwant %s, %v", c, got, err, want, wantErr)
		}
		c6 := CommitLease6{Stamp: Stamp{At: times[r.IntN(len(times))], By: []string{"", "token a"}[r.IntN(2)]}, Subnet: names[r.IntN(len(names))],
			Client: clients[r.IntN(len(clients))], MAC: mac, IP: l.IP, Length: []int{0, 56}[r.IntN(2)], Hostname: names[r.IntN(len(names))],
			Expires: times[r.IntN(len(times))], Renewal: r.IntN(2) == 0}
		want, wantErr = json.Marshal(c6)
		if got, err := c6.AppendJSON(nil); string(got) != string(want) || (err == nil) != (wantErr == nil) {
			t.Fatalf("command %+v:\n got %s, %v\nwant %s, %v", c6, got, err, want, wantErr)
		}
	}
}

// A change-log entry's hand-written JSON is encoding/json's too.
func TestChangeEntryJSONIsEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	words := []string{"", "dhcp", "token api-token", "site file", "rfc2136 key lego.", "a\"b", "<x>", "ünï", "tab\there", "10.0.0.1", "web01.lab A 10.0.0.5"}
	values := []json.RawMessage{nil, json.RawMessage(`{"ip":"10.0.0.1","mac":"52:54:00:00:00:01","expires":"2026-12-02T08:00:00Z"}`),
		json.RawMessage(`{"name":"a\u003cb","ip":"10.0.0.2","owner":"api"}`), json.RawMessage(`null`)}
	times := []time.Time{time.Date(2026, 12, 2, 7, 1, 2, 345678900, time.UTC), time.Date(2026, 12, 2, 8, 0, 0, 0, time.FixedZone("X", 3600)), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Now()}
	pick := func() string { return words[r.IntN(len(words))] }
	for range 2000 {
		e := ChangeEntry{At: times[r.IntN(len(times))], Source: pick(), Command: pick(), More: r.IntN(3) * r.IntN(200)}
		if r.IntN(10) == 0 {
			e.ID = uint64(r.IntN(100))
		}
		for range r.IntN(4) {
			e.Changes = append(e.Changes, ObjectChange{Kind: pick(), Key: pick(), Op: pick(), Before: values[r.IntN(len(values))], After: values[r.IntN(len(values))]})
		}
		want, wantErr := json.Marshal(&e)
		if got, err := e.AppendJSON(nil); string(got) != string(want) || (err == nil) != (wantErr == nil) {
			t.Fatalf("entry %+v:\n got %s, %v\nwant %s, %v", e, got, err, want, wantErr)
		}
	}
}

package ntp

import (
	"net/netip"
	"testing"
	"time"

	"github.com/facebook/time/ntp/protocol"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/infrad/infrad/pkg/config"
)

// FuzzRequest feeds the request path any packet: what is not a client request is
// dropped, and any request gets a well-formed reply (or a KoD, once its client has
// asked too often).
func FuzzRequest(f *testing.F) {
	req := protocol.Packet{Settings: 4<<3 | 3}
	b, _ := req.Bytes()
	f.Add(b)
	f.Add([]byte{0x1b})
	f.Add(make([]byte, 100))
	site, err := config.Parse("site.yaml", []byte("domain: lab.test\n"))
	if err != nil {
		f.Fatal(err)
	}
	s := New(Options{Site: site, Registry: prometheus.NewRegistry()})
	s.state.Store(State{Source: SourceLocal, stratum: 10, refID: refIDOf("LOCL")}.named())
	client := netip.MustParseAddrPort("127.0.0.9:123")
	f.Fuzz(func(t *testing.T, data []byte) {
		out := s.answer(data, client, time.Now())
		p, err := protocol.BytesToPacket(data)
		if err != nil || !p.ValidSettingsFormat() {
			if out != nil {
				t.Fatalf("a reply to what is not a client request: %x", data)
			}
			return
		}
		if len(out) < protocol.PacketSizeBytes {
			t.Fatalf("a client request got %d bytes back", len(out))
		}
	})
}

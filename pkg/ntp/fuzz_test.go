package ntp

import (
	"testing"
	"time"

	"github.com/facebook/time/ntp/protocol"
)

// FuzzRequest feeds the request path any packet: what is not a client request is
// dropped, and any request gets a well-formed reply.
func FuzzRequest(f *testing.F) {
	req := protocol.Packet{Settings: 4<<3 | 3}
	b, _ := req.Bytes()
	f.Add(b)
	f.Add([]byte{0x1b})
	f.Add(make([]byte, 100))
	st := State{Source: SourceLocal, stratum: 10, refID: refIDOf("LOCL")}.named()
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := protocol.BytesToPacket(data)
		if err != nil || !p.ValidSettingsFormat() {
			return
		}
		out, err := st.reply(p, time.Now()).Bytes()
		if err != nil || len(out) < protocol.PacketSizeBytes {
			t.Fatalf("a reply that does not encode: %v", err)
		}
		if _, err := kissOfDeath(p, "RATE").Bytes(); err != nil {
			t.Fatal(err)
		}
	})
}

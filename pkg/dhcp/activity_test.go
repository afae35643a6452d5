package dhcp

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

func TestActivityKeepsTheNewest(t *testing.T) {
	var a activity
	at := time.Now()
	for i := range ActivityLen + 952 {
		a.add(Event{At: at.Add(time.Duration(i)), Type: "DISCOVER", Hostname: fmt.Sprintf("h%d", i)})
	}
	all := a.newest("", ActivityLen*2)
	if len(all) != ActivityLen || all[0].Hostname != fmt.Sprintf("h%d", ActivityLen+951) || all[ActivityLen-1].Hostname != "h952" {
		t.Fatalf("kept %d, newest %s, oldest %s: want the last %d, newest first", len(all), all[0].Hostname, all[len(all)-1].Hostname, ActivityLen)
	}
	a.add(Event{Type: "NAK", IP: netip.MustParseAddr("10.0.0.9"), Reason: "the address is offered to another client", Sent: true})
	if got := a.newest("offered", 10); len(got) != 1 || got[0].Type != "NAK" {
		t.Errorf("search for the NAK's reason: %+v", got)
	}
	if got := a.newest("10.0.0.9", 10); len(got) != 1 {
		t.Errorf("search by address: %d events", len(got))
	}
	if got := a.newest("discover", 5); len(got) != 5 {
		t.Errorf("a limit of 5: %d events", len(got))
	}
}

// TestActivityOfARelayedNAK: the event of a relayed REQUEST and of its NAK carry the
// MAC, the address asked for, the relay and the NAK's reason.
func TestActivityOfARelayedNAK(t *testing.T) {
	s, l := newService(t)
	req := message(t, mac(4), dhcpv4.MessageTypeRequest, dhcpv4.WithGatewayIP(net.ParseIP("10.88.0.1")), requested("10.77.0.100"))
	nak, _ := s.handle(context.Background(), l, req)
	if nak == nil {
		t.Fatal("no NAK")
	}
	in, out := eventOf(l, req, false, time.Now()), eventOf(l, nak, true, time.Now())
	if in.Type != "REQUEST" || in.Sent || in.IP.String() != "10.77.0.100" || in.Relay.String() != "10.88.0.1" || in.MAC.String() != mac(4).String() {
		t.Errorf("the REQUEST's event: %+v", in)
	}
	if out.Type != "NAK" || !out.Sent || out.Reason == "" || out.MAC != in.MAC {
		t.Errorf("the NAK's event: %+v, want its reason", out)
	}
}

package dhcp

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

func TestActivityKeepsTheNewest(t *testing.T) {
	var a activity
	at := time.Now()
	for i := range activityLen + 952 {
		a.add(Event{At: at.Add(time.Duration(i)), Type: "DISCOVER", Hostname: fmt.Sprintf("h%d", i)})
	}
	all := a.newest("", activityLen*2)
	if len(all) != activityLen || all[0].Hostname != fmt.Sprintf("h%d", activityLen+951) || all[activityLen-1].Hostname != "h952" {
		t.Fatalf("kept %d, newest %s, oldest %s: want the last %d, newest first", len(all), all[0].Hostname, all[len(all)-1].Hostname, activityLen)
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

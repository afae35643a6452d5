package dhcp

import (
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/infrad/infrad/pkg/boot"
	"github.com/infrad/infrad/pkg/site"
	"github.com/insomniacslk/dhcp/dhcpv4"
)

// Event is one DHCP message this box received or sent, for the activity view.
type Event struct {
	At        time.Time  `json:"at"`
	Type      string     `json:"type"` // DISCOVER, OFFER, REQUEST, ACK, NAK, RELEASE, DECLINE, INFORM; a boot step: TFTP, SCRIPT, FILE, BOOTED
	Sent      bool       `json:"sent"` // a reply of ours; false: a client's message
	MAC       site.MAC   `json:"mac"`
	IP        netip.Addr `json:"ip,omitzero"`    // offered, acknowledged, requested, released or declined
	Relay     netip.Addr `json:"relay,omitzero"` // giaddr: the relay agent it came through
	Interface string     `json:"interface"`
	Hostname  string     `json:"hostname,omitempty"`
	Reason    string     `json:"reason,omitempty"` // why a NAK
	File      string     `json:"file,omitempty"`   // what a boot step served: a file, a script's profile, a booted host
}

// ActivityLen bounds the events kept: the newest, in a ring.
const ActivityLen = 2048

// activity is the last ActivityLen events, newest last.
type activity struct {
	mu     sync.Mutex
	ring   [ActivityLen]Event
	next   int // where the next event goes
	filled bool
}

func (a *activity) add(e Event) {
	a.mu.Lock()
	a.ring[a.next] = e
	if a.next++; a.next == ActivityLen {
		a.next, a.filled = 0, true
	}
	a.mu.Unlock()
}

// newest returns up to limit events, newest first, that have q (lower case) in their
// type, MAC, address, relay, hostname or reason.
func (a *activity) newest(q string, limit int) []Event {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := []Event{}
	n := a.next
	if a.filled {
		n = ActivityLen
	}
	for i := range n {
		e := a.ring[(a.next-1-i+ActivityLen)%ActivityLen]
		if q == "" || e.matches(q) {
			out = append(out, e)
			if len(out) == limit {
				break
			}
		}
	}
	return out
}

func (e *Event) matches(q string) bool {
	for _, s := range []string{strings.ToLower(e.Type), e.MAC.String(), e.IP.String(), e.Relay.String(), e.Hostname, strings.ToLower(e.Reason), e.Interface, strings.ToLower(e.File)} {
		if strings.Contains(s, q) {
			return true
		}
	}
	return false
}

// eventOf is m, received on l (sent, when a reply of ours), as an Event.
func eventOf(l *link, m *dhcpv4.DHCPv4, sent bool, at time.Time) Event {
	mt := typeOf(m)
	e := Event{At: at, Type: mt.String(), Sent: sent, // the library's names: DISCOVER, ACK, ...
		Interface: l.name, Relay: addr(m.GatewayIPAddr), Hostname: m.HostName()}
	if len(m.ClientHWAddr) == 6 {
		e.MAC = site.MAC(m.ClientHWAddr)
	}
	switch {
	case sent:
		e.IP = addr(m.YourIPAddr)
		if mt == dhcpv4.MessageTypeNak {
			e.Reason = m.Message()
		}
	case addr(m.RequestedIPAddress()).IsValid():
		e.IP = addr(m.RequestedIPAddress())
	default:
		e.IP = addr(m.ClientIPAddr)
	}
	if e.IP.IsUnspecified() {
		e.IP = netip.Addr{}
	}
	if e.Relay.IsUnspecified() {
		e.Relay = netip.Addr{}
	}
	return e
}

// NoteBoot adds a boot step the boot service served to the activity view, beside the
// DHCP exchange that pointed the machine there.
func (s *Service) NoteBoot(e boot.Event) {
	s.activity.add(Event{At: e.At, Type: strings.ToUpper(e.Step), Sent: true, MAC: e.MAC, IP: e.Client, File: e.File})
}

// Activity returns up to limit of the DHCP messages this box received and sent lately,
// newest first, that have q in their type, MAC, address, relay, hostname or reason.
func (s *Service) Activity(q string, limit int) []Event {
	return s.activity.newest(strings.ToLower(q), limit)
}

package dhcp

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/infrad/infrad/pkg/ipam"
	"github.com/infrad/infrad/pkg/site"
)

// maxHeldEnds bounds the RELEASEs and DECLINEs kept while the cluster can take no
// write; past it the oldest is dropped (infrad_dhcp_ends_dropped_total), and its lease
// ends when it expires.
const maxHeldEnds = 1024

// heldEnds are the RELEASEs and DECLINEs a client sent while the cluster could not
// commit them (no quorum: an election, a node cut off). The client does not send
// them again, so the service keeps them and applies them, in the order they came,
// once a write goes through; a lease ended late is only a lease held longer.
type heldEnds struct {
	mu   sync.Mutex
	cmds []ipam.Command
}

// hold keeps cmd for later; it reports whether an older one was dropped for it.
func (h *heldEnds) hold(cmd ipam.Command) (dropped bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.cmds) >= maxHeldEnds {
		h.cmds, dropped = h.cmds[1:], true
	}
	h.cmds = append(h.cmds, cmd)
	return dropped
}

func (h *heldEnds) len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.cmds)
}

// apply applies the held ends in order, and keeps those the cluster still cannot take
// (and what came meanwhile). Any other outcome (applied, or refused: the lease is
// gone or another's) lets the end go; applied counts those the cluster made.
func (h *heldEnds) apply(ctx context.Context, m *ipam.IPAM) (applied int) {
	h.mu.Lock()
	cmds := h.cmds
	h.cmds = nil
	h.mu.Unlock()
	for i, cmd := range cmds {
		_, err := m.Apply(ctx, cmd)
		if unsure(err) || ctx.Err() != nil {
			h.mu.Lock()
			h.cmds = append(cmds[i:len(cmds):len(cmds)], h.cmds...)
			h.mu.Unlock()
			return applied
		}
		if err == nil {
			applied++
		}
	}
	return applied
}

// inFlight are the lease commits this node has sent to the log and not learnt the
// outcome of: those under way, and those it stopped waiting for (commitWait, the
// leader lost) which the cluster may still apply, late, after a failover. The
// client's RELEASE, heard meanwhile, must end the lease such a commit makes too, or
// the lease outlives the release to its expiry: release names them
// (ipam.ReleaseClientLease). One whose outcome is unknown is kept until its lease
// would have expired.
type inFlight struct {
	mu sync.Mutex
	m  map[netip.Addr][]commit
}

type commit struct {
	mac     site.MAC
	expires time.Time
}

// start records c as under way, until known.
func (f *inFlight) start(c ipam.CommitLease) commit {
	k := commit{c.MAC, c.Expires}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = map[netip.Addr][]commit{}
	}
	cs := slices.DeleteFunc(f.m[c.IP], func(o commit) bool { return !o.expires.After(c.At) })
	f.m[c.IP] = append(cs, k)
	return k
}

// known says the log's answer to the commit at ip was had: applied (the model has
// it) or refused.
func (f *inFlight) known(ip netip.Addr, k commit) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cs := f.m[ip]
	if i := slices.Index(cs, k); i >= 0 {
		cs = slices.Delete(cs, i, i+1)
	}
	if len(cs) == 0 {
		delete(f.m, ip)
	} else {
		f.m[ip] = cs
	}
}

// of returns the expiries of mac's commits at ip that are not known, and forgets
// those whose lease would have ended by now.
func (f *inFlight) of(ip netip.Addr, mac site.MAC, now time.Time) []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	cs := slices.DeleteFunc(f.m[ip], func(c commit) bool { return !c.expires.After(now) })
	if len(cs) == 0 {
		delete(f.m, ip)
		return nil
	}
	f.m[ip] = cs
	var out []time.Time
	for _, c := range cs {
		if c.mac == mac {
			out = append(out, c.expires)
		}
	}
	return out
}

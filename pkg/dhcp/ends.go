package dhcp

import (
	"context"
	"errors"
	"sync"

	"github.com/infrad/infrad/pkg/ipam"
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
// gone or another's) lets the end go.
func (h *heldEnds) apply(ctx context.Context, m *ipam.IPAM) (applied int) {
	h.mu.Lock()
	cmds := h.cmds
	h.cmds = nil
	h.mu.Unlock()
	for i, cmd := range cmds {
		if _, err := m.Apply(ctx, cmd); errors.Is(err, ipam.ErrNoQuorum) || ctx.Err() != nil {
			h.mu.Lock()
			h.cmds = append(cmds[i:len(cmds):len(cmds)], h.cmds...)
			h.mu.Unlock()
			return applied
		}
		applied++
	}
	return applied
}

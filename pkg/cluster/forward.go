package cluster

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/hashicorp/raft"

	"github.com/infrad/infrad/pkg/ipam"
)

// A follower forwards the commands it is given to the leader in batches: a few
// workers each take what is queued (up to forwardBatch entries), send it in one
// request on a kept-alive connection, and hand each entry its outcome. One request per
// command opened a TLS connection per concurrent command under a DHCP storm, and the
// handshakes starved Raft's heartbeats.

const (
	forwardBatch   = 256
	forwardWorkers = 4
)

type forwarded struct {
	entry []byte
	done  chan error // buffered: the worker never waits on the caller
}

// forward commits entry through the leader.
func (n *Node) forward(ctx context.Context, entry []byte) error {
	f := &forwarded{entry: entry, done: make(chan error, 1)}
	select {
	case n.forwards <- f:
	case <-ctx.Done():
		return ctx.Err()
	case <-n.stop:
		return fmt.Errorf("%w: %s is stopping", ipam.ErrNoQuorum, n.Name())
	}
	select {
	case err := <-f.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// forwarding is one worker sending the queued entries to the leader.
func (n *Node) forwarding() {
	defer n.wg.Done()
	batch := make([]*forwarded, 0, forwardBatch)
	for {
		select {
		case f := <-n.forwards:
			batch = append(batch[:0], f)
		case <-n.stop:
			return
		}
	more:
		for len(batch) < forwardBatch {
			select {
			case f := <-n.forwards:
				batch = append(batch, f)
			default:
				break more
			}
		}
		errs := n.sendBatch(batch)
		for i, f := range batch {
			f.done <- errs[i]
		}
	}
}

// sendBatch sends entries to the leader in one request: each entry with its length
// before it. The answer is one outcome per entry.
func (n *Node) sendBatch(batch []*forwarded) []error {
	errs := make([]error, len(batch))
	fill := func(err error) []error {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	addr, _ := n.raft.LeaderWithID()
	if addr == "" {
		return fill(fmt.Errorf("%w: %s knows no leader now", ipam.ErrNoQuorum, n.Name()))
	}
	var body bytes.Buffer
	for _, f := range batch {
		body.Write(binary.AppendUvarint(nil, uint64(len(f.entry))))
		body.Write(f.entry)
	}
	ctx, cancel := context.WithTimeout(context.Background(), applyTimeout+5*time.Second)
	defer cancel()
	var outcomes []outcome
	err := n.call(ctx, http.MethodPost, addr, "/cluster/v1/append", body.Bytes(), &outcomes)
	var re *remoteError
	switch {
	case err == nil && len(outcomes) == len(batch):
	case err == nil:
		return fill(fmt.Errorf("the leader answered %d outcomes for %d entries", len(outcomes), len(batch)))
	case errors.As(err, &re) && re.Code == codeNotLeader:
		return fill(errNotLeader)
	case errors.As(err, &re):
		return fill(fmt.Errorf("%w: the leader could not commit the change: %s", ipam.ErrNoQuorum, re.Message))
	default:
		return fill(fmt.Errorf("%w: the leader at %s is out of reach (%v); the change may or may not be made", ipam.ErrNoQuorum, addr, err))
	}
	for i, o := range outcomes {
		switch o.Code {
		case "":
		case codeNotLeader:
			errs[i] = errNotLeader
		default:
			errs[i] = fmt.Errorf("%w: the leader could not commit the change: %s", ipam.ErrNoQuorum, o.Message)
		}
	}
	return errs
}

// outcome is what became of one forwarded entry: no code when it is committed.
type outcome struct {
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}

// serveAppend commits a follower's entries, on the leader: all are handed to Raft
// first, so that they share its batches, and then each is waited for.
func (n *Node) serveAppend(w http.ResponseWriter, r *http.Request) {
	raw, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	var entries [][]byte
	for len(raw) > 0 {
		size, k := binary.Uvarint(raw)
		if k <= 0 || uint64(len(raw)-k) < size {
			writeError(w, http.StatusBadRequest, "bad_request", "a malformed batch of entries")
			return
		}
		entries, raw = append(entries, raw[k:k+int(size)]), raw[k+int(size):]
	}
	if n.raft.State() != raft.Leader {
		writeError(w, http.StatusServiceUnavailable, codeNotLeader, "this node is not the leader")
		return
	}
	futures := make([]raft.ApplyFuture, len(entries))
	for i, e := range entries {
		ext, _ := headerOf(e) // (an entry it cannot read goes as it came: the nodes stop on it)
		futures[i] = n.raft.ApplyLog(raft.Log{Data: e, Extensions: ext}, applyTimeout)
	}
	outcomes := make([]outcome, len(entries))
	for i, f := range futures {
		if err := f.Error(); err != nil {
			outcomes[i] = outcome{Code: codeNoQuorum, Message: err.Error()}
			if errors.Is(err, raft.ErrNotLeader) {
				outcomes[i].Code = codeNotLeader
			}
		}
	}
	writeJSON(w, http.StatusOK, outcomes)
}

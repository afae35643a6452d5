package cluster

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/infrad/infrad/pkg/ipam"
)

// An entry of the log is one command of the write path. Its data is JSON, byte for
// byte what earlier builds wrote and read (so that two builds read each other's log):
//
//	{"origin":"infra1/9f3a…","seq":42,"type":"CommitLease","command":{…}}
//
// and its header is in Raft's Extensions of the entry, binary: who appended it
// (origin: the node and its process, so that a restarted node waits on none of its
// old entries; seq: the process's count of its entries), what it is (type), and
// whether a build that does not know the type may pass over it (skippable; no command
// of this build is). So a node finds the caller waiting on its own entry without
// reading the JSON, and an entry's type is known before its command is decoded.
// Earlier builds ignore the Extensions; an entry they appended (as leader) has none,
// and its header is read from its JSON.
type header struct {
	Origin    string
	Seq       uint64
	Skippable bool
	Type      string
}

// headerVersion is the first byte of a header in Raft's Extensions.
const headerVersion = 1

// append writes h in its binary form: the version, flags (1: skippable), then the
// type and the origin, each with its length before it, then the sequence number.
func (h header) append(b []byte) []byte {
	flags := byte(0)
	if h.Skippable {
		flags |= 1
	}
	b = append(b, headerVersion, flags)
	b = binary.AppendUvarint(b, uint64(len(h.Type)))
	b = append(b, h.Type...)
	b = binary.AppendUvarint(b, uint64(len(h.Origin)))
	b = append(b, h.Origin...)
	return binary.AppendUvarint(b, h.Seq)
}

// readHeader reads a header that append wrote; false for any other bytes (none, a
// later version).
func readHeader(b []byte) (header, bool) {
	if len(b) < 2 || b[0] != headerVersion {
		return header{}, false
	}
	h := header{Skippable: b[1]&1 != 0}
	b = b[2:]
	field := func() (string, bool) {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return "", false
		}
		v := string(b[k : k+int(n)])
		b = b[k+int(n):]
		return v, true
	}
	var ok bool
	if h.Type, ok = field(); !ok {
		return header{}, false
	}
	if h.Origin, ok = field(); !ok {
		return header{}, false
	}
	seq, k := binary.Uvarint(b)
	if k <= 0 || k != len(b) {
		return header{}, false
	}
	h.Seq = seq
	return h, true
}

// jsonEntry is an entry's data as encoding/json reads it.
type jsonEntry struct {
	Origin    string          `json:"origin"`
	Seq       uint64          `json:"seq"`
	Skippable bool            `json:"skippable,omitempty"`
	Type      string          `json:"type"`
	Command   json.RawMessage `json:"command"`
}

// appendEntry writes cmd's data, as json.Marshal(jsonEntry{…}) would, without a
// second pass over the command's JSON.
func appendEntry(b []byte, origin string, seq uint64, cmd ipam.Command) ([]byte, error) {
	body, err := ipam.MarshalCommand(cmd)
	if err != nil {
		return nil, err
	}
	b = append(b, `{"origin":`...)
	b = strconv.AppendQuote(b, origin)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, `,"type":`...)
	b = strconv.AppendQuote(b, ipam.CommandType(cmd))
	b = append(b, `,"command":`...)
	b = append(b, body...)
	return append(b, '}'), nil
}

// headerOf reads the header of a forwarded entry's data, for the leader to give it
// Extensions.
func headerOf(data []byte) ([]byte, bool) {
	var e jsonEntry
	if json.Unmarshal(data, &e) != nil {
		return nil, false
	}
	return header{Origin: e.Origin, Seq: e.Seq, Skippable: e.Skippable, Type: e.Type}.append(nil), true
}

// waits is the registry of the commands this process appended and waits on, by
// sequence number (etcd's pkg/wait): the applier takes an entry's waiter when it
// meets the entry, and the writer hands it the outcome. No entry is decoded to find
// its waiter, and the waiter's command goes to the writer as it was given.
type waits struct {
	mu sync.Mutex
	m  map[uint64]*waiter
}

type waiter struct {
	cmd  ipam.Command
	done chan reply // buffered: the writer never waits on the caller
}

// reply is a command's outcome, as the writer gives it.
type reply struct {
	result any
	err    error
}

func (w *waits) register(seq uint64, cmd ipam.Command) *waiter {
	wt := &waiter{cmd: cmd, done: make(chan reply, 1)}
	w.mu.Lock()
	if w.m == nil {
		w.m = map[uint64]*waiter{}
	}
	w.m[seq] = wt
	w.mu.Unlock()
	return wt
}

// take removes and returns seq's waiter, if it still waits.
func (w *waits) take(seq uint64) (*waiter, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	wt, ok := w.m[seq]
	delete(w.m, seq)
	return wt, ok
}

func (wt *waiter) finish(result any, err error) { wt.done <- reply{result, err} }

// appliedWait bounds how long Apply waits, after the log took a command, for this box
// to apply it, when the caller set no deadline.
const appliedWait = 10 * time.Second

// everyBuildApplies are the command types of the builds from before the nodes
// announced what they apply (the probes' state `commands`): every build applies
// these, and a node that announces nothing applies only these. A type added since is
// appended only once every node has announced it (mayAppend).
var everyBuildApplies = map[string]bool{
	"PutSubnet": true, "DeleteSubnet": true, "PutHost": true, "DeleteHost": true, "AllocateHost": true,
	"PutRecord": true, "DeleteRecord": true, "UpdateRecords": true, "Reconcile": true, "CommitLease": true,
	"ReleaseLease": true, "DeclineLease": true, "ExpireLeases": true, "TableWrite": true, "PinLease": true,
	"PutToken": true, "DeleteToken": true, "Resign": true,
}

// mayAppend says whether a command of type typ may go into the log: every build
// applies it, or every node of the configuration has said it does.
func (n *Node) mayAppend(typ string) bool {
	return everyBuildApplies[typ] || !n.Clustered() || n.everyVoterApplies(typ)
}

// Apply is the write path's ipam.Log: it appends cmd's entry to the log (on the
// leader, directly or forwarded) and returns the command's outcome once this node has
// applied it.
func (n *Node) Apply(ctx context.Context, cmd ipam.Command) (any, error) {
	for _, typ := range []string{ipam.CommandType(cmd), ipam.Requires(cmd)} {
		if typ != "" && !n.mayAppend(typ) {
			return nil, fmt.Errorf("%s: %w: upgrade every node first", typ, ipam.ErrNotEveryBuild)
		}
	}
	seq := n.seq.Add(1)
	data, err := appendEntry(make([]byte, 0, 512), n.origin, seq, cmd)
	if err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, appliedWait)
		defer cancel()
	}
	ext := header{Origin: n.origin, Seq: seq, Type: ipam.CommandType(cmd)}.append(make([]byte, 0, 64))
	wt := n.waits.register(seq, cmd)
	defer n.waits.take(seq)
	if err := n.appendLog(ctx, data, ext); err != nil {
		return nil, err
	}
	select {
	case o := <-wt.done:
		return o.result, o.err
	case <-ctx.Done():
		return nil, fmt.Errorf("the cluster took the change, and this box has not applied it yet: %w", ctx.Err())
	}
}

// applyEntry hands the log's entry at index to the write path: this process's own
// entry with the command its caller gave, any other decoded. An entry this build
// cannot read stops the node, its store at the entry before, unless the entry says it
// may be skipped: applying what follows without it would leave this node's store
// other than the others', silently.
func (n *Node) applyEntry(index uint64, data, ext []byte) {
	h, typed := readHeader(ext)
	if typed && h.Origin == n.origin {
		if wt, ok := n.waits.take(h.Seq); ok {
			n.ipam.Submit(index, wt.cmd, wt.finish)
			return
		}
	}
	var e jsonEntry
	err := json.Unmarshal(data, &e)
	if err == nil && !typed && e.Origin == n.origin { // appended by a leader of an earlier build
		if wt, ok := n.waits.take(e.Seq); ok {
			n.ipam.Submit(index, wt.cmd, wt.finish)
			return
		}
	}
	var cmd ipam.Command
	if err == nil {
		cmd, err = ipam.DecodeCommand(e.Type, e.Command)
	}
	if err != nil && !(e.Skippable || h.Skippable) {
		n.ipam.Flush()
		panic(fmt.Sprintf("infrad: entry %d of the cluster's log is a command this build cannot apply (%v): upgrade infrad on this node; its store stays at entry %d", index, err, n.ipam.Applied()))
	}
	n.ipam.Submit(index, cmd, nil) // (nil: a skippable entry, passed over)
}

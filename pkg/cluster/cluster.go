// Package cluster replicates the site across the boxes of a cluster with
// hashicorp/raft: the write path's commands are the log's entries, each box's store
// is the state machine the log is applied to, and a Raft snapshot is the store's hot
// backup stream. One box is a cluster of one, on the same path. Nodes talk mutual TLS
// on the cluster port with certificates the site's root signs; a follower forwards
// the commands it is given to the leader.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	"golang.org/x/sys/unix"

	"github.com/infrad/infrad/pkg/config"
	"github.com/infrad/infrad/pkg/ipam"
	"github.com/infrad/infrad/pkg/pki"
	"github.com/infrad/infrad/pkg/store"
)

// Dir is where a node keeps Raft's log and snapshots in its data directory.
const Dir = "raft"

// walSegment is the size of the Raft log's segment files, which raft-wal allocates
// whole (its default, 64 MiB, is much for a small box's site).
const walSegment = 8 << 20

// logCache is how many of the last log entries Raft keeps decoded in memory: a
// follower applies what it has just appended, and a leader replicates what it has just
// written, without reading either back from the log's files (a seventh of a
// follower's CPU in a DHCP storm before it). Four of Raft's largest batches.
const logCache = 1024

// oneBox is the one box's name in its cluster of one.
const oneBox = "infrad"

// Options configure New.
type Options struct {
	Site    *config.Site // its Cluster nil: one box
	Node    string       // this node's name in Site.Cluster; ignored for one box
	DataDir string
	Logger  *slog.Logger
}

// Node is this box's member of the cluster.
type Node struct {
	log       *slog.Logger
	site      *config.Site
	self      config.Node // the zero Node for one box
	dataDir   string
	fresh     bool   // no Raft state on disk when New ran
	joinedVia string // the node that admitted this one, when it joined now

	logs      *wal.WAL // Raft's log and stable store, in <data_dir>/raft/wal
	lock      *os.File // held while the log is open
	snaps     raft.SnapshotStore
	raft      *raft.Raft
	localAddr raft.ServerAddress
	ipam      *ipam.IPAM
	store     *store.Store

	origin string        // who this process is in the log's entries: its name and a random number
	seq    atomic.Uint64 // the last sequence number given to one of its entries
	waits  waits

	id     *pki.NodeIdentity // nil for one box
	tls    tlsConfigs
	mux    *portMux
	http   *http.Server
	client *http.Client

	forwards   chan *forwarded
	seenLeader atomic.Bool
	caughtUp   atomic.Bool // applied as far as the leader had committed when first heard
	peers      peerTable
	promises   promises // renewals made without the quorum (settle.go)
	wasMember  atomic.Bool
	evicted    atomic.Pointer[string] // why this node is no longer a member (Evicted)
	stop       chan struct{}
	wg         sync.WaitGroup
}

// New opens this node's Raft log and snapshots, and for a cluster its identity (the
// site's CA under the data directory: made here on the first node's first start, and
// received on joining). Start starts it.
func New(opts Options) (*Node, error) {
	n := &Node{log: opts.Logger, site: opts.Site, dataDir: opts.DataDir, stop: make(chan struct{}), forwards: make(chan *forwarded)}
	if c := opts.Site.Cluster; c != nil {
		self, ok := c.Node(opts.Node)
		if !ok {
			return nil, fmt.Errorf("--node %q is not one of cluster.nodes in %s", opts.Node, opts.Site.Source)
		}
		n.self = self
	}
	n.origin = fmt.Sprintf("%s/%x", n.Name(), rand.Uint64()) // a restarted node waits on none of its old entries
	dir := filepath.Join(opts.DataDir, Dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	// raft-wal takes no lock of its own: this one keeps a second infrad off the log,
	// as the store's keeps it off the store.
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("open the Raft log in %s: %w (its lock is taken: stop the other infrad, or give this one another data directory)", dir, store.ErrLocked)
	}
	n.lock = lock
	if err := os.MkdirAll(filepath.Join(dir, "wal"), 0o700); err != nil {
		lock.Close()
		return nil, err
	}
	logs, err := wal.Open(filepath.Join(dir, "wal"), wal.WithLogger(n.hclog()), wal.WithSegmentSize(walSegment))
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("open the Raft log: %w", err)
	}
	n.logs = logs
	if n.snaps, err = raft.NewFileSnapshotStoreWithLogger(dir, 2, n.hclog()); err != nil {
		lock.Close()
		logs.Close()
		return nil, fmt.Errorf("open the Raft snapshots: %w", err)
	}
	has, err := raft.HasExistingState(logs, logs, n.snaps)
	if err != nil {
		lock.Close()
		logs.Close()
		return nil, err
	}
	n.fresh = !has
	return n, nil
}

// Clustered says whether the site runs on several boxes.
func (n *Node) Clustered() bool { return n.site.Cluster != nil }

func (n *Node) joined() bool { return n.joinedVia != "" }

// Fresh says whether this node has never been a member: it bootstraps the cluster,
// or joins it.
func (n *Node) Fresh() bool { return n.fresh }

// Name is this node's name in the cluster.
func (n *Node) Name() string {
	if !n.Clustered() {
		return oneBox
	}
	return n.self.Name
}

func (n *Node) advertise() string {
	return netip.AddrPortFrom(n.self.Address, n.site.Cluster.Port).String()
}

func (n *Node) addressOf(node config.Node) raft.ServerAddress {
	return raft.ServerAddress(netip.AddrPortFrom(node.Address, n.site.Cluster.Port).String())
}

// raftConfig is Raft's configuration: quick to elect on one box; Raft's own timeouts
// (a second) between boxes, which hold under a saturating DHCP storm where half of
// them lost the leader again and again.
func (n *Node) raftConfig() *raft.Config {
	c := raft.DefaultConfig()
	c.LocalID = raft.ServerID(n.Name())
	c.Logger = n.hclog()
	c.NoSnapshotRestoreOnStart = true // the store is durable by itself, and knows the last entry it applied
	c.MaxAppendEntries = 256
	c.BatchApplyCh = true
	c.TrailingLogs = 4096
	c.SnapshotThreshold = 8192
	if !n.Clustered() {
		// One voter, no network: the timeouts only delay its election at start (one
		// to two heartbeat timeouts), which every write waits for. At 100 ms the demo
		// site was ready 221 ms after exec, against 50 before Raft.
		c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout = 10*time.Millisecond, 10*time.Millisecond, 10*time.Millisecond
	}
	return c
}

// Start applies the log to m's store from now on and joins the cluster's Raft: on a
// fresh node it bootstraps the cluster (one box, or a first node started without a
// join token), and a node that joined asks the leader to take it as a voter.
func (n *Node) Start(st *store.Store, m *ipam.IPAM) error {
	n.store, n.ipam = st, m
	if n.Clustered() && !n.self.Witness {
		if err := n.readPromises(); err != nil {
			return fmt.Errorf("the renewals this node made without the quorum: %w", err)
		}
	}
	var trans raft.Transport
	if n.Clustered() {
		id, err := n.identity()
		if err != nil {
			return err
		}
		n.id, n.tls = id, tlsConfigs{id: id}
		ln, err := net.Listen("tcp", n.advertise())
		if err != nil {
			return fmt.Errorf("the cluster port: %w", err)
		}
		n.mux = newPortMux(ln, n.tls.server())
		trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
			Stream:  &streamLayer{connQueue: n.mux.raft, advertise: ln.Addr(), client: n.tls.client(protoRaft)},
			MaxPool: 3, Timeout: 5 * time.Second, Logger: n.hclog(),
		})
		n.client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			TLSClientConfig: n.tls.client(protoHTTP), MaxIdleConnsPerHost: 16, IdleConnTimeout: time.Minute,
		}}
		n.http = &http.Server{Handler: n.routes(), ReadHeaderTimeout: 5 * time.Second, ErrorLog: slog.NewLogLogger(n.log.Handler(), slog.LevelDebug)}
		go n.http.Serve(n.mux.http)
	} else {
		_, trans = raft.NewInmemTransport(raft.ServerAddress(oneBox))
	}
	n.localAddr = trans.LocalAddr()
	if !n.fresh {
		if err := n.catchUpWithSnapshot(); err != nil {
			return err
		}
	}
	if n.Clustered() && !n.fresh {
		if err := n.fromOneBox(); err != nil {
			return err
		}
	}
	if n.fresh && !n.joined() {
		if err := m.ResetApplied(); err != nil {
			return err
		}
		if n.Clustered() {
			if err := n.checkAlone(); err != nil {
				return err
			}
			t, err := n.ensureToken()
			if err != nil {
				return fmt.Errorf("the join token: %w", err)
			}
			n.log.Info("cluster bootstrapped: start the other nodes with --join and this token", "node", n.self.Name, "token", t.String(),
				"token_file", filepath.Join(n.dataDir, JoinTokenFile))
		}
		servers := []raft.Server{{Suffrage: raft.Voter, ID: raft.ServerID(n.Name()), Address: trans.LocalAddr()}}
		if err := raft.BootstrapCluster(n.raftConfig(), n.logs, n.logs, n.snaps, trans, raft.Configuration{Servers: servers}); err != nil {
			return fmt.Errorf("bootstrap the cluster: %w", err)
		}
	}
	logs, err := raft.NewLogCache(logCache, n.logs)
	if err != nil {
		return err
	}
	r, err := raft.NewRaft(n.raftConfig(), &fsm{node: n}, logs, n.logs, n.snaps, trans)
	if err != nil {
		return fmt.Errorf("start Raft: %w", err)
	}
	n.raft = r
	if n.Clustered() {
		n.wg.Add(3 + forwardWorkers)
		go n.probe()
		go n.becomeVoter()
		go n.settle()
		for range forwardWorkers {
			go n.forwarding()
		}
		if n.self.Witness {
			n.wg.Add(1)
			go n.handOff()
		}
	}
	n.wg.Add(1)
	go n.catchUp()
	return nil
}

// CaughtUp says whether this node has applied the log as far as the leader had
// committed it when the node first heard from the leader after starting. Before that
// its model may be behind the cluster's: DHCP offers nothing from it (a lease's
// commit is decided in the log's order, so it needs no such wait).
func (n *Node) CaughtUp() bool { return n.caughtUp.Load() }

// catchUp waits for a leader, reads the commit index it has given this node (after a
// heartbeat more, which carries it), waits until Raft has handed the state machine
// that far, and flushes the writer, so that the model holds it.
func (n *Node) catchUp() {
	defer n.wg.Done()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	heartbeat := n.raftConfig().HeartbeatTimeout
	var target uint64
	var heard time.Time // when a leader was first known
	for {
		select {
		case <-n.stop:
			return
		case <-tick.C:
		}
		if target == 0 {
			if addr, _ := n.raft.LeaderWithID(); addr == "" {
				continue
			}
			if heard.IsZero() {
				heard = time.Now()
			}
			if time.Since(heard) < heartbeat && n.raft.State() != raft.Leader {
				continue // a heartbeat more carries the leader's commit index (a leader knows it)
			}
			target, _ = strconv.ParseUint(n.raft.Stats()["commit_index"], 10, 64)
			target = max(target, 1)
		}
		if n.raft.AppliedIndex() >= target { // (Raft's own entries, a new term's no-op, count too)
			n.ipam.Flush() // what Raft handed over is in the model
			n.caughtUp.Store(true)
			n.log.Info("caught up with the cluster's log", "index", target)
			return
		}
	}
}

// handOff makes a witness give the leadership away whenever it wins an election: it
// votes so that two boxes keep a majority, and the leader carries every write, which
// a witness (a small box, perhaps) should not. While no other voter can take it (the
// witness alone with a quorum of one other that is behind) it tries again.
func (n *Node) handOff() {
	defer n.wg.Done()
	ch := make(chan raft.Observation, 4)
	obs := raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	n.raft.RegisterObserver(obs)
	defer n.raft.DeregisterObserver(obs)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-ch:
		case <-tick.C:
		}
		if n.raft.State() != raft.Leader {
			continue
		}
		if err := n.raft.LeadershipTransfer().Error(); err != nil {
			n.log.Warn("the witness leads, and could not hand the leadership over yet", "err", err)
			continue
		}
		n.log.Info("the witness won an election and handed the leadership over")
	}
}

// catchUpWithSnapshot restores Raft's last snapshot into a store that is behind it
// (a store put back from an older backup while the log was kept): Raft replays the
// log only from that snapshot on, and the entries before it are gone from the log.
func (n *Node) catchUpWithSnapshot() error {
	metas, err := n.snaps.List()
	if err != nil || len(metas) == 0 || metas[0].Index <= n.ipam.Applied() {
		return err
	}
	meta, rc, err := n.snaps.Open(metas[0].ID)
	if err != nil {
		return err
	}
	defer rc.Close()
	n.log.Warn("the store is behind Raft's last snapshot: restoring the snapshot", "store", n.ipam.Applied(), "snapshot", meta.Index)
	return n.ipam.Restore(rc)
}

// fromOneBox makes a box that served its site alone the first node of the cluster
// its site file now declares, with everything its store and log hold: its log's
// configuration (the one box, oneBox) is replaced by this node alone, as Raft's
// manual recovery does, and the others join it.
func (n *Node) fromOneBox() error {
	_, probe := raft.NewInmemTransport(raft.ServerAddress(oneBox))
	conf, err := raft.GetConfiguration(n.raftConfig(), &fsm{node: n}, n.logs, n.logs, n.snaps, probe)
	if err != nil {
		return fmt.Errorf("read the Raft configuration: %w", err)
	}
	if len(conf.Servers) != 1 || conf.Servers[0].ID != oneBox {
		return nil
	}
	self := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: raft.ServerID(n.self.Name), Address: n.localAddr}}}
	_, tmp := raft.NewInmemTransport(n.localAddr)
	if err := raft.RecoverCluster(n.raftConfig(), &fsm{node: n}, n.logs, n.logs, n.snaps, tmp, self); err != nil {
		return fmt.Errorf("make this box the cluster's first node: %w", err)
	}
	t, err := n.ensureToken()
	if err != nil {
		return err
	}
	n.log.Info("this box served its site alone: it is now the cluster's first node, with its data; start the other nodes with --join and this token",
		"node", n.self.Name, "token", t.String(), "token_file", filepath.Join(n.dataDir, JoinTokenFile))
	return nil
}

// Stop leaves the node's Raft and closes its log. A leader hands its leadership to
// another voter first, so that writes go on without waiting out an election.
func (n *Node) Stop() error {
	close(n.stop)
	var err error
	if n.raft != nil {
		if n.Clustered() && n.raft.State() == raft.Leader {
			if err := n.raft.LeadershipTransfer().Error(); err != nil {
				n.log.Debug("leadership not handed over", "err", err)
			}
		}
		err = n.raft.Shutdown().Error()
	}
	if n.mux != nil { // (also when Start failed after it took the port)
		n.mux.Close()
		n.http.Close()
	}
	n.wg.Wait()
	err = errors.Join(err, n.logs.Close())
	n.lock.Close()
	return err
}

// applyTimeout bounds how long the leader waits to take an entry into its log.
const applyTimeout = 5 * time.Second

// startupWait is how long a node that has not yet seen a leader since it started
// waits for one before refusing a write.
const startupWait = 5 * time.Second

// appendLog commits entry to the log, with ext as its Extensions: on the leader
// directly, on a follower through the leader (which makes the Extensions again).
func (n *Node) appendLog(ctx context.Context, entry, ext []byte) error {
	for attempt := 0; ; attempt++ {
		leader, err := n.leader(ctx)
		if err != nil {
			return err
		}
		if leader != n.localAddr && n.raft.State() != raft.Leader {
			err = n.forward(ctx, entry)
			switch {
			case errors.Is(err, errNotLeader) && attempt < 2:
				continue // the lead moved on: ask the new leader
			case errors.Is(err, errNotLeader):
				return fmt.Errorf("%w: the lead is moving (%v)", ipam.ErrNoQuorum, err)
			}
			return err
		}
		err = n.raft.ApplyLog(raft.Log{Data: entry, Extensions: ext}, applyTimeout).Error()
		switch {
		case err == nil:
			return nil
		case errors.Is(err, raft.ErrNotLeader) && attempt < 2:
			continue // it has just lost the lead: the new leader takes it
		case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrEnqueueTimeout):
			return fmt.Errorf("%w: %s lost the leadership before the change was committed (%v); it may or may not be made", ipam.ErrNoQuorum, n.Name(), err)
		}
		return err
	}
}

// leader is the leader's cluster address. Without one the node has no quorum: it
// refuses at once, except just after it started, when it waits a little for one.
func (n *Node) leader(ctx context.Context) (raft.ServerAddress, error) {
	deadline := time.Now().Add(startupWait)
	for {
		if addr, _ := n.raft.LeaderWithID(); addr != "" {
			n.seenLeader.Store(true)
			return addr, nil
		}
		if n.seenLeader.Load() || time.Now().After(deadline) {
			return "", fmt.Errorf("%w: %s cannot reach a majority of the cluster's voters, so it takes no writes (it keeps answering from what it has)", ipam.ErrNoQuorum, n.Name())
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Quorum says whether this node can make writes now: it knows a leader.
func (n *Node) Quorum() bool {
	if n.raft == nil {
		return false
	}
	addr, _ := n.raft.LeaderWithID()
	return addr != ""
}

// hclog is Raft's logger, writing through the node's slog logger.
func (n *Node) hclog() hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Info, Output: &slogWriter{log: n.log}, DisableTime: true})
}

// slogWriter passes hclog's lines to slog.
type slogWriter struct{ log *slog.Logger }

func (w *slogWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level := slog.LevelInfo
	switch {
	case strings.HasPrefix(line, "[ERROR]"):
		level = slog.LevelError
	case strings.HasPrefix(line, "[WARN]"):
		level = slog.LevelWarn
	case strings.HasPrefix(line, "[DEBUG]"), strings.HasPrefix(line, "[TRACE]"):
		level = slog.LevelDebug
	}
	w.log.Log(context.Background(), level, line, "component", "raft")
	return len(p), nil
}

// fsm applies the log to the node's store through its write path.
type fsm struct {
	node   *Node
	synced time.Time // when the store was last synced
}

var _ raft.BatchingFSM = (*fsm)(nil)

func (f *fsm) Apply(l *raft.Log) any { return f.ApplyBatch([]*raft.Log{l})[0] }

// ApplyBatch hands the entries to the write path, which applies them in order, as
// many to a transaction as come together, and returns once they are queued: the
// node that appended an entry answers its caller when the writer has applied it.
// A failure of the store stops the process: the store would no longer follow the log.
func (f *fsm) ApplyBatch(logs []*raft.Log) []any {
	for _, l := range logs {
		if l.Type == raft.LogCommand {
			f.node.applyEntry(l.Index, l.Data, l.Extensions)
		}
	}
	if time.Since(f.synced) > syncEvery {
		f.node.ipam.Flush()
		if err := f.sync(); err != nil {
			f.node.log.Error("the store failed to sync: stopping", "err", err)
			panic(fmt.Sprintf("infrad: the store failed to sync: %v", err))
		}
	}
	return make([]any, len(logs))
}

// The store is Raft's state machine, and Raft's log is what makes a write durable
// before it is acknowledged (fsync'ed by a majority): the store commits to the page
// cache and is synced every syncEvery and before each snapshot, so that it never lags
// a snapshot on disk (Raft replays the log only from the last snapshot on).
const syncEvery = time.Second

func (f *fsm) sync() error {
	f.synced = time.Now()
	return f.node.store.Sync()
}

func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.node.ipam.Flush() // the view is at the last entry Raft handed over
	if err := f.node.ipam.SaveApplied(); err != nil {
		return nil, err
	}
	if err := f.sync(); err != nil {
		return nil, err
	}
	sn, err := f.node.store.Snapshot()
	if err != nil {
		return nil, err
	}
	return &snapshot{sn: sn}, nil
}

func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	if err := f.node.ipam.Restore(rc); err != nil {
		return err
	}
	if err := f.sync(); err != nil {
		return err
	}
	f.node.log.Info("store restored from the leader's snapshot", "applied", f.node.ipam.Applied())
	return nil
}

// snapshot is the store's view at the snapshot's index. Persist releases it once
// written (raft's RecoverCluster never calls Release, and an open view would keep the
// store from closing).
type snapshot struct {
	sn   *store.Snapshot
	once sync.Once
}

func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	defer s.Release()
	if _, err := s.sn.WriteTo(sink); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *snapshot) Release() { s.once.Do(func() { s.sn.Close() }) }

// OpenOneBox opens the write path of a site that one box serves, as infrad serve opens
// it: Raft's log under dataDir, the store at storePath (synced by the node: the log
// makes each write durable). The site's cluster key, if any, is not looked at. close
// stops the node, then the write path, then the store.
func OpenOneBox(site *config.Site, dataDir, storePath string, logger *slog.Logger, notes ipam.RowNotes) (m *ipam.IPAM, st *store.Store, close func() error, err error) {
	oneBox := *site
	oneBox.Cluster = nil
	node, err := New(Options{Site: &oneBox, DataDir: dataDir, Logger: logger})
	if err != nil {
		return nil, nil, nil, err
	}
	if st, err = store.Open(store.Options{Path: storePath, NoSync: true, Logger: logger}); err != nil {
		return nil, nil, nil, errors.Join(err, node.Stop())
	}
	if m, err = ipam.New(ipam.Options{Store: st, Log: node, RowNotes: notes}); err != nil {
		return nil, nil, nil, errors.Join(err, node.Stop(), st.Close())
	}
	if err := node.Start(st, m); err != nil {
		m.Close()
		return nil, nil, nil, errors.Join(err, node.Stop(), st.Close())
	}
	return m, st, func() error {
		err := node.Stop()
		m.Close()
		return errors.Join(err, st.Close())
	}, nil
}

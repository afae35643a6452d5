// Package dns serves the site's DNS. infrad owns its sockets (listen.go, the front
// door) and answers the site's zones (the domain, further zones, and the reverse zones
// of its nodes subnets) from the IPAM model the write path publishes, which holds
// every acknowledged write; names outside them are forwarded through CoreDNS's cache
// and forward plugins, embedded as a library (resolver.go), for clients in
// recursion_allow and refused to everyone else. Zone transfers (AXFR, and IXFR from
// the models IPAM keeps) go to the secondaries and to clients signing with a key that
// may transfer; the secondaries are notified at start and after every change;
// TSIG-signed RFC 2136 updates go through the write path, prerequisites and all. A
// query is read and checked in serve.go (TSIG in tsig.go), transfers are transfer.go's
// and answers answer.go's and view.go's.
package dns

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/infrad/infrad/pkg/config"
	"github.com/infrad/infrad/pkg/ipam"
	"github.com/infrad/infrad/pkg/keyring"
	"github.com/infrad/infrad/pkg/ratelimit"
	"github.com/infrad/infrad/pkg/service"
	"github.com/infrad/infrad/pkg/site"
)

// Options configure a Service.
type Options struct {
	Site     *config.Site          // validated; non-nil
	IPAM     *ipam.IPAM            // non-nil
	Registry prometheus.Registerer // non-nil: the per-query metrics go here
	Logger   *slog.Logger          // nil: slog.Default()
	// Coalesce is how long a change waits for more before the secondaries are
	// notified; 0: 50ms.
	Coalesce time.Duration
	// Synced says whether infrad's clock may be trusted (NTP is not at leap 3), and
	// why not: DNSSEC signs and rolls keys only while it may; nil: always.
	Synced func() (bool, string)
	// Now is the clock DNSSEC signs and rolls keys by; nil: time.Now.
	Now func() time.Time
	// CaughtUp says whether the model has caught up with the cluster's log since the
	// node started; nil: always. Until it has, for catchUpWait at most, the zones'
	// queries are answered SERVFAIL, so that resolvers ask another name server rather
	// than take an answer from a model that may lack the changes made while the node
	// was down.
	CaughtUp func() bool
	// Evicted says why the node is no longer a member of its cluster ("": it is);
	// nil: never. An evicted node's model falls behind for good: the zones' queries
	// are answered SERVFAIL.
	Evicted func() string
}

// catchUpWait bounds how long a starting node answers its zones' queries SERVFAIL
// while it catches up with its cluster: past it (no leader to catch up with: the node
// is cut off), it answers from what it has, and says so.
const catchUpWait = 10 * time.Second

// Service is the DNS service. It is a service.Service.
type Service struct {
	id       string
	log      *slog.Logger
	ipam     *ipam.IPAM
	coalesce time.Duration
	metrics  *metrics

	health service.Tracker
	cfg    atomic.Pointer[serving]

	caughtUp func() bool   // nil: always
	evicted  func() string // nil: never
	created  time.Time
	current  atomic.Bool // the model may answer: caught up, or past catchUpWait
	signer   *signer
	keys     *keyring.Keeper[signingKeys] // the DNSSEC keys, kept in the store

	resolver atomic.Pointer[resolver] // nil: no forwarders
	cache    atomic.Pointer[answers]  // the answers of the zones' last version

	mu       sync.Mutex // guards what follows
	site     config.DNS
	domain   site.Name
	door     *door              // nil: stopped
	stop     context.CancelFunc // ends the watch loop and the key keeper
	watching chan struct{}      // closed when the watch loop and the key keeper have ended
}

// serving is what the hot path reads of the site file.
type serving struct {
	recursionAllow []netip.Prefix
	secondaries    []netip.AddrPort               // notified of every change
	tsig           *tsigPolicy                    // keys and who may transfer
	rrl            *ratelimit.Limiter[netip.Addr] // authoritative answers per client
	dnssec         bool                           // sign the zones
	kskLife        time.Duration                  // roll the KSK after it; 0: on command only
}

// New returns a stopped DNS service.
func New(opts Options) *Service {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Coalesce == 0 {
		opts.Coalesce = 50 * time.Millisecond
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	m := newMetrics(opts.Registry)
	s := &Service{
		id:       hex.EncodeToString(randomBytes(8)),
		log:      opts.Logger,
		ipam:     opts.IPAM,
		coalesce: opts.Coalesce,
		metrics:  m,
		caughtUp: opts.CaughtUp,
		evicted:  opts.Evicted,
		created:  time.Now(),
		signer:   newSigner(opts.Now, opts.Synced, m),
	}
	s.keys = &keyring.Keeper[signingKeys]{
		Name:  ringName,
		Store: opts.IPAM,
		Now:   opts.Now,
		Plan: func(r signingKeys, now time.Time) (signingKeys, bool, error) {
			cfg := s.cfg.Load()
			if !cfg.dnssec { // the keys are made when the site turns signing on, withdrawn when it turns it off
				next, changed := planWithdraw(r, now)
				return next, changed, nil
			}
			at := s.ipam.Model().SignedAt()
			if at.IsZero() {
				at = now
			}
			return planKeys(r, now, cfg.kskLife, at)
		},
		Trusted: func() bool { ok, _ := s.signer.synced(); return ok },
		Use: func(r signingKeys) {
			if err := s.signer.use(r); err != nil {
				s.log.Error("dnssec: the key ring cannot be used", "err", err)
			}
		},
		Log: opts.Logger,
	}
	s.setSite(opts.Site)
	return s
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// setSite takes the site's DNS settings; the hot path sees them at once, the
// listeners and forwarders at the next start or reload. s.mu is held, or s is not yet
// shared.
func (s *Service) setSite(site *config.Site) {
	s.site, s.domain = site.DNS, site.Domain
	s.cfg.Store(&serving{
		recursionAllow: site.DNS.RecursionAllow,
		secondaries:    site.DNS.Secondaries,
		tsig:           newTSIGPolicy(site.DNS),
		rrl:            ratelimit.New[netip.Addr](site.DNS.RateLimit, s.metrics.evicted),
		dnssec:         site.DNS.DNSSEC,
		kskLife:        site.DNS.KSKLife,
	})
}

// Name is "dns".
func (s *Service) Name() string { return "dns" }

// Start checks that every listen address is free, binds them, and starts the loop
// that follows the store.
func (s *Service) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.door != nil {
		return nil
	}
	if err := checkFree(s.site.Listen); err != nil {
		return err
	}
	s.refreshKeys(ctx)
	rs, err := newResolver(s.id, s.site.Forwarders)
	if err != nil {
		return err
	}
	s.resolver.Store(rs)
	d, err := open(&handler{svc: s}, s.site.Listen)
	if err != nil {
		s.resolver.Store(nil)
		rs.stop()
		return err
	}
	if err := s.probe(ctx); err != nil {
		d.close()
		s.resolver.Store(nil)
		rs.stop()
		return err
	}
	s.door = d
	s.health.Reset()
	watchCtx, cancel := context.WithCancel(context.Background())
	s.stop, s.watching = cancel, make(chan struct{})
	go func(done chan<- struct{}) { // both loops end with watchCtx; Stop waits for done
		var keeper sync.WaitGroup
		keeper.Go(func() { s.keys.Run(watchCtx, keyCheck) })
		s.watch(watchCtx)
		keeper.Wait()
		close(done)
	}(s.watching)
	for _, l := range s.site.Listen {
		s.log.Info("dns listening", "addr", l.String())
	}
	return nil
}

// probe asks every listener for the domain's SOA, over UDP and TCP, until each
// answers: Start returns once every socket serves.
func (s *Service) probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return s.ask(ctx, s.site.Listen, string(s.domain))
}

// selfCheck asks every listener once, as probe does, and records the ones that do
// not answer: a lost socket is a failure the Manager restarts.
func (s *Service) selfCheck(ctx context.Context) {
	s.mu.Lock()
	listen, domain := s.site.Listen, string(s.domain)
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := s.ask(ctx, listen, domain); err != nil && !errors.Is(err, context.Canceled) {
		s.health.Fail("listen", err.Error())
		return
	}
	s.health.Clear("listen")
}

// ask queries each listen address for domain's SOA over UDP and TCP, retrying until
// ctx ends.
func (s *Service) ask(ctx context.Context, listen []netip.AddrPort, domain string) error {
	q := new(mdns.Msg).SetQuestion(domain, mdns.TypeSOA)
	for _, l := range listen {
		addr := l
		if l.Addr().IsUnspecified() {
			addr = netip.AddrPortFrom(netip.IPv6Loopback(), l.Port())
			if l.Addr().Is4() {
				addr = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), l.Port())
			}
		}
		for _, network := range []string{"udp", "tcp"} {
			c := &mdns.Client{Net: network, Timeout: 200 * time.Millisecond}
			for {
				if _, _, err := c.ExchangeContext(ctx, q, addr.String()); err == nil {
					break
				}
				select {
				case <-ctx.Done():
					return fmt.Errorf("dns on %s/%s does not answer: %w", addr, network, ctx.Err())
				case <-time.After(5 * time.Millisecond):
				}
			}
		}
	}
	return nil
}

// answersFromModel says whether the zones' queries may be answered from the model:
// the node is a member of its cluster, and has caught up with its log since it
// started, or has waited catchUpWait for it, and then says once that it answers from
// what it has.
func (s *Service) answersFromModel() bool {
	if s.evicted != nil && s.evicted() != "" {
		return false
	}
	if s.current.Load() {
		return true
	}
	switch {
	case s.caughtUp == nil || s.caughtUp():
	case time.Since(s.created) < catchUpWait:
		return false
	default:
		if !s.current.Swap(true) {
			s.log.Warn("dns answers from what this node has: it has not caught up with the cluster since it started, and may lack changes made meanwhile", "waited", catchUpWait)
		}
	}
	s.current.Store(true)
	return true
}

// checkFree binds and releases every listen address, UDP and TCP. The UDP sockets
// are bound with SO_REUSEPORT, so without this a second server on a taken port would
// start and share its queries.
func checkFree(listen []netip.AddrPort) error {
	for _, l := range listen {
		pc, err := net.ListenPacket("udp", l.String())
		if err != nil {
			return fmt.Errorf("dns listen %s/udp: %w", l, err)
		}
		pc.Close()
		ln, err := net.Listen("tcp", l.String())
		if err != nil {
			return fmt.Errorf("dns listen %s/tcp: %w", l, err)
		}
		ln.Close()
	}
	return nil
}

// Stop ends the watch loop and closes every socket. It does not hold s.mu while the
// loop ends, since the loop takes it to rebuild.
func (s *Service) Stop(ctx context.Context) error {
	s.mu.Lock()
	d, stop, watching := s.door, s.stop, s.watching
	s.door = nil
	s.mu.Unlock()
	if d == nil {
		return nil
	}
	stop()
	select {
	case <-watching:
	case <-ctx.Done():
	}
	d.close()
	s.resolver.Swap(nil).stop()
	return nil
}

// Health reports a listener that stopped answering (failed: the Manager restarts the
// service), a reload whose settings could not be applied (degraded), and DNSSEC
// signing paused while the clock is not trusted (degraded: answers go on, their
// signatures expire unrenewed).
func (s *Service) Health() service.Health {
	if paused := s.paused(); paused != "" {
		s.health.Degrade("dnssec", paused)
	} else {
		s.health.Clear("dnssec")
	}
	return s.health.Health()
}

// paused says why the zones, to be signed, are not: the clock is not trusted, or no
// key has been stored yet; "" when they are signed, or not to be.
func (s *Service) paused() string {
	if !s.cfg.Load().dnssec && !s.signer.keys.Load().signs(s.ipam.Model().SignedAt(), false) {
		return ""
	}
	if ok, why := s.signer.synced(); !ok {
		return "signing is paused while the clock is not synchronised: " + why
	}
	if ks := s.signer.keys.Load(); ks == nil || len(ks.keys) == 0 {
		return "no DNSSEC keys yet: the zones are served unsigned until the key ring is stored"
	}
	return ""
}

// Reload takes a new site: its settings apply at once, new listen addresses are
// bound and those gone closed, and new forwarders replace the old. A listen address
// that is taken refuses the reload, and the running ones stay.
func (s *Service) Reload(site *config.Site) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var added []netip.AddrPort
	for _, l := range site.DNS.Listen {
		if !slices.Contains(s.site.Listen, l) {
			added = append(added, l)
		}
	}
	if s.door != nil {
		err := checkFree(added)
		if err == nil {
			err = s.door.listen(site.DNS.Listen)
		}
		if err != nil {
			s.health.Degrade("reload", "the reload's listen addresses could not be bound, so the running ones stay: "+err.Error())
			return err
		}
	}
	s.setSite(site)
	if s.door == nil {
		return nil
	}
	s.refreshKeys(context.Background()) // signing turned on: the keys are made now
	if !s.resolver.Load().forwardsTo(site.DNS.Forwarders) {
		rs, err := newResolver(s.id, site.DNS.Forwarders)
		if err != nil {
			s.health.Fail("reload", "the reloaded forwarders could not be used: "+err.Error())
			return err
		}
		s.resolver.Swap(rs).stop()
	}
	s.health.Clear("reload")
	return nil
}

// view is what a query answers from now.
func (s *Service) view() view {
	m := s.ipam.Model()
	cfg := s.cfg.Load()
	v := view{m: m}
	if cfg.dnssec || s.signer.keys.Load().signs(m.SignedAt(), false) {
		v.dnssec = s.signer
	}
	return v
}

// keyCheck is how often the DNSSEC key ring is read, and rolled when it is due.
const keyCheck = 15 * time.Second

// refreshKeys reads the DNSSEC key ring, making or rolling keys when they are due (a
// key leaves the ring only once the signing time is past its removal), then moves
// the zones' signing time when it is due.
func (s *Service) refreshKeys(ctx context.Context) {
	if err := s.keys.Refresh(ctx); err != nil {
		s.log.Warn("dnssec: the key ring", "err", err)
	}
	s.resign(ctx)
}

// resign moves the model's signing time (ipam.Model.SignedAt) to now when none is
// set, when signatures made as of it are half-way to their expiry, or when a key
// publishes, signs or leaves between it and now. The serial rises, so secondaries
// fetch the zones signed anew long before their signatures expire. Nothing moves
// while signing is off or paused, or before the key ring is read.
func (s *Service) resign(ctx context.Context) {
	ks := s.signer.keys.Load()
	if ks == nil || !s.cfg.Load().dnssec && ks.withdraw == nil {
		return
	}
	if ok, _ := s.signer.synced(); !ok {
		return
	}
	at, now := s.ipam.Model().SignedAt(), s.signer.now().Round(0).UTC()
	// The time moves forward only, but for a clock well behind it (set back), which
	// would soon serve signatures from the future. Boxes a few seconds apart (what
	// the backdating is for) leave it to the one ahead: a box behind that moved it
	// back at a key's event would have the other move it on again, and so on.
	due := at.IsZero() || now.Before(at.Add(-sigBackdate/2)) ||
		(!now.Before(at) && (now.Sub(at) >= sigRefresh || ks.state(at) != ks.state(now)))
	if !due {
		return
	}
	if err := s.ipam.Resign(ctx, at, now); err != nil {
		s.log.Warn("dnssec: the signing time could not move", "err", err)
	}
}

// DNSSEC is what the zones are signed with: the keys' tags, roles and times, each
// zone's DS set as the parent should hold it now, the KSK roll or the withdrawal
// under way, and whether signing is paused; the zero value when it is off.
func (s *Service) DNSSEC() DNSSECStatus {
	cfg := s.cfg.Load()
	ks := s.signer.keys.Load()
	m := s.ipam.Model()
	at := m.SignedAt()
	if at.IsZero() {
		at = s.signer.now()
	}
	if !cfg.dnssec && !ks.signs(at, false) {
		return DNSSECStatus{}
	}
	st := DNSSECStatus{Enabled: cfg.dnssec, Paused: s.paused()}
	if ks == nil {
		return st
	}
	for _, k := range ks.keys {
		role := "zsk"
		if k.KSK {
			role = "ksk"
		}
		st.Keys = append(st.Keys, DNSSECKey{Tag: k.tag, Role: role, Publish: k.Publish, Activate: k.Activate, Retire: k.Retire, Remove: k.removal(),
			DSReady: k.DSReady, DSSeen: k.DSSeen})
	}
	for _, z := range m.Zones() {
		for _, ds := range ks.ds(z, m.TTL(), at) {
			st.DS = append(st.DS, ds.String())
		}
		for _, rr := range ks.cds(z, m.TTL(), at) {
			st.CDS = append(st.CDS, rr.String())
		}
	}
	slices.Sort(st.DS)
	slices.Sort(st.CDS)
	stage := kskStage(ks, at)
	st.KSK = &stage
	if w := ks.withdraw; w != nil {
		st.Withdraw = &Withdrawal{Started: w.Started, DSGone: w.DSGone, Unsigned: w.end()}
	}
	return st
}

// kskStage says where the KSK roll stands at at.
func kskStage(ks *keySet, at time.Time) KSKStage {
	var old, next *zoneKey // the last two KSKs made (the ring keeps them in that order)
	for i := range ks.keys {
		if k := &ks.keys[i]; k.KSK {
			old, next = next, k
		}
	}
	if next == nil || old == nil || !old.present(at) {
		return KSKStage{Stage: "steady"}
	}
	st := KSKStage{Old: old.tag, New: next.tag, Started: next.Publish, CDSFrom: next.DSReady, DSSeen: next.DSSeen, OldLeaves: old.Retire}
	switch {
	case at.Before(next.DSReady):
		st.Stage = "published" // both KSKs sign the DNSKEY set; the CDS waits for it to reach every resolver
	case next.DSSeen.IsZero():
		st.Stage = "cds" // the CDS asks the parent for the new DS: confirm it when the parent has it
	default:
		st.Stage = "retiring" // the parent has the new DS; the old KSK leaves at OldLeaves
	}
	return st
}

// RollKSK starts a KSK roll now (double signature, RFC 6781 §4.1.2).
func (s *Service) RollKSK(ctx context.Context) error {
	if !s.cfg.Load().dnssec {
		return &stageError{"the zones are not signed (dns.dnssec): there is no KSK to roll"}
	}
	err := s.keys.Change(ctx, func(r signingKeys, now time.Time) (signingKeys, bool, error) {
		next, err := startRoll(r, now)
		return next, err == nil, err
	})
	if err == nil {
		s.resign(ctx)
	}
	return err
}

// ConfirmDS says the parent's DS changed as the CDS asked: it names the new KSK (a
// roll), or is gone (a withdrawal).
func (s *Service) ConfirmDS(ctx context.Context) error {
	err := s.keys.Change(ctx, func(r signingKeys, now time.Time) (signingKeys, bool, error) {
		next, err := confirmDS(r, now)
		return next, err == nil, err
	})
	if err == nil {
		s.resign(ctx)
	}
	return err
}

// DNSSECStatus is what DNSSEC reports.
type DNSSECStatus struct {
	Enabled bool        `json:"enabled"`          // dns.dnssec (a withdrawal signs on without it)
	Paused  string      `json:"paused,omitempty"` // why the zones are not signed now
	Keys    []DNSSECKey `json:"keys,omitempty"`
	DS      []string    `json:"ds,omitempty"`  // each zone's DS records as its parent should hold them now, zone-file form
	CDS     []string    `json:"cds,omitempty"` // the CDS and CDNSKEY records the zones publish now
	KSK     *KSKStage   `json:"ksk,omitempty"` // nil: no keys yet
	// Withdraw is signing switched off while the parent may still hold a DS; nil: not.
	Withdraw *Withdrawal `json:"withdraw,omitempty"`
}

// KSKStage is where the KSK roll stands: steady (none under way), published (the new
// KSK signs beside the old), cds (the CDS asks for the new DS), retiring (the parent
// has it; the old KSK leaves at OldLeaves).
type KSKStage struct {
	Stage     string    `json:"stage"`
	Old       uint16    `json:"old,omitempty"`
	New       uint16    `json:"new,omitempty"`
	Started   time.Time `json:"started,omitzero"`
	CDSFrom   time.Time `json:"cds_from,omitzero"`
	DSSeen    time.Time `json:"ds_seen,omitzero"`
	OldLeaves time.Time `json:"old_leaves,omitzero"`
}

// Withdrawal is signing on its way off: a delete CDS from Started; unsigned from
// Unsigned, dsWait after the parent's DS was seen gone (zero: not seen yet).
type Withdrawal struct {
	Started  time.Time `json:"started"`
	DSGone   time.Time `json:"ds_gone,omitzero"`
	Unsigned time.Time `json:"unsigned,omitzero"`
}

// DNSSECKey is one signing key, without its secret.
type DNSSECKey struct {
	Tag      uint16    `json:"tag"`
	Role     string    `json:"role"` // ksk or zsk
	Publish  time.Time `json:"publish"`
	Activate time.Time `json:"activate"`
	Retire   time.Time `json:"retire,omitzero"`
	Remove   time.Time `json:"remove,omitzero"`
	DSReady  time.Time `json:"ds_ready,omitzero"` // a KSK rolled in: its CDS from
	DSSeen   time.Time `json:"ds_seen,omitzero"`  // the parent's DS named it
}

// watch notifies the secondaries once at start (a change made while infrad was
// stopped reaches them now, not at their next refresh), then after each change of the
// zones' serial, gathering the changes of s.coalesce into one NOTIFY, until ctx ends.
func (s *Service) watch(ctx context.Context) {
	m, changed := s.ipam.Watch()
	serial := m.Serial()
	s.notify(m.Zones())
	check := time.NewTicker(5 * time.Second)
	defer check.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-check.C:
			s.selfCheck(ctx)
			s.resign(ctx)
			continue
		case <-changed:
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.coalesce):
		}
		m, changed = s.ipam.Watch()
		if m.Serial() == serial {
			continue
		}
		serial = m.Serial()
		// Another box may have changed the key ring and moved the signing time (a key
		// rolled in): read the ring now, not at the next keyCheck, so this box serves
		// the serial as that box does.
		if s.signer.keys.Load() != nil {
			if err := s.keys.Read(ctx); err != nil {
				s.log.Warn("dnssec: the key ring", "err", err)
			}
		}
		s.notify(m.Zones())
	}
}

// mayRecurse reports whether the client at a may have names outside our zones resolved.
func (s *Service) mayRecurse(a net.Addr) bool {
	ip := clientAddr(a)
	for _, p := range s.cfg.Load().recursionAllow {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

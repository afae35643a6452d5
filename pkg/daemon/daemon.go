// Package daemon assembles infrad from a site: it takes the data directory (the
// store's lock makes it the only infrad there), builds the services in start order
// under a service.Manager, and swaps in a new site on reload. Signals and flags stay
// in main.
package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/infrad/infrad/pkg/api"
	"github.com/infrad/infrad/pkg/boot"
	"github.com/infrad/infrad/pkg/ca"
	"github.com/infrad/infrad/pkg/cluster"
	"github.com/infrad/infrad/pkg/config"
	"github.com/infrad/infrad/pkg/dhcp"
	"github.com/infrad/infrad/pkg/dhcp6"
	"github.com/infrad/infrad/pkg/dns"
	"github.com/infrad/infrad/pkg/export"
	"github.com/infrad/infrad/pkg/ipam"
	"github.com/infrad/infrad/pkg/ntp"
	"github.com/infrad/infrad/pkg/ra"
	"github.com/infrad/infrad/pkg/service"
	"github.com/infrad/infrad/pkg/sshca"
	"github.com/infrad/infrad/pkg/store"
)

// StoreFile is the name of the bbolt file in the data directory.
const StoreFile = "infrad.db"

// Options configure a Daemon.
type Options struct {
	Site   *config.Site // validated; non-nil
	Build  api.BuildInfo
	Logger *slog.Logger // nil: slog.Default()

	// Node is this box's name among the site's cluster.nodes (none for one box);
	// JoinToken, given to a node that has never been a member, makes it join the
	// cluster; Witness runs the node as a voter that serves nothing.
	Node      string
	JoinToken string
	Witness   bool
}

// Daemon is a running infrad.
type Daemon struct {
	log       *slog.Logger
	dataDir   string         // fixed for the daemon's life: the store is open there
	apiListen netip.AddrPort // fixed for the daemon's life: the API is bound there
	store     *store.Store
	node      *cluster.Node
	ipam      *ipam.IPAM
	ntp       *ntp.Service
	dns       *dns.Service
	dhcp      *dhcp.Service
	boot      *boot.Service
	ra        *ra.Service
	dhcp6     *dhcp6.Service
	ca        *ca.Service
	mgr       *service.Manager

	api *api.Server

	// waits is the first reconcile waiting for the quorum, if it must; quit ends it.
	waits sync.WaitGroup
	quit  chan struct{}

	mu       sync.Mutex
	site     *config.Site
	loadedAt time.Time
	restart  []string // keys of the running site file that need a restart
}

// Start opens the data directory and starts every service in order. It returns once
// the services are starting; Ready says when they all are. It fails at once, having
// started nothing, when another infrad holds the data directory.
func Start(ctx context.Context, opts Options) (*Daemon, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	site := opts.Site
	d := &Daemon{log: opts.Logger, dataDir: site.DataDir, apiListen: site.API.Listen, site: site, loadedAt: time.Now(), quit: make(chan struct{})}
	if err := os.MkdirAll(d.dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	if err := checkRole(site, opts); err != nil {
		return nil, err
	}
	node, err := cluster.New(cluster.Options{Site: site, Node: opts.Node, DataDir: d.dataDir, Logger: d.log.With("component", "cluster")})
	if err != nil {
		return nil, err
	}
	d.node = node
	if err := d.open(ctx, opts); err != nil {
		node.Stop()
		return nil, err
	}
	if opts.Witness {
		d.log.Info("infrad witness: a voter of the cluster that serves nothing", "node", opts.Node, "data_dir", d.dataDir)
		return d, nil
	}
	if err := d.firstReconcile(site); err != nil {
		d.closeStore()
		return nil, err
	}
	if err := d.startServices(ctx, opts.Build); err != nil {
		d.closeStore()
		return nil, err
	}
	return d, nil
}

// Recover makes the stopped node opts.Node its cluster's only voter (Raft's manual
// recovery after the quorum is lost for good). Then serve starts it as a cluster of
// one, which the other nodes join again.
func Recover(opts Options) error {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if err := checkRole(opts.Site, opts); err != nil {
		return err
	}
	dataDir := opts.Site.DataDir
	node, err := cluster.New(cluster.Options{Site: opts.Site, Node: opts.Node, DataDir: dataDir, Logger: opts.Logger})
	if err != nil {
		return err
	}
	st, err := store.Open(store.Options{Path: filepath.Join(dataDir, StoreFile), Logger: opts.Logger})
	if err != nil {
		node.Stop()
		return err
	}
	m, err := ipam.New(ipam.Options{Store: st, Log: node, RowNotes: ca.RowNotes})
	if err == nil {
		err = node.Recover(st, m)
		m.Close()
	}
	return errors.Join(err, node.Stop(), st.Close())
}

// checkRole refuses a node started in a role the site file does not give it.
func checkRole(site *config.Site, opts Options) error {
	c := site.Cluster
	switch {
	case c == nil && (opts.Node != "" || opts.JoinToken != "" || opts.Witness):
		return fmt.Errorf("%s has no cluster key: --node, --join and infrad witness are for a cluster of boxes", site.Source)
	case c == nil:
		return nil
	case opts.Node == "":
		return fmt.Errorf("%s declares a cluster: say which node this is with --node NAME", site.Source)
	}
	n, ok := c.Node(opts.Node)
	switch {
	case !ok:
		return fmt.Errorf("--node %q is not one of cluster.nodes in %s", opts.Node, site.Source)
	case n.Witness && !opts.Witness:
		return fmt.Errorf("%s is a witness in %s: run it with infrad witness", n.Name, site.Source)
	case !n.Witness && opts.Witness:
		return fmt.Errorf("%s is not a witness in %s (witness: true): run it with infrad serve", n.Name, site.Source)
	}
	return nil
}

// open joins the cluster when this node is new to it, opens the store, and starts
// applying the cluster's log to it.
func (d *Daemon) open(ctx context.Context, opts Options) error {
	path := filepath.Join(d.dataDir, StoreFile)
	if d.node.Clustered() && d.node.Fresh() && opts.JoinToken != "" {
		if err := d.node.Join(ctx, opts.JoinToken); err != nil {
			return fmt.Errorf("join the cluster: %w", err)
		}
		// The node's store is the cluster's log applied from its start: a store of
		// the box's life before is kept aside, not mixed in.
		if _, err := os.Stat(path); err == nil {
			aside := path + ".before-join"
			if err := os.Rename(path, aside); err != nil {
				return err
			}
			d.log.Warn("the store of this box's life before joining is kept aside", "path", aside)
		}
	}
	// The cluster's Raft log makes each write durable; the store, its state
	// machine, is synced by the cluster package (see cluster.syncEvery).
	st, err := store.Open(store.Options{Path: path, NoSync: true, Logger: d.log.With("component", "store")})
	if err != nil {
		return err
	}
	d.store = st
	if d.ipam, err = ipam.New(ipam.Options{Store: st, Log: d.node, RowNotes: ca.RowNotes}); err != nil {
		st.Close()
		return err
	}
	if err := d.node.Start(st, d.ipam); err != nil {
		d.ipam.Close()
		st.Close()
		return err
	}
	return nil
}

// closeStore stops the node's Raft, then closes the write path and the store.
func (d *Daemon) closeStore() error {
	select {
	case <-d.quit:
	default:
		close(d.quit)
	}
	d.waits.Wait()
	err := d.node.Stop()
	d.ipam.Close()
	return errors.Join(err, d.store.Close())
}

// firstReconcile applies the site file on start. One box refuses to start with a
// file that conflicts with the store. A node of a cluster may start before the
// quorum is back (the first of three after a power cut): it serves what it has and
// applies the file once it can.
func (d *Daemon) firstReconcile(site *config.Site) error {
	err := d.reconcile(site)
	if !d.node.Clustered() || !errors.Is(err, ipam.ErrNoQuorum) {
		return err
	}
	d.log.Warn("the site file waits for the cluster's quorum", "err", err)
	d.waits.Go(func() {
		for {
			select {
			case <-d.quit:
				return
			case <-time.After(2 * time.Second):
			}
			d.mu.Lock()
			current := d.site
			d.mu.Unlock()
			if current != site {
				return // a reload applied a newer file
			}
			err := d.reconcile(site)
			if err == nil {
				return
			}
			if !errors.Is(err, ipam.ErrNoQuorum) {
				d.log.Error("the site file was refused", "err", err)
				return
			}
		}
	})
	return nil
}

// reconcile makes the store's file-owned objects those of site. A site that conflicts
// with objects made through the API comes back as config.Errors, placed in the file.
// The file the store last applied is not applied again: that would read and check the
// whole site (a third of a second at 50,000 hosts) to change nothing.
func (d *Daemon) reconcile(site *config.Site) error {
	set := site.IPAM()
	if d.ipam.Model().Shape().Digest == ipam.FileDigest(site.Source, set) {
		d.log.Info("site file applied already: nothing to change", "site", site.Source)
	} else {
		changes, err := d.ipam.Reconcile(site.Source, set)
		if err != nil {
			return siteErrors(site, err)
		}
		count := map[string]int{}
		for _, c := range changes {
			count[c.Op]++
			d.log.Debug("site file applied", "change", c.String())
		}
		d.log.Info("site file applied", "site", site.Source, "added", count["+"], "changed", count["~"], "removed", count["-"])
	}
	for _, w := range site.Warnings() {
		d.log.Warn("site file: "+w.Msg, "key", w.Path)
	}
	return nil
}

func (d *Daemon) startServices(ctx context.Context, build api.BuildInfo) error {
	token, created, tightened, err := api.LoadToken(d.dataDir)
	if err != nil {
		return err
	}
	tokenPath := filepath.Join(d.dataDir, api.TokenFile)
	if created {
		d.log.Info("api token created", "path", tokenPath)
	}
	if tightened {
		d.log.Warn("api token was readable by others: its mode is now 0600", "path", tokenPath)
	}
	// Off loopback, the API speaks TLS only, with a certificate from the site's CA:
	// the token must not cross the network in clear.
	var apiTLS *tls.Config
	if !d.apiListen.Addr().IsLoopback() {
		names := []string{"infrad." + strings.TrimSuffix(string(d.site.Domain), "."), strings.TrimSuffix(string(d.site.CA.Name), ".")}
		if apiTLS, err = ca.ServerTLS(d.dataDir, d.site.CA.Name, names, d.apiListen.Addr()); err != nil {
			return fmt.Errorf("the API's certificate: %w", err)
		}
	}
	metrics := prometheus.NewRegistry()
	metrics.MustRegister(cluster.NewCollector(d.node))
	d.ntp = ntp.New(ntp.Options{Site: d.site, Registry: metrics, Logger: d.log.With("service", "ntp"), Keys: d.ipam, NTSTLS: d.ntsTLS})
	synced := func() (bool, string) { // the CA signs, and DNSSEC signs, only by a trusted clock
		st := d.ntp.Status()
		return st.Leap != 3, st.Why
	}
	d.dns = dns.New(dns.Options{Site: d.site, IPAM: d.ipam, Registry: metrics, Logger: d.log.With("service", "dns"), Synced: synced,
		CaughtUp: d.node.CaughtUp, Evicted: d.node.Evicted})
	var bootEvents func(boot.Event) // the DHCP service's activity view, once it is built
	d.boot = boot.New(boot.Options{Site: d.site, IPAM: d.ipam, Registry: metrics, Logger: d.log.With("service", "boot"),
		Event: func(e boot.Event) { bootEvents(e) }})
	d.dhcp = dhcp.New(dhcp.Options{Site: d.site, IPAM: d.ipam, Registry: metrics, Logger: d.log.With("service", "dhcp"),
		Share: d.node.DHCPShare, Quorum: d.node.Quorum, CaughtUp: d.node.CaughtUp, Promised: d.node.Promised, Evicted: d.node.Evicted,
		Boot: d.boot})
	bootEvents = d.dhcp.NoteBoot
	d.ra = ra.New(ra.Options{Site: d.site, IPAM: d.ipam, Registry: metrics, Logger: d.log.With("service", "ra")})
	d.dhcp6 = dhcp6.New(dhcp6.Options{Site: d.site, IPAM: d.ipam, Registry: metrics, Logger: d.log.With("service", "dhcp6"),
		Share: d.node.DHCPShare, Quorum: d.node.Quorum, CaughtUp: d.node.CaughtUp, Promised: d.node.Promised, Evicted: d.node.Evicted, Boot: d.boot})
	d.ca = ca.New(ca.Options{Site: d.site, Store: d.store, IPAM: d.ipam, Resolver: dnsAddr(d.site.DNS.Listen), Registry: metrics, Logger: d.log.With("service", "ca"), Quorum: d.node.Quorum,
		Synced: synced})
	apiServer := api.New(api.Options{
		Listen:        d.apiListen,
		RestartNeeded: d.restartNeeded,
		Token:         token,
		DataDir:       d.dataDir,
		Status:        d.Status,
		IPAM:          d.ipam,
		Leases:        d.dhcp,
		Time:          d.ntp,
		Signer:        d.dns,
		Boot:          d.boot,
		CA:            d.ca,
		SSH: sshca.New(sshca.Options{IPAM: d.ipam, Synced: synced, Logger: d.log.With("service", "ssh"),
			Life: func() (time.Duration, time.Duration) {
				d.mu.Lock()
				defer d.mu.Unlock()
				return d.site.SSH.HostCertLife, d.site.SSH.UserCertLife
			}}),
		Metrics:   metrics,
		Backup:    d.store.Backup,
		Cluster:   d.node,
		TLS:       apiTLS,
		RateLimit: d.site.API.RateLimit,
		Plan:      d.planFile,
		Site:      d.siteInfo,
		Build:     build,
		Started:   time.Now(),
		Logger:    d.log.With("service", "api"),
	})
	d.api = apiServer
	// Services in start order (ntp, dns, dhcp, boot, ra, dhcp6, ca, api), joining as they are built.
	// The API needs none of them: it must answer /readyz while they are failing.
	d.mgr, err = service.New(service.Options{Logger: d.log},
		service.Unit{Service: d.ntp},
		service.Unit{Service: d.dns},
		service.Unit{Service: d.dhcp},
		service.Unit{Service: d.boot},
		service.Unit{Service: d.ra},
		service.Unit{Service: d.dhcp6},
		// The CA trusts infrad's clock and resolves challenges through infrad's DNS.
		service.Unit{Service: d.ca, Needs: []string{"ntp", "dns"}},
		service.Unit{Service: apiServer},
	)
	if err != nil {
		return err
	}
	d.mgr.Start(ctx)
	d.log.Info("infrad starting", "site", d.site.Source, "domain", d.site.Domain, "data_dir", d.dataDir)
	return nil
}

// ntsTLS is the TLS configuration of an NTS-KE listener on listen: a certificate from
// the site's CA for the names and addresses a node may give in its chrony.conf (ntp.
// and infrad. of the domain, the advertised address, a cluster's serving nodes, and
// listen when it is a specific address), made anew before it expires.
func (d *Daemon) ntsTLS(listen netip.Addr) (*tls.Config, error) {
	domain := strings.TrimSuffix(string(d.site.Domain), ".")
	names := []string{"ntp." + domain, "infrad." + domain}
	if a := d.site.DNS.Advertise; a.IsValid() {
		names = append(names, a.String())
	}
	if d.site.Cluster != nil {
		for _, n := range d.site.Cluster.Serving() {
			names = append(names, n.Address.String())
		}
	}
	return ca.ServerTLS(d.dataDir, d.site.CA.Name, names, listen)
}

// dnsAddr is where infrad's own DNS answers, for the CA's validation: the first
// listen address, loopback when that is a wildcard.
func dnsAddr(listen []netip.AddrPort) netip.AddrPort {
	if len(listen) == 0 {
		return netip.AddrPort{}
	}
	l := listen[0]
	switch {
	case l.Addr().IsUnspecified() && l.Addr().Is4():
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), l.Port())
	case l.Addr().IsUnspecified():
		return netip.AddrPortFrom(netip.IPv6Loopback(), l.Port())
	}
	return l
}

// siteErrors places the problems of a ReconcileError in the site file.
func siteErrors(site *config.Site, err error) error {
	var re *ipam.ReconcileError
	if !errors.As(err, &re) {
		if err != nil {
			return fmt.Errorf("apply site file: %w", err)
		}
		return nil
	}
	errs := make(config.Errors, len(re.Problems))
	for i, p := range re.Problems {
		if p.List == "" {
			errs[i] = config.Error{File: site.Source, Msg: p.Message}
		} else {
			errs[i] = site.ErrorAt(config.FilePath(p), p.Message)
		}
	}
	return errs
}

// Status is the readiness table, in start order.
func (d *Daemon) Status() []service.Status { return d.mgr.Status() }

// Ready reports whether every service is ready.
func (d *Daemon) Ready() bool { return d.mgr.Ready() }

func (d *Daemon) restartNeeded() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.restart
}

func (d *Daemon) siteInfo() api.SiteInfo {
	d.mu.Lock()
	defer d.mu.Unlock()
	k := d.site.Kubernetes
	info := api.SiteInfo{Source: d.site.Source, Domain: string(d.site.Domain), TTL: d.site.DNS.TTL, LoadedAt: d.loadedAt,
		Kubernetes: export.Cluster{Endpoint: k.String(), ClusterName: k.ClusterName, DNSDomain: strings.TrimSuffix(string(k.DNSDomain), ".")},
		Servers:    d.site.NameServers()}
	for _, z := range d.site.DNS.Zones {
		info.Zones = append(info.Zones, strings.TrimSuffix(string(z), "."))
	}
	for _, f := range d.site.DNS.Forwarders {
		info.Forwarders = append(info.Forwarders, f.String())
	}
	info.LeaseTime = int(d.site.DHCP.LeaseTime.Seconds())
	if b := d.site.MetalLB.BGP; b != nil {
		info.MetalLB.BGP = &export.BGP{MyASN: b.MyASN, PeerASN: b.PeerASN, PeerAddress: b.PeerAddress, PeerPort: b.PeerPort}
	}
	if n := d.site.NTP; n.NTS && len(n.NTSListen) > 0 {
		info.NTS = &export.NTS{Port: n.NTSListen[0].Port()}
	}
	return info
}

// Reload makes site the running site: its subnets, hosts and records replace the
// file-owned ones in the store, and every service takes its settings (the CA by
// restarting itself). A site that conflicts with objects made through the API is
// refused whole (config.Errors), and the running site stays. The settings only a
// restart can change (data_dir, api.listen) are kept, and each is logged and named
// in /readyz as restart_needed.
func (d *Daemon) Reload(site *config.Site) error {
	if site.MaxDeletes >= 0 {
		changes, err := d.Plan(site)
		if err != nil {
			return err
		}
		if n := deletes(changes); n > site.MaxDeletes {
			return fmt.Errorf("the reload would remove %d objects of the site file, more than max_deletes (%d): nothing changed (infrad plan shows what; raise max_deletes to go ahead)", n, site.MaxDeletes)
		}
	}
	if err := d.reconcile(site); err != nil {
		return err
	}
	if err := d.ntp.Reload(site); err != nil {
		d.log.Error("ntp could not bind its new addresses", "err", err)
	}
	if err := d.dns.Reload(site); err != nil {
		d.log.Error("dns keeps its running settings", "err", err)
	}
	if err := d.ra.Reload(context.Background(), site); err != nil {
		d.log.Error("router advertisements did not restart with the reloaded site", "err", err)
	}
	if err := d.dhcp6.Reload(context.Background(), site); err != nil {
		d.log.Error("dhcpv6 did not restart with the reloaded site", "err", err)
	}
	bootRestart, err := d.boot.Reload(context.Background(), site)
	if err != nil {
		d.log.Error("boot could not bind its listeners", "err", err)
	}
	if err := d.dhcp.Reload(site); err != nil {
		d.log.Error("dhcp could not bind its new interfaces", "err", err)
	}
	if err := d.ca.Reload(context.Background(), site); err != nil {
		d.log.Error("the CA did not restart with the reloaded site", "err", err)
	}
	d.api.SetRateLimit(site.API.RateLimit)
	restart := bootRestart
	for _, key := range bootRestart {
		d.log.Warn(key+" changed: it takes effect on restart", "service", "boot")
	}
	if site.DataDir != d.dataDir {
		restart = append(restart, "data_dir")
		d.log.Warn("data_dir changed: it takes effect on restart", "running", d.dataDir, "file", site.DataDir)
	}
	if site.API.Listen != d.apiListen {
		restart = append(restart, "api.listen")
		d.log.Warn("api.listen changed: it takes effect on restart", "running", d.apiListen, "file", site.API.Listen)
	}
	d.mu.Lock()
	d.site, d.loadedAt, d.restart = site, time.Now(), restart
	d.mu.Unlock()
	d.log.Info("site reloaded", "site", site.Source, "domain", site.Domain)
	return nil
}

// planFile is Plan for a site file's contents, for the API.
func (d *Daemon) planFile(name string, data []byte) ([]ipam.Change, error) {
	site, err := config.Parse(name, data)
	if err != nil {
		return nil, err
	}
	return d.Plan(site)
}

// Plan says what reloading site would change in the store, changing nothing. A site
// that conflicts with objects made through the API comes back as config.Errors.
func (d *Daemon) Plan(site *config.Site) ([]ipam.Change, error) {
	changes, err := d.ipam.Plan(site.IPAM())
	return changes, siteErrors(site, err)
}

func deletes(changes []ipam.Change) int {
	n := 0
	for _, c := range changes {
		if c.Op == "-" {
			n++
		}
	}
	return n
}

// Stop stops every service in reverse order within ctx's deadline, then leaves the
// cluster's Raft and closes the store.
func (d *Daemon) Stop(ctx context.Context) error {
	var err error
	if d.mgr != nil {
		err = d.mgr.Stop(ctx)
	}
	return errors.Join(err, d.closeStore())
}

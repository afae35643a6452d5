package dns

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/cache" // the plugins the Corefile uses, and no others
	"github.com/coredns/coredns/plugin/forward"
	"github.com/miekg/dns"
)

// The resolver: what infrad does not answer itself, names outside the site's zones
// for clients that may recurse, goes to CoreDNS's cache and forward plugins, made
// from a Corefile as CoreDNS makes them but with no server of CoreDNS's: infrad's
// front door (listen.go) owns the sockets and hands the chain each such query.

const pluginName = "infrad"

// directives is the plugin chain, in order. infrad's directive comes first and only
// records the server block's config, from which the chain is made.
var directives = []string{pluginName, "cache", "forward"}

// CoreDNS keeps its plugins and directive list in package state, so this file does too:
// the registration happens once, and each Corefile names its resolver by an id.
var (
	registerOnce sync.Once
	configs      sync.Map // id → chan *dnsserver.Config
)

func register() {
	registerOnce.Do(func() {
		plugin.Register(pluginName, setup)
		if err := dnsserver.SetDirectives(directives); err != nil {
			panic("dns: " + err.Error())
		}
		caddy.Quiet, dnsserver.Quiet = true, true
	})
}

// setup reads "infrad <id>" and hands the server block's config to the resolver that
// waits for it.
func setup(c *caddy.Controller) error {
	c.Next()
	if !c.NextArg() {
		return plugin.Error(pluginName, c.ArgErr())
	}
	v, ok := configs.Load(c.Val())
	if !ok {
		return plugin.Error(pluginName, c.Errf("no resolver %q", c.Val()))
	}
	v.(chan *dnsserver.Config) <- dnsserver.GetConfig(c)
	return nil
}

// resolver is the cache and forward chain of one set of forwarders.
type resolver struct {
	chain      plugin.Handler
	forward    *forward.Forward // started and stopped with the resolver
	forwarders []netip.AddrPort
}

// forwardsTo reports whether r forwards to forwarders; a nil resolver forwards to none.
func (r *resolver) forwardsTo(forwarders []netip.AddrPort) bool {
	if r == nil {
		return len(forwarders) == 0
	}
	return slices.Equal(r.forwarders, forwarders)
}

// newResolver makes the chain that forwards to forwarders, with a cache; nil for
// none.
func newResolver(id string, forwarders []netip.AddrPort) (*resolver, error) {
	if len(forwarders) == 0 {
		return nil, nil
	}
	register()
	got := make(chan *dnsserver.Config, 1)
	configs.Store(id, got)
	defer configs.Delete(id)
	addrs := make([]string, len(forwarders))
	for i, ap := range forwarders {
		addrs[i] = ap.String()
	}
	input := caddy.CaddyfileInput{Filepath: "infrad-Corefile", ServerTypeName: "dns",
		Contents: fmt.Appendf(nil, ". {\n\t%s %s\n\tcache\n\tforward . %s\n}\n", pluginName, id, strings.Join(addrs, " "))}
	// The directives' setups run as for a server (caddy's "validation" makes the
	// instance they need), but no server is made: the chain is made here, as
	// CoreDNS's server makes it, and forward started as the server's startup would.
	if err := caddy.ValidateAndExecuteDirectives(input, nil, true); err != nil {
		return nil, fmt.Errorf("the forwarders: %w", err)
	}
	cfg := <-got
	r := &resolver{forwarders: slices.Clone(forwarders)}
	for i := len(cfg.Plugin) - 1; i >= 0; i-- {
		r.chain = cfg.Plugin[i](r.chain)
	}
	for h := r.chain; h != nil; {
		switch p := h.(type) {
		case *cache.Cache:
			h = p.Next
		case *forward.Forward:
			r.forward, h = p, p.Next
		default:
			h = nil
		}
	}
	if r.forward == nil {
		return nil, fmt.Errorf("the forwarders: no forward plugin in %s", input.Contents)
	}
	if err := r.forward.OnStartup(); err != nil {
		return nil, fmt.Errorf("the forwarders: %w", err)
	}
	return r, nil
}

// serve resolves r through the chain and writes the answer.
func (r *resolver) serve(ctx context.Context, w dns.ResponseWriter, req *dns.Msg) (int, error) {
	rc, err := r.chain.ServeDNS(ctx, w, req)
	if !plugin.ClientWrite(rc) {
		return reply(w, req, rc)
	}
	return rc, err
}

// stop ends the forwarders' connections and health checks; a nil resolver has none.
func (r *resolver) stop() {
	if r != nil {
		r.forward.OnShutdown()
	}
}

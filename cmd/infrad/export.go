package main

import (
	"flag"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/infrad/infrad/pkg/api"
	"github.com/infrad/infrad/pkg/client"
	"github.com/infrad/infrad/pkg/cluster"
	"github.com/infrad/infrad/pkg/dns"
	"github.com/infrad/infrad/pkg/export"
	"github.com/infrad/infrad/pkg/site"
)

// exportCmd prints what a cluster or a node needs, from a running infrad.
func exportCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	connect := clientFlags(fs)
	server := fs.String("server", "", "the address nodes reach infrad at, for DNS and NTP (default: the API's host; with the API on loopback, the address the site advertises)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: infrad export [--api URL] [--token T] [--server ADDR] KIND\n\nKinds:")
		kinds := make([]string, 0, len(export.Kinds))
		for k := range export.Kinds {
			kinds = append(kinds, k)
		}
		slices.Sort(kinds)
		for _, k := range kinds {
			fmt.Fprintf(stderr, "  %-13s %s\n", k, export.Kinds[k])
		}
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return exitUsage
	}
	c, err := connect()
	var out string
	if err == nil {
		var site export.Site
		if site, err = exportSite(c, *server, fs.Arg(0)); err == nil {
			out, err = export.Render(fs.Arg(0), site)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "infrad export: %v\n", err)
		return exitFail
	}
	fmt.Fprint(stdout, out)
	return exitOK
}

// site reads what the exports need from the API. The CA's part is left empty when the
// CA has not started; the exports that need it say so.
func exportSite(c *client.Client, server, kind string) (export.Site, error) {
	var s export.Site
	var status struct{ Site api.SiteInfo }
	if err := c.Get("/api/v1/status", &status); err != nil {
		return s, err
	}
	s.Domain = strings.TrimSuffix(status.Site.Domain, ".")
	s.Cluster, s.BGP, s.NTS = status.Site.Kubernetes, status.Site.MetalLB.BGP, status.Site.NTS
	s.Zones, s.TTL, s.Forwarders, s.LeaseTime = status.Site.Zones, status.Site.TTL, status.Site.Forwarders, time.Duration(status.Site.LeaseTime)*time.Second
	if err := c.Get("/api/v1/subnets", &s.Subnets); err != nil {
		return s, err
	}
	if err := c.Get("/api/v1/hosts", &s.Hosts); err != nil {
		return s, err
	}
	var records []site.Record
	if err := c.Get("/api/v1/dns/records", &records); err != nil {
		return s, err
	}
	s.Records = records
	var dnssec dns.DNSSECStatus
	if err := c.Get("/api/v1/dns/dnssec", &dnssec); err != nil {
		return s, err
	}
	s.DS = dnssec.DS
	var ca struct {
		Directory string
		EAB       bool `json:"external_account_required"`
	}
	if c.Get("/api/v1/ca", &ca) == nil {
		s.Directory = ca.Directory
		if ca.EAB && kind == "cert-manager" { // a key of its own for the issuer (an admin token makes one)
			body := fmt.Sprintf(`{"reference": "cert-manager %s"}`, time.Now().UTC().Format(time.RFC3339))
			resp, err := c.Do("POST", "/api/v1/ca/eab", strings.NewReader(body))
			if err != nil {
				return s, fmt.Errorf("the CA wants an EAB key of every ACME account (ca.acme_eab), and making one failed: %w", err)
			}
			var key struct {
				ID   string `json:"key_id"`
				HMAC string `json:"hmac_key"`
			}
			if err := client.DecodeJSON(resp, &key); err != nil {
				return s, err
			}
			s.EAB = &export.EAB{KeyID: key.ID, HMAC: key.HMAC}
		}
		if resp, err := c.Do("GET", "/api/v1/ca/root.pem", nil); err == nil {
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			s.RootPEM = string(raw)
		}
	}
	var keys struct{ Host, User string }
	if c.Get("/api/v1/ca/ssh", &keys) == nil {
		s.SSH = &export.SSH{HostCA: keys.Host + " infrad host CA", UserCA: keys.User + " infrad user CA", KRLURL: c.API() + "/api/v1/ca/ssh/krl"}
	}
	// The server is what a node reaches: the one given, else the API's host, unless
	// that is loopback (the API's default), where the node is not: then the address
	// the site advertises (this node's, in a cluster).
	var cl cluster.Status
	clustered := c.Get("/api/v1/cluster", &cl) == nil && len(cl.Nodes) > 0
	s.Server = server
	if s.Server == "" {
		u, err := url.Parse(c.API())
		if err != nil {
			return s, err
		}
		s.Server = u.Hostname()
		if a, err := netip.ParseAddr(s.Server); (err == nil && a.IsLoopback()) || s.Server == "localhost" {
			s.Server = advertised(status.Site.Servers, cl, clustered, s.Server)
		}
	}
	// A cluster's other serving nodes follow, so that a node keeps its names and time
	// when one box dies.
	if clustered {
		for _, n := range cl.Nodes {
			if !n.Witness && n.Address != "" {
				s.Others = append(s.Others, n.Address)
			}
		}
	}
	return s, nil
}

// advertised is the address nodes reach the infrad behind a loopback API at: its own
// node's in a cluster, else the site's first server; loopback when none is known.
func advertised(servers []netip.Addr, cl cluster.Status, clustered bool, loopback string) string {
	if clustered {
		for _, n := range cl.Nodes {
			if n.Name == cl.Node && n.Address != "" {
				return n.Address
			}
		}
	}
	if len(servers) > 0 {
		return servers[0].String()
	}
	return loopback
}

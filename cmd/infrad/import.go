package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/infrad/infrad/pkg/api"
	"github.com/infrad/infrad/pkg/client"
	"github.com/infrad/infrad/pkg/config"
	"github.com/infrad/infrad/pkg/importer"
	"github.com/infrad/infrad/pkg/ipam"
	"github.com/infrad/infrad/pkg/site"
)

// apiTarget is --api: alone, apply through the API at $INFRAD_API (or the default);
// --api=URL, through the API at URL.
type apiTarget struct {
	set bool
	url string
}

func (a *apiTarget) String() string   { return a.url }
func (a *apiTarget) IsBoolFlag() bool { return true }
func (a *apiTarget) Set(s string) error {
	switch s {
	case "true":
		a.set = true
	case "false":
		a.set = false
	default:
		a.set, a.url = true, s
	}
	return nil
}

const importUsage = `usage: infrad import KIND SOURCE… [--to site.yaml | -c site.yaml | --api[=URL]] [flags]

Reads another tool's configuration and shows the plan: what it adds (each object
with the source line it came from), what conflicts with the site, and what it could
not translate. Nothing changes without --to or --api.
  --to FILE   write the objects into the site file FILE (made when absent), if
              infrad validate accepts the result
  -c FILE     plan against the site file FILE, writing nothing
  --api       apply through the running infrad's API, all of it or nothing (leases
              too), attributed to "import KIND" in its change log

Kinds:
`

// importCmd translates another tool's configuration into the site.
func importCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	to := fs.String("to", "", "write the import into this site file (made when absent)")
	against := fs.String("c", "", "plan against this site file, writing nothing")
	domain := fs.String("domain", "", "the site's domain, when neither the site file nor the source says it")
	tsig := fs.String("tsig", "", "a zone transfer's TSIG key, NAME:ALGORITHM:SECRET")
	netboxToken := fs.String("netbox-token", os.Getenv("NETBOX_TOKEN"), "NetBox's API token ($NETBOX_TOKEN)")
	var target apiTarget
	fs.Var(&target, "api", "apply through the API (--api=URL: the API at URL; default $INFRAD_API, else http://127.0.0.1:8080)")
	connect := connectTo(fs, &target.url)
	fs.Usage = func() {
		fmt.Fprint(stderr, importUsage)
		for _, k := range slices.Sorted(maps.Keys(importer.Kinds)) {
			fmt.Fprintf(stderr, "  %-8s %s\n", k, importer.Kinds[k])
		}
		fmt.Fprintln(stderr, "\nFlags:")
		fs.PrintDefaults()
	}
	pos, err := parseVerb(fs, args)
	if err != nil {
		return exitUsage
	}
	if len(pos) < 2 || (*to != "" || *against != "") && target.set || *to != "" && *against != "" {
		fs.Usage()
		return exitUsage
	}
	if target.url == "" {
		target.url = envOr("INFRAD_API", "http://127.0.0.1:8080")
	}
	kind, sources := pos[0], pos[1:]
	opts := importer.Options{Domain: *domain, TSIG: *tsig, Token: *netboxToken}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "infrad import: %v\n", err)
		return exitFail
	}

	// The site the import goes into: a site file, or the running infrad.
	file := *to
	if file == "" {
		file = *against
	}
	var base []byte
	var c *client.Client
	if target.set {
		if c, err = connect(false); err != nil {
			return fail(err)
		}
		var status struct{ Site api.SiteInfo }
		if err := c.Get("/api/v1/status", &status); err != nil {
			return fail(err)
		}
		var subnets []site.Subnet
		var hosts []site.Host
		var records []site.Record
		for path, v := range map[string]any{"/api/v1/subnets": &subnets, "/api/v1/hosts": &hosts, "/api/v1/dns/records": &records} {
			if err := c.Get(path, v); err != nil {
				return fail(err)
			}
		}
		opts.Domain, opts.TTL = strings.TrimSuffix(status.Site.Domain, "."), int(status.Site.TTL)
		for _, sn := range subnets {
			opts.Subnets = append(opts.Subnets, sn.CIDR)
		}
		for _, h := range hosts {
			spec := site.HostSpec{Name: h.Name, IP: h.IP.String()}
			if h.IP6.IsValid() {
				spec.IP6 = h.IP6.String()
			}
			opts.Hosts = append(opts.Hosts, spec)
		}
		for _, r := range records {
			opts.Records = append(opts.Records, site.RecordSpec{Name: string(r.Name), Type: r.Type, Value: r.Value})
		}
	} else if file != "" {
		base, err = os.ReadFile(file)
		if err != nil && !(errors.Is(err, os.ErrNotExist) && *to != "") {
			return fail(err)
		}
		// What the import needs of the file, read as written: the file is checked
		// with the import in it (it may lack what the import brings, its domain).
		var f struct {
			Domain string `yaml:"domain"`
			DNS    struct {
				TTL     int               `yaml:"ttl"`
				Records []site.RecordSpec `yaml:"records"`
			} `yaml:"dns"`
			Subnets []struct {
				CIDR string `yaml:"cidr"`
			} `yaml:"subnets"`
			Hosts []site.HostSpec `yaml:"hosts"`
		}
		if err := yaml.Unmarshal(base, &f); err != nil {
			return fail(fmt.Errorf("%s: %w", file, err))
		}
		if f.Domain != "" { // (else --domain's, or the source's)
			opts.Domain = strings.TrimSuffix(f.Domain, ".")
		}
		opts.TTL, opts.Hosts, opts.Records = f.DNS.TTL, f.Hosts, f.DNS.Records
		for _, sn := range f.Subnets {
			if p, err := netip.ParsePrefix(sn.CIDR); err == nil {
				opts.Subnets = append(opts.Subnets, p)
			}
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s, err := importer.Read(ctx, kind, sources, opts)
	if err != nil {
		return fail(err)
	}
	printImport(stdout, s)
	if opts.Domain != "" && s.Domain != "" && !strings.EqualFold(opts.Domain, s.Domain) {
		fmt.Fprintf(stdout, "? the source's domain %s is not the site's: its names are put under %s\n", s.Domain, opts.Domain)
	}
	if target.set {
		// What a site file holds, and the API does not change.
		var settings []string
		if len(s.Forwarders) > 0 {
			settings = append(settings, "dns.forwarders "+strings.Join(s.Forwarders, ", "))
		}
		if len(s.Zones) > 0 {
			settings = append(settings, "dns.zones "+strings.Join(s.Zones, ", "))
		}
		if s.LeaseTime != "" {
			settings = append(settings, "dhcp.lease_time "+s.LeaseTime)
		}
		if len(settings) > 0 {
			fmt.Fprintf(stdout, "? not applied through the API, being the site file's: %s (add them to the site file)\n", strings.Join(settings, "; "))
		}
		return importThroughAPI(c, s, stdout, stderr)
	}

	// Into a site file: written only when infrad validate would accept it.
	out, err := s.WriteInto(base)
	if err != nil {
		return fail(err)
	}
	name := file
	if name == "" {
		name = "site.yaml"
	}
	_, err = config.Parse(name, out.Data)
	var mistakes config.Errors
	if errors.As(err, &mistakes) {
		for _, m := range mistakes {
			where := ""
			if p, ok := s.Source(out, m.Path); ok {
				where = " (" + p.String() + ")"
			}
			fmt.Fprintf(stdout, "! %s%s: %s\n", m.Path, where, m.Msg)
		}
		fmt.Fprintf(stdout, "%d problem(s): nothing is written\n", len(mistakes))
		return exitFail
	}
	if err != nil {
		return fail(err)
	}
	if len(s.Leases) > 0 {
		fmt.Fprintf(stdout, "%d lease(s) are not in the site file (it holds none): import with --api into the running infrad to keep them\n", len(s.Leases))
	}
	if *to == "" {
		fmt.Fprintln(stdout, "nothing is written: give --to FILE or --api to import")
		return exitOK
	}
	if err := writeAtomically(*to, out.Data); err != nil {
		return fail(err)
	}
	fmt.Fprintf(stdout, "wrote %s: infrad validate accepts it\n", *to)
	return exitOK
}

// printImport prints what the import adds, each object with its source line, and what
// it did not translate.
func printImport(w io.Writer, s *importer.Site) {
	from := func(path string) string {
		if p, ok := s.From[path]; ok {
			return "  (" + p.String() + ")"
		}
		return ""
	}
	for i, sn := range s.Subnets {
		fmt.Fprintf(w, "+ subnet %s %s%s\n", sn.Name, sn.CIDR, from(fmt.Sprintf("subnets[%d]", i)))
	}
	for i, h := range s.Hosts {
		fmt.Fprintf(w, "+ host %s %s%s%s\n", h.Name, strings.TrimSpace(h.IP+" "+h.IP6), prefixed(" ", h.MAC), from(fmt.Sprintf("hosts[%d]", i)))
	}
	for i, r := range s.Records {
		fmt.Fprintf(w, "+ record %s %s %s%s\n", r.Name, r.Type, r.Value, from(fmt.Sprintf("dns.records[%d]", i)))
	}
	for i, l := range s.Leases {
		fmt.Fprintf(w, "+ lease %s to %s until %s%s\n", l.IP, l.MAC, l.Expires.UTC().Format(time.RFC3339), from(fmt.Sprintf("leases[%d]", i)))
	}
	for _, n := range s.Notes {
		fmt.Fprintf(w, "? %s\n", n)
	}
	fmt.Fprintf(w, "import %s: %d subnets, %d hosts, %d records, %d leases; %d not translated or guessed (?)\n",
		s.Kind, len(s.Subnets), len(s.Hosts), len(s.Records), len(s.Leases), len(s.Notes))
}

func prefixed(p, s string) string {
	if s == "" {
		return ""
	}
	return p + s
}

// importThroughAPI asks the running infrad what the import breaks, then applies it in
// one command.
func importThroughAPI(c *client.Client, s *importer.Site, stdout, stderr io.Writer) int {
	spec := ipam.ImportSpec{Kind: s.Kind, DryRun: true, Subnets: s.Subnets, Hosts: s.Hosts, Records: s.Records}
	for _, l := range s.Leases {
		spec.Leases = append(spec.Leases, ipam.LeaseSpec{IP: l.IP, MAC: l.MAC, Hostname: l.Hostname, Expires: l.Expires})
	}
	var plan ipam.ImportPlan
	if err := c.PostJSON("/api/v1/import", spec, &plan); err != nil {
		fmt.Fprintf(stderr, "infrad import: %v\n", err)
		return exitFail
	}
	if len(plan.Problems) > 0 {
		for _, p := range plan.Problems {
			where := ""
			key, _, _ := strings.Cut(p.Path, ".")
			if strings.HasPrefix(key, "records[") {
				key = "dns." + key
			}
			if pos, ok := s.From[key]; ok {
				where = " (" + pos.String() + ")"
			}
			fmt.Fprintf(stdout, "! %s%s: %s\n", orWhole(p.Path), where, p.Message)
		}
		fmt.Fprintf(stdout, "%d problem(s): nothing is changed\n", len(plan.Problems))
		return exitFail
	}
	spec.DryRun = false
	if err := c.PostJSON("/api/v1/import", spec, &plan); err != nil {
		fmt.Fprintf(stderr, "infrad import: %v (nothing is changed)\n", err)
		return exitFail
	}
	d := plan.Imported
	fmt.Fprintf(stdout, "imported through %s: %d subnets, %d hosts, %d records, %d leases, in one change (\"import %s\" in the change log)\n",
		c.API(), d.Subnets, d.Hosts, d.Records, d.Leases, s.Kind)
	return exitOK
}

func orWhole(path string) string {
	if path == "" {
		return "(the site)"
	}
	return path
}

// writeAtomically replaces path with data, or leaves it as it was.
func writeAtomically(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

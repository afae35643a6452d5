package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/infrad/infrad/pkg/check"
)

// checkCmd is the preflight a node runs before kubeadm: one line per check, and a
// non-zero exit when any fails.
func checkCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o check.Options
	fs.StringVar(&o.Server, "server", "127.0.0.1", "infrad's address")
	fs.IntVar(&o.DNSPort, "dns-port", 53, "infrad's DNS port")
	fs.IntVar(&o.NTPPort, "ntp-port", 123, "infrad's NTP port")
	fs.IntVar(&o.NTSPort, "nts-port", 4460, "infrad's NTS-KE port")
	fs.StringVar(&o.API, "api", "", "infrad's API, for the root certificate (default http://SERVER:8080)")
	fs.IntVar(&o.CAPort, "ca-port", 443, "infrad's ACME port")
	fs.StringVar(&o.Name, "name", "", "this node's name, as in the site (default: the hostname)")
	fs.StringVar(&o.Domain, "domain", "", "the site's domain (default: from the CA's name)")
	fs.StringVar(&o.Outside, "outside", "kubernetes.io", "a name outside the site, which forwarding must resolve")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if o.Name == "" {
		host, _ := os.Hostname()
		o.Name, _, _ = strings.Cut(host, ".")
	}
	checks, failed := 0, 0
	check.Run(o, func(r check.Result) {
		switch {
		case r.Skipped:
			fmt.Fprintf(stdout, "-     %-16s %s\n", r.What, r.Detail)
		case r.Err != nil:
			checks++
			failed++
			fmt.Fprintf(stdout, "FAIL  %-16s %v\n", r.What, r.Err)
		default:
			checks++
			fmt.Fprintf(stdout, "ok    %-16s %s\n", r.What, r.Detail)
		}
	})
	if failed > 0 {
		fmt.Fprintf(stdout, "%d of %d checks failed\n", failed, checks)
		return exitFail
	}
	return exitOK
}

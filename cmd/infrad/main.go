// Command infrad serves NTP, DNS, DHCP, an ACME CA and IPAM for a Kubernetes site
// before its cluster exists. This package only parses the command line and calls
// the packages that do the work; only main exits.
package main

import (
	"fmt"
	"io"
	"os"
	"runtime"

	"github.com/infrad/infrad/pkg/api"
)

// Set at build time with -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = "unknown"
)

func build() api.BuildInfo {
	return api.BuildInfo{Version: version, Commit: commit, Go: runtime.Version()}
}

const usage = `infrad: NTP, DNS, DHCP, an ACME CA and IPAM for a site, in one binary.

Usage:
  infrad serve    [-c site.yaml] [--data DIR]   run every service (no -c: the demo site)
                  [--node NAME] [--join TOKEN]  a node of a cluster; a new one joins with the token
  infrad witness  -c site.yaml --node NAME      a cluster voter that serves nothing
  infrad cluster  status | remove NAME          the cluster's nodes, leader and lag; take a node out
  infrad cluster  recover -c site.yaml --node NAME   a stopped node becomes the only voter (quorum lost for good)
  infrad validate -c site.yaml                  check a site file; every mistake with its key path
  infrad plan     -c site.yaml                  what a reload would change: + ~ - per object
  infrad check    [--server ADDR]               a node's preflight before kubeadm: names, clock, CA
  infrad import   KIND SOURCE… [--to site.yaml | --api]   move in from dnsmasq, dhcpd, kea, pihole, a zone or netbox: a plan first
  infrad export   KIND                          kubeadm | metallb | cert-manager | no-proxy | chrony | resolv | cloud-init | ds | ssh | dnsmasq | dhcpd
  infrad backup   FILE                          hot, consistent copy of a running infrad's store
  infrad token    create NAME [--scope S] | list | revoke NAME | rotate   API tokens (scopes: read, write, admin)
  infrad ssh      host NAME | renew | login | enrol NAME | revoke SERIAL  SSH certificates from the site's CA
  infrad version                                print version, commit and Go version

Commands that talk to a running infrad take --api URL (default $INFRAD_API, else
http://127.0.0.1:8080) and --token (default $INFRAD_TOKEN, else the data directory's).

Run 'infrad COMMAND -h' for a command's flags.
`

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		return serve(rest, stderr, false)
	case "witness":
		return serve(rest, stderr, true)
	case "cluster":
		return clusterCmd(rest, stdout, stderr)
	case "validate":
		return validate(rest, stdout, stderr)
	case "token":
		return tokenCmd(rest, stdout, stderr)
	case "backup":
		return backup(rest, stdout, stderr)
	case "export":
		return exportCmd(rest, stdout, stderr)
	case "import":
		return importCmd(rest, stdout, stderr)
	case "plan":
		return plan(rest, stdout, stderr)
	case "check":
		return checkCmd(rest, stdout, stderr)
	case "ssh":
		return sshCmd(rest, stdout, stderr)
	case "version":
		b := build()
		fmt.Fprintf(stdout, "infrad %s (commit %s, %s)\n", b.Version, b.Commit, b.Go)
		return exitOK
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "infrad: unknown command %q\n\n%s", cmd, usage)
		return exitUsage
	}
}

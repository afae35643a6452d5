package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"text/tabwriter"
	"time"

	"github.com/infrad/infrad/pkg/client"
	"github.com/infrad/infrad/pkg/config"
	"github.com/infrad/infrad/pkg/daemon"
)

// clientFlags adds --api, --token, --ca and --data to fs; the defaults are $INFRAD_API,
// $INFRAD_TOKEN and $INFRAD_CA, else the demo's address and the token file and CA root
// of the data directory. Off loopback the API speaks only TLS, with a certificate from
// the site's CA: an https URL is checked against that root as well as the system's.
func clientFlags(fs *flag.FlagSet) func() (*client.Client, error) {
	connect := connectFlags(fs)
	return func() (*client.Client, error) { return connect(false) }
}

// connectFlags is clientFlags for a command that may need no token (anonymous).
func connectFlags(fs *flag.FlagSet) func(anonymous bool) (*client.Client, error) {
	api := fs.String("api", envOr("INFRAD_API", "http://127.0.0.1:8080"), "the infrad API, https:// when it listens off loopback ($INFRAD_API)")
	return connectTo(fs, api)
}

// connectTo is connectFlags for a command whose own flag gives the API's address.
func connectTo(fs *flag.FlagSet, api *string) func(anonymous bool) (*client.Client, error) {
	token := fs.String("token", os.Getenv("INFRAD_TOKEN"), "the API token ($INFRAD_TOKEN; default: the data directory's api-token)")
	caFile := fs.String("ca", os.Getenv("INFRAD_CA"), "the site's root certificate, for an https API ($INFRAD_CA; default: the data directory's ca/root.crt)")
	data := fs.String("data", "", "the data directory whose api-token and ca/root.crt to use (default: ./data, then /var/lib/infrad)")
	return func(anonymous bool) (*client.Client, error) {
		dirs := []string{"data", "/var/lib/infrad"}
		if *data != "" {
			dirs = []string{*data}
		}
		return client.New(client.Options{API: *api, Token: *token, CAFile: *caFile, DataDirs: dirs, Anonymous: anonymous})
	}
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// backup writes a hot, consistent copy of the running infrad's store to path.
func backup(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	connect := clientFlags(fs)
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: infrad backup [--api URL] [--token T] FILE")
		return exitUsage
	}
	c, err := connect()
	if err == nil {
		err = c.Backup(fs.Arg(0))
	}
	if err != nil {
		fmt.Fprintf(stderr, "infrad backup: %v\n", err)
		return exitFail
	}
	fmt.Fprintf(stdout, "%s: a consistent copy of the store (restore: stop infrad, copy it to <data_dir>/infrad.db, remove <data_dir>/raft, start; a cluster's other nodes then join it from empty data directories). It holds the named API tokens, not the data directory's api-token: restored into a new data directory, infrad makes a new one and logs its sign-in link\n", fs.Arg(0))
	return exitOK
}

// parseVerb parses args whose flags may stand before the verb, between it and its
// arguments, or after them (infrad token --api URL create ci --scope read), and
// returns the verb and its arguments in order.
func parseVerb(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos, args = append(pos, fs.Arg(0)), fs.Args()[1:]
	}
}

// clusterCmd shows the cluster's nodes (status) or takes one out (remove NAME).
func clusterCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "recover" {
		return recoverCmd(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("cluster", flag.ContinueOnError)
	fs.SetOutput(stderr)
	connect := clientFlags(fs)
	rest, err := parseVerb(fs, args)
	if err != nil {
		return exitUsage
	}
	if len(rest) == 0 || (rest[0] == "status" && len(rest) != 1) || (rest[0] == "remove" && len(rest) != 2) || (rest[0] != "status" && rest[0] != "remove") {
		fmt.Fprintln(stderr, "usage: infrad cluster [--api URL] [--token T] status | remove NAME\n       infrad cluster recover -c site.yaml --node NAME [--data DIR]")
		return exitUsage
	}
	c, err := connect()
	if err == nil && rest[0] == "remove" {
		var resp *http.Response
		if resp, err = c.Do(http.MethodDelete, "/api/v1/cluster/nodes/"+rest[1], nil); err == nil {
			resp.Body.Close()
			fmt.Fprintf(stdout, "%s is no longer a voter of the cluster\n", rest[1])
		}
	} else if err == nil {
		err = printCluster(c, stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "infrad cluster: %v\n", err)
		return exitFail
	}
	return exitOK
}

// printCluster prints the cluster's nodes, one line each.
func printCluster(c *client.Client, w io.Writer) error {
	st, err := c.Cluster()
	if err != nil {
		return err
	}
	leader := st.Leader
	if leader == "" {
		leader = "none known: this node has no quorum"
	}
	fmt.Fprintf(w, "leader: %s (answered by %s)\n", leader, st.Node)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tADDRESS\tROLE\tSTATE\tLAST CONTACT\tAPPLIED\tLAG")
	for _, n := range st.Nodes {
		role := "voter"
		switch {
		case n.Witness && n.Voter:
			role = "witness"
		case !n.Voter:
			role = "not a voter"
		}
		contact := "never"
		if n.LastContact != nil {
			contact = time.Since(*n.LastContact).Round(time.Millisecond).String() + " ago"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\n", n.Name, n.Address, role, n.State, contact, n.Applied, n.Lag)
	}
	return tw.Flush()
}

// recoverCmd makes a stopped node its cluster's only voter, after the quorum is lost
// for good.
func recoverCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("cluster recover", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("c", "", "the site file")
	node := fs.String("node", "", "this node's name among cluster.nodes")
	dataDir := fs.String("data", "", "the data directory (overrides data_dir of the site file)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *path == "" || *node == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: infrad cluster recover -c site.yaml --node NAME [--data DIR]  (with the node stopped)")
		return exitUsage
	}
	site, err := config.Load(*path)
	if err != nil {
		fmt.Fprintf(stderr, "infrad cluster recover: %v\n", err)
		return exitFail
	}
	if *dataDir != "" {
		site.DataDir = *dataDir
	}
	log := setupLogging(stderr)
	if err := daemon.Recover(daemon.Options{Site: site, Node: *node, Logger: log}); err != nil {
		fmt.Fprintf(stderr, "infrad cluster recover: %v\n", err)
		return exitFail
	}
	fmt.Fprintf(stdout, "%s is now the cluster's only voter: start it with infrad serve, then join the other nodes to it from empty data directories\n", *node)
	return exitOK
}

package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/infrad/infrad/pkg/client"
)

// tokenCmd manages the named API tokens of a running infrad: create NAME [--scope S]
// (or --read-only), list, revoke NAME. A token's secret is printed once, when it is
// made.
func tokenCmd(args []string, stdout, stderr io.Writer) int {
	const use = "usage: infrad token create NAME [--scope read|write|admin] [--read-only] [--ssh-principals P,...] | list | revoke NAME | rotate   [--api URL] [--token T]"
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	connect := clientFlags(fs)
	readOnly := fs.Bool("read-only", false, "create: the read scope (every write gets 403)")
	scope := fs.String("scope", "", "create: read, write (the default: changes the site) or admin (also backups, tokens, the cluster's members)")
	principals := fs.String("ssh-principals", "", "create: the principals (users) its SSH user certificates may name, comma-separated")
	pos, err := parseVerb(fs, args)
	if err != nil || len(pos) == 0 || len(pos) > 2 {
		fmt.Fprintln(stderr, use)
		return exitUsage
	}
	verb, name := pos[0], ""
	if len(pos) == 2 {
		name = pos[1]
	}
	wantName := verb == "create" || verb == "revoke"
	if (verb != "create" && verb != "list" && verb != "revoke" && verb != "rotate") || wantName != (name != "") {
		fmt.Fprintln(stderr, use)
		return exitUsage
	}
	c, err := connect()
	if err == nil {
		switch verb {
		case "create":
			err = createToken(c, stdout, name, *scope, *readOnly, *principals)
		case "list":
			err = listTokens(c, stdout)
		case "rotate":
			err = rotateToken(c, stdout)
		case "revoke":
			if _, err = c.Do(http.MethodDelete, "/api/v1/tokens/"+url.PathEscape(name), nil); err == nil {
				fmt.Fprintf(stdout, "token %s revoked: requests with it are refused now\n", name)
			}
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "infrad token %s: %v\n", verb, err)
		return exitFail
	}
	return exitOK
}

type tokenInfo struct {
	Name    string    `json:"name"`
	Scope   string    `json:"scope"`
	Created time.Time `json:"created"`
	Token   string    `json:"token"`

	SSHPrincipals []string `json:"ssh_principals"`
}

func createToken(c *client.Client, stdout io.Writer, name, scope string, readOnly bool, principals string) error {
	req := map[string]any{"name": name, "scope": scope, "read_only": readOnly}
	if principals != "" {
		req["ssh_principals"] = strings.Split(principals, ",")
	}
	body, _ := json.Marshal(req)
	return postForToken(c, stdout, "/api/v1/tokens", bytes.NewReader(body))
}

// rotateToken gives the data-directory token of the infrad at --api a new value (the
// file is rewritten there) and prints it alone.
func rotateToken(c *client.Client, stdout io.Writer) error {
	return postForToken(c, stdout, "/api/v1/tokens/api-token/rotate", nil)
}

// postForToken POSTs body to path and prints the token of the answer, alone on
// stdout, so that TOKEN=$(infrad token create ci) works.
func postForToken(c *client.Client, stdout io.Writer, path string, body io.Reader) error {
	resp, err := c.Do(http.MethodPost, path, body)
	if err != nil {
		return err
	}
	var t tokenInfo
	if err := client.DecodeJSON(resp, &t); err != nil {
		return err
	}
	fmt.Fprintln(stdout, t.Token)
	return nil
}

func listTokens(c *client.Client, stdout io.Writer) error {
	var tokens []tokenInfo
	if err := c.Get("/api/v1/tokens", &tokens); err != nil {
		return err
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tSCOPE\tCREATED\tSSH PRINCIPALS")
	for _, t := range tokens {
		created := t.Created.Format(time.RFC3339)
		if t.Created.IsZero() {
			created = "(each box's data directory file)"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", t.Name, t.Scope, created, strings.Join(t.SSHPrincipals, ","))
	}
	return w.Flush()
}

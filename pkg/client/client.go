// Package client talks to a running infrad's API, for the commands that read or
// change the site from outside the daemon (export, plan, token, backup, cluster).
// Off loopback the API speaks only TLS, with a certificate from the site's CA: an
// https URL is checked against that root as well as the system's.
package client

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/infrad/infrad/pkg/cluster"
)

// Options say which infrad to talk to, and how to prove who asks.
type Options struct {
	API    string // the API's base URL, http://127.0.0.1:8080 or https://…
	Token  string // empty: the first data directory's api-token
	CAFile string // the site's root, for https; empty: the first data directory's ca/root.crt
	// DataDirs are where a token and a root are looked for, in order.
	DataDirs []string
	// Anonymous sends no token: for the routes that need none (a renewal, proven by
	// its key), from a machine that has none.
	Anonymous bool
}

// Client is a running infrad's API.
type Client struct {
	base, token string
	http        *http.Client
}

// New returns a client for opts, or an error that says what is missing.
func New(opts Options) (*Client, error) {
	c := &Client{base: strings.TrimSuffix(opts.API, "/"), token: opts.Token, http: &http.Client{Timeout: 30 * time.Second}}
	if strings.HasPrefix(c.base, "https://") {
		roots, err := siteRoots(opts.CAFile, opts.DataDirs)
		if err != nil {
			return nil, err
		}
		c.http.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}
	}
	if c.token != "" || opts.Anonymous {
		return c, nil
	}
	for _, dir := range opts.DataDirs {
		if raw, err := os.ReadFile(filepath.Join(dir, "api-token")); err == nil {
			c.token = strings.TrimSpace(string(raw))
			return c, nil
		}
	}
	return nil, fmt.Errorf("no API token: give --token or $INFRAD_TOKEN, or --data with the data directory (looked in %s)", strings.Join(opts.DataDirs, ", "))
}

// siteRoots is the system's roots and the site's: file if given, else the first
// data directory's ca/root.crt that exists.
func siteRoots(file string, dirs []string) (*x509.CertPool, error) {
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	if file == "" {
		for _, dir := range dirs {
			if p := filepath.Join(dir, "ca", "root.crt"); fileExists(p) {
				file = p
				break
			}
		}
	}
	if file == "" {
		return roots, nil
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("the site's root certificate: %w", err)
	}
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("the site's root certificate: %s holds no PEM certificate", file)
	}
	return roots, nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// Do sends a request and returns the response, or the API's JSON error as an error.
func (c *Client) Do(method, path string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("infrad at %s: %w", c.base, err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		var e struct {
			Error struct{ Code, Message string }
		}
		if json.NewDecoder(resp.Body).Decode(&e) == nil && e.Error.Message != "" {
			return nil, fmt.Errorf("%s %s: %s", method, path, e.Error.Message)
		}
		return nil, fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	return resp, nil
}

// Get decodes the JSON at path into v.
func (c *Client) Get(path string, v any) error {
	resp, err := c.Do(http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	return DecodeJSON(resp, v)
}

// PostJSON posts v as JSON to path and decodes the answer into out.
func (c *Client) PostJSON(path string, v, out any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	resp, err := c.Do(http.MethodPost, path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	return DecodeJSON(resp, out)
}

// DecodeJSON decodes resp's body into v and closes it.
func DecodeJSON(resp *http.Response, v any) error {
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

// Backup writes a hot, consistent copy of the store to path, through path.part: a
// copy cut short leaves no file at path.
func (c *Client) Backup(path string) error {
	resp, err := c.Do(http.MethodGet, "/api/v1/backup", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	tmp := path + ".part"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, resp.Body)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return errors.Join(errors.New("the copy is incomplete"), err)
	}
	return os.Rename(tmp, path)
}

// Cluster is the cluster's status as the node behind the API sees it.
func (c *Client) Cluster() (cluster.Status, error) {
	var st cluster.Status
	err := c.Get("/api/v1/cluster", &st)
	return st, err
}

// API is the API's base URL.
func (c *Client) API() string { return c.base }

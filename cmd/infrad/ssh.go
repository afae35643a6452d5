package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/infrad/infrad/pkg/client"
	"github.com/infrad/infrad/pkg/sshca"
)

const sshUsage = `usage:
  infrad ssh host NAME [--key F.pub] [--token ENROLMENT]   this machine's host certificate, as host NAME
  infrad ssh renew [--key F] [--force] [--krl F]           renew it when a third of its life is left (no token);
                                                           --krl: fetch the revocation list sshd reads too
  infrad ssh login [--key F.pub] [--principals P,...] [--hours N]   a user certificate for your key
  infrad ssh enrol NAME [--hours N]                        a one-time token for host NAME's machine
  infrad ssh revoke SERIAL                                 revoke a certificate: the KRL lists it
Each writes the certificate beside the key, as <key>-cert.pub.

Flags:
`

// sshCmd gets, renews and revokes SSH certificates from the site's SSH CA.
func sshCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ssh", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, sshUsage); fs.PrintDefaults() }
	connect := connectFlags(fs)
	key := fs.String("key", "", "the key: host's /etc/ssh/ssh_host_ed25519_key(.pub), login's ~/.ssh/id_ed25519.pub")
	force := fs.Bool("force", false, "renew: even when it is not due")
	krl := fs.String("krl", "", "renew: fetch the revocation list into this file too (sshd's RevokedKeys)")
	principals := fs.String("principals", "", "login: the principals (users) to log in as, comma-separated (default: every one the token allows)")
	hours := fs.Int("hours", 0, "login: how long the certificate lives (default: ssh.user_cert_hours); enrol: how long the token waits (default 24)")
	pos, err := parseVerb(fs, args)
	if err != nil || len(pos) == 0 {
		fs.Usage()
		return exitUsage
	}
	verb, arg := pos[0], ""
	if len(pos) == 2 {
		arg = pos[1]
	}
	needsArg := verb == "host" || verb == "enrol" || verb == "revoke"
	known := needsArg || verb == "renew" || verb == "login"
	if !known || len(pos) > 2 || needsArg != (arg != "") {
		fs.Usage()
		return exitUsage
	}
	c, err := connect(verb == "renew")
	if err == nil {
		switch verb {
		case "host":
			err = sshHost(c, stdout, arg, or(*key, "/etc/ssh/ssh_host_ed25519_key.pub"))
		case "renew":
			err = sshRenew(c, stdout, or(*key, "/etc/ssh/ssh_host_ed25519_key"), *force)
			if *krl != "" {
				err = errors.Join(err, fetchKRL(c, stdout, *krl))
			}
		case "login":
			err = sshLogin(c, stdout, *key, *principals, *hours)
		case "enrol":
			err = sshEnrol(c, stdout, arg, *hours)
		case "revoke":
			err = sshRevoke(c, stdout, arg)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "infrad ssh %s: %v\n", verb, err)
		return exitFail
	}
	return exitOK
}

func or(s, def string) string {
	if s != "" {
		return s
	}
	return def
}

// signed is the API's answer with a certificate.
type signed struct {
	Certificate string    `json:"certificate"`
	Serial      string    `json:"serial"`
	Principals  []string  `json:"principals"`
	ValidBefore time.Time `json:"valid_before"`
}

// certPath is where OpenSSH looks for key's certificate: beside it, as
// <key without .pub>-cert.pub.
func certPath(key string) string { return strings.TrimSuffix(key, ".pub") + "-cert.pub" }

// writeCert writes the certificate beside key, through a temporary file, so that
// sshd never reads half of one.
func writeCert(stdout io.Writer, key string, s signed) error {
	path := certPath(key)
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(s.Certificate+"\n"), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	fmt.Fprintf(stdout, "%s: serial %s for %s, until %s\n", path, s.Serial, strings.Join(s.Principals, ","), s.ValidBefore.Local().Format(time.RFC3339))
	return nil
}

func sshHost(c *client.Client, stdout io.Writer, name, key string) error {
	if !strings.HasSuffix(key, ".pub") {
		key += ".pub" // the key's path: its public half is beside it
	}
	pub, err := os.ReadFile(key)
	if err != nil {
		return err
	}
	var s signed
	if err := c.PostJSON("/api/v1/ca/ssh/hosts/"+url.PathEscape(name), map[string]string{"public_key": strings.TrimSpace(string(pub))}, &s); err != nil {
		return err
	}
	return writeCert(stdout, key, s)
}

// renewDue is the part of a certificate's life left when it is renewed.
const renewDue = 3

func sshRenew(c *client.Client, stdout io.Writer, keyFile string, force bool) error {
	keyFile = strings.TrimSuffix(keyFile, ".pub")
	raw, err := os.ReadFile(certPath(keyFile))
	if err != nil {
		return err
	}
	parsed, _, _, _, err := ssh.ParseAuthorizedKey(raw)
	if err != nil {
		return fmt.Errorf("%s: %w", certPath(keyFile), err)
	}
	cert, ok := parsed.(*ssh.Certificate)
	if !ok {
		return fmt.Errorf("%s is not a certificate", certPath(keyFile))
	}
	after, before := time.Unix(int64(cert.ValidAfter), 0), time.Unix(int64(cert.ValidBefore), 0)
	if left := time.Until(before); !force && left > before.Sub(after)/renewDue {
		fmt.Fprintf(stdout, "%s: not due (valid until %s)\n", certPath(keyFile), before.Local().Format(time.RFC3339))
		return nil
	}
	privRaw, err := os.ReadFile(keyFile)
	if err != nil {
		return err
	}
	signer, err := ssh.ParsePrivateKey(privRaw)
	if err != nil {
		return fmt.Errorf("%s: %w", keyFile, err)
	}
	now := time.Now()
	sig, err := signer.Sign(rand.Reader, sshca.RenewProof(cert.Serial, now))
	if err != nil {
		return err
	}
	body := map[string]any{"certificate": strings.TrimSpace(string(raw)), "time": now.Unix(), "signature": base64.StdEncoding.EncodeToString(ssh.Marshal(sig))}
	var s signed
	if err := c.PostJSON("/api/v1/ca/ssh/renew", body, &s); err != nil {
		return err
	}
	return writeCert(stdout, keyFile, s)
}

// fetchKRL writes the CA's revocation list to path, through a temporary file.
func fetchKRL(c *client.Client, stdout io.Writer, path string) error {
	resp, err := c.Do(http.MethodGet, "/api/v1/ca/ssh/krl", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, raw) {
		return nil
	}
	tmp := path + ".new"
	if err := os.WriteFile(tmp, raw, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	fmt.Fprintf(stdout, "%s: the revocation list, updated\n", path)
	return nil
}

func sshLogin(c *client.Client, stdout io.Writer, key, principals string, hours int) error {
	if key == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return err
		}
		key = filepath.Join(home, ".ssh", "id_ed25519.pub")
	}
	if !strings.HasSuffix(key, ".pub") {
		key += ".pub"
	}
	pub, err := os.ReadFile(key)
	if err != nil {
		return err
	}
	var list []string // none: every one the token allows
	if principals != "" {
		list = strings.Split(principals, ",")
	}
	var s signed
	if err := c.PostJSON("/api/v1/ca/ssh/users", map[string]any{"public_key": strings.TrimSpace(string(pub)), "principals": list, "hours": hours}, &s); err != nil {
		return err
	}
	return writeCert(stdout, key, s)
}

func sshEnrol(c *client.Client, stdout io.Writer, name string, hours int) error {
	body := map[string]any{}
	if hours != 0 {
		body["hours"] = hours
	}
	var e struct {
		Token   string    `json:"token"`
		Expires time.Time `json:"expires"`
	}
	if err := c.PostJSON("/api/v1/ca/ssh/hosts/"+url.PathEscape(name)+"/enrol", body, &e); err != nil {
		return err
	}
	fmt.Fprintln(stdout, e.Token)
	return nil
}

func sshRevoke(c *client.Client, stdout io.Writer, serial string) error {
	if _, err := strconv.ParseUint(serial, 10, 64); err != nil {
		return fmt.Errorf("%q is not a serial (ssh-keygen -L -f F-cert.pub prints it)", serial)
	}
	var rec struct {
		KeyID string `json:"key_id"`
	}
	if err := c.PostJSON("/api/v1/ca/ssh/revoke", map[string]string{"serial": serial}, &rec); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "certificate %s (%s) revoked: sshd refuses it once it has the KRL (GET /api/v1/ca/ssh/krl)\n", serial, rec.KeyID)
	return nil
}

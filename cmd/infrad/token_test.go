package main

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/infrad/infrad/internal/testenv"
)

// TestTokensFromTheCommandLine: infrad token create, list and revoke against a running
// infrad; the tokens sign requests under their names, survive a restart (they are in
// the store), and a revoked one is refused.
func TestTokensFromTheCommandLine(t *testing.T) {
	dir := t.TempDir()
	port := testenv.FreePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	site := siteFile(t, dir, "k8s.example.com", port)
	p := start(t, dir, "serve", "-c", site)
	waitReady(t, base)
	data := filepath.Join(dir, "data")
	tokenRun := func(args ...string) (int, string) {
		t.Helper()
		c := start(t, dir, append(append([]string{"token"}, args...), "--api", base, "--data", data)...)
		code := c.wait(t, 30*time.Second)
		return code, strings.TrimSpace(c.output.String())
	}
	code, alice := tokenRun("create", "alice")
	if code != exitOK || !strings.HasPrefix(alice, "infrad_") || strings.Contains(alice, "\n") {
		t.Fatalf("token create alice: exit %d, %q: want the secret alone", code, alice)
	}
	code, viewer := tokenRun("create", "viewer", "--read-only")
	if code != exitOK {
		t.Fatalf("token create viewer: exit %d, %s", code, viewer)
	}
	if code, out := tokenRun("create", "alice"); code != exitFail || !strings.Contains(out, "exists already") {
		t.Errorf("a second alice: exit %d, %s", code, out)
	}
	if code, out := send(t, "POST", base+"/api/v1/hosts", alice, `{"name": "w01", "ip": "10.0.40.20"}`); code != http.StatusCreated {
		t.Fatalf("alice creates w01: %d %v", code, out)
	}
	if code, _ := send(t, "POST", base+"/api/v1/hosts", viewer, `{"name": "w02", "ip": "10.0.40.21"}`); code != http.StatusForbidden {
		t.Errorf("the read-only token writes: %d, want 403", code)
	}
	// The backup holds the key rings: only an admin's token takes it.
	for _, who := range []struct{ name, token string }{{"viewer", viewer}, {"alice (write)", alice}} {
		b := start(t, dir, "backup", "--api", base, "--token", who.token, filepath.Join(dir, "stolen.db"))
		if code := b.wait(t, 30*time.Second); code != exitFail || !strings.Contains(b.output.String(), "needs admin") {
			t.Errorf("a backup with %s's token: exit %d, %s; want it refused", who.name, code, b.output.String())
		}
	}
	code, boss := tokenRun("create", "boss", "--scope", "admin")
	if code != exitOK {
		t.Fatalf("token create boss: exit %d, %s", code, boss)
	}
	b := start(t, dir, "backup", "--api", base, "--token", boss, filepath.Join(dir, "taken.db"))
	if code := b.wait(t, 30*time.Second); code != exitOK {
		t.Errorf("a backup with an admin's token: exit %d, %s", code, b.output.String())
	}

	// A restart keeps the tokens: they are in the store.
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.wait(t, 10*time.Second)
	start(t, dir, "serve", "-c", site)
	waitReady(t, base)
	if code, _, _ := httpGet(base+"/api/v1/hosts", viewer); code != http.StatusOK {
		t.Errorf("the viewer after a restart: %d", code)
	}
	code, list := tokenRun("list")
	if code != exitOK || !strings.Contains(list, "viewer") || !strings.Contains(list, "read") || strings.Contains(list, alice) {
		t.Errorf("token list: exit %d\n%s", code, list)
	}
	_, changes, _ := httpGet(base+"/api/v1/changes?object=w01", viewer)
	if got := fmt.Sprint(changes); !strings.Contains(got, "token alice") {
		t.Errorf("the change log for w01 does not name alice: %s", got)
	}
	if code, out := tokenRun("revoke", "alice"); code != exitOK {
		t.Fatalf("revoke alice: exit %d, %s", code, out)
	}
	if code, _, _ := httpGet(base+"/api/v1/hosts", alice); code != http.StatusUnauthorized {
		t.Errorf("alice after the revoke: %d, want 401", code)
	}
	// rotate: the data directory's token changes, in the file and at once.
	old := readToken(t, data)
	code, fresh := tokenRun("rotate")
	if code != exitOK || fresh == old || fresh != readToken(t, data) {
		t.Fatalf("token rotate: exit %d, %q (the file holds %q, held %q)", code, fresh, readToken(t, data), old)
	}
	if code, _, _ := httpGet(base+"/api/v1/hosts", old); code != http.StatusUnauthorized {
		t.Errorf("the old file token after a rotate: %d, want 401", code)
	}
	if code, _, _ := httpGet(base+"/api/v1/hosts", fresh); code != http.StatusOK {
		t.Errorf("the new file token: %d, want 200", code)
	}
	if code, _ := tokenRun("revoke"); code != exitUsage {
		t.Errorf("revoke without a name: exit %d, want %d", code, exitUsage)
	}
}

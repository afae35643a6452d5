package api

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/infrad/infrad/pkg/ipam"
	"github.com/infrad/infrad/pkg/site"
)

// TestNamedTokens: a token made through the API signs requests under its name, which
// the change log records; a read-only one may read and gets 403 on a write; a
// revoked one is refused at once.
func TestNamedTokens(t *testing.T) {
	ts := newTestServer(t)
	resp, alice, _ := call(t, ts.URL, "POST", "/api/v1/tokens", map[string]any{"name": "alice"})
	if resp.StatusCode != http.StatusCreated || !strings.HasPrefix(fmt.Sprint(alice["token"]), "infrad_") {
		t.Fatalf("create alice: %d %v", resp.StatusCode, alice)
	}
	_, viewer, _ := call(t, ts.URL, "POST", "/api/v1/tokens", map[string]any{"name": "viewer", "read_only": true})
	aliceToken, viewerToken := alice["token"].(string), viewer["token"].(string)

	if resp, body, _ := callAs(t, aliceToken, ts.URL, "POST", "/api/v1/hosts", map[string]any{"name": "w01", "ip": "10.0.40.20"}); resp.StatusCode != http.StatusCreated {
		t.Fatalf("alice creates a host: %d %v", resp.StatusCode, body)
	}
	if resp, _, _ := callAs(t, viewerToken, ts.URL, "GET", "/api/v1/hosts", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("the read-only token reads: %d", resp.StatusCode)
	}
	resp, body, _ := callAs(t, viewerToken, ts.URL, "DELETE", "/api/v1/hosts/w01", nil)
	if e, _ := body["error"].(map[string]any); resp.StatusCode != http.StatusForbidden || e["code"] != "forbidden" {
		t.Errorf("the read-only token deletes: %d %v, want 403 forbidden", resp.StatusCode, body)
	}
	if resp, body, _ := callAs(t, viewerToken, ts.URL, "POST", "/api/v1/tokens", map[string]any{"name": "sneaky"}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("the read-only token makes a token: %d %v", resp.StatusCode, body)
	}

	_, page, _ := call(t, ts.URL, "GET", "/api/v1/changes?object=w01", nil)
	changes, _ := page["changes"].([]any)
	if len(changes) != 1 || changes[0].(map[string]any)["source"] != "token alice" {
		t.Errorf("the change log for w01: %v, want one entry by token alice", page)
	}
	_, page, _ = call(t, ts.URL, "GET", "/api/v1/changes?object=token", nil)
	if got := fmt.Sprint(page); !strings.Contains(got, "token api-token") || strings.Contains(got, "hash") {
		t.Errorf("the tokens' entries: %s, want them made by api-token, without hashes", got)
	}

	_, _, list := call(t, ts.URL, "GET", "/api/v1/tokens", nil)
	if got := fmt.Sprint(list); !strings.Contains(got, "alice") || !strings.Contains(got, "viewer") || strings.Contains(got, aliceToken) {
		t.Errorf("the token list: %s, want the names without the secrets", got)
	}
	if resp, _, _ := call(t, ts.URL, "DELETE", "/api/v1/tokens/alice", nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("revoke alice: %d", resp.StatusCode)
	}
	if resp, _, _ := callAs(t, aliceToken, ts.URL, "GET", "/api/v1/hosts", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a revoked token reads: %d, want 401", resp.StatusCode)
	}
	if resp, _, _ := call(t, ts.URL, "POST", "/api/v1/tokens", map[string]any{"name": "viewer"}); resp.StatusCode != http.StatusConflict {
		t.Errorf("a second viewer: %d, want 409", resp.StatusCode)
	}
}

// TestRotateTheFileToken: the data directory's token changes in its file and at once:
// after the rotation is answered only the new token works.
func TestRotateTheFileToken(t *testing.T) {
	dir := t.TempDir()
	old, _, _, err := LoadToken(dir)
	if err != nil {
		t.Fatal(err)
	}
	s := newServerWith(t, func(o *Options) { o.Token, o.DataDir = old, dir })
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	resp, body, _ := callAs(t, old, ts.URL, "POST", "/api/v1/tokens/api-token/rotate", nil)
	fresh, _ := body["token"].(string)
	if resp.StatusCode != http.StatusOK || fresh == "" || fresh == old {
		t.Fatalf("rotate: %d %v", resp.StatusCode, body)
	}
	if onDisk, _, _, err := LoadToken(dir); err != nil || onDisk != fresh {
		t.Errorf("the file holds %q (%v), want the new token", onDisk, err)
	}
	if resp, _, _ := callAs(t, old, ts.URL, "GET", "/api/v1/hosts", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("the old token: %d, want 401", resp.StatusCode)
	}
	if resp, _, _ := callAs(t, fresh, ts.URL, "GET", "/api/v1/hosts", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("the new token: %d, want 200", resp.StatusCode)
	}
	if resp, _, _ := callAs(t, fresh, ts.URL, "DELETE", "/api/v1/tokens/api-token", nil); resp.StatusCode != http.StatusConflict {
		t.Errorf("revoking the file's token: %d, want 409", resp.StatusCode)
	}
}

// TestRevokeRacesRequests: clients keep using a token while it is revoked, over many
// rounds: every request begun after the revoke was acknowledged is refused.
func TestRevokeRacesRequests(t *testing.T) {
	ts := newTestServer(t)
	for round := range 10 {
		name := fmt.Sprintf("t%d", round)
		_, tok, _ := call(t, ts.URL, "POST", "/api/v1/tokens", map[string]any{"name": name})
		secret := tok["token"].(string)
		var acked atomic.Int64 // when the revoke was acknowledged (UnixNano); 0: not yet
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					after := acked.Load() != 0
					resp, _, _ := callAs(t, secret, ts.URL, "GET", "/api/v1/hosts", nil)
					if after && resp.StatusCode != http.StatusUnauthorized {
						t.Errorf("round %d: a request begun after the revoke got %d", round, resp.StatusCode)
					}
				}
			})
		}
		time.Sleep(5 * time.Millisecond)
		if resp, _, _ := call(t, ts.URL, "DELETE", "/api/v1/tokens/"+name, nil); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("revoke: %d", resp.StatusCode)
		}
		acked.Store(time.Now().UnixNano())
		time.Sleep(5 * time.Millisecond)
		close(stop)
		wg.Wait()
	}
}

// TestPinLeaseOverHTTP: a lease becomes a host through the API, and the change log
// says who did it.
func TestPinLeaseOverHTTP(t *testing.T) {
	s := newServer(t)
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	m := s.opts.IPAM
	mac, _ := site.ParseMAC("52:54:00:00:40:99")
	now := time.Now()
	if _, err := m.Apply(context.Background(), ipam.CommitLease{Stamp: ipam.Stamp{At: now}, Subnet: "vm", MAC: mac,
		IP: netip.MustParseAddr("10.0.40.150"), Hostname: "laptop", Expires: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	resp, host, _ := call(t, ts.URL, "POST", "/api/v1/dhcp/leases/10.0.40.150/reserve", nil)
	if resp.StatusCode != http.StatusCreated || host["name"] != "laptop" || host["ip"] != "10.0.40.150" || host["mac"] != "52:54:00:00:40:99" {
		t.Fatalf("pin: %d %v", resp.StatusCode, host)
	}
	resp, body, _ := call(t, ts.URL, "POST", "/api/v1/dhcp/leases/10.0.40.150/reserve", map[string]any{"name": "again"})
	if resp.StatusCode != http.StatusConflict {
		t.Errorf("pin twice: %d %v, want 409", resp.StatusCode, body)
	}
	if resp, _, _ := call(t, ts.URL, "POST", "/api/v1/dhcp/leases/10.0.40.160/reserve", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("pin no lease: %d, want 404", resp.StatusCode)
	}
	_, page, _ := call(t, ts.URL, "GET", "/api/v1/changes?source=api-token&limit=1", nil)
	if got := fmt.Sprint(page); !strings.Contains(got, "PinLease") || !strings.Contains(got, "laptop") {
		t.Errorf("the change log's newest: %s", got)
	}
	if resp, body, _ := call(t, ts.URL, "GET", "/api/v1/changes?since=yesterday", nil); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("since=yesterday: %d %v, want 400", resp.StatusCode, body)
	}
}

// TestScopesOfEveryRoute walks every route of the API with a token of each scope. A
// read token reads and changes nothing; a write token changes the site but reaches
// nothing that reveals key material or controls who gets in (backups, which hold the
// key rings; tokens; the cluster's membership); an admin token reaches everything. No
// answer to a lesser scope holds a key ring's bytes, the data directory's token or a
// token's hash.
func TestScopesOfEveryRoute(t *testing.T) {
	s := newServer(t)
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	secret := "KEYRING-" + hex.EncodeToString(randomBytes(16))
	if _, err := s.opts.IPAM.SwapKeyring(context.Background(), "nts", nil, []byte(secret)); err != nil {
		t.Fatal(err)
	}
	tokens := map[ipam.Scope]string{}
	for _, scope := range ipam.Scopes {
		resp, body, _ := call(t, ts.URL, "POST", "/api/v1/tokens", map[string]any{"name": "t-" + string(scope), "scope": scope})
		if resp.StatusCode != http.StatusCreated || body["scope"] != string(scope) {
			t.Fatalf("create a %s token: %d %v", scope, resp.StatusCode, body)
		}
		tokens[scope] = body["token"].(string)
	}
	hashes := []string{}
	for _, tok := range s.opts.IPAM.Model().Tokens() {
		hashes = append(hashes, tok.Hash)
	}
	// What each route needs, by this test's own reckoning.
	admin := map[string]bool{
		"GET /api/v1/backup": true, "GET /api/v1/tokens": true, "POST /api/v1/tokens": true,
		"DELETE /api/v1/tokens/{name}": true, "POST /api/v1/tokens/api-token/rotate": true,
		"DELETE /api/v1/cluster/nodes/{name}": true,
		"POST /api/v1/ca/ssh/hosts/{name}":    true, "POST /api/v1/ca/ssh/hosts/{name}/enrol": true, "POST /api/v1/ca/ssh/revoke": true,
		"POST /api/v1/dns/dnssec/ksk/roll": true, "POST /api/v1/dns/dnssec/ksk/ds": true, // the site's trust anchor
		"GET /api/v1/ca/eab": true, "POST /api/v1/ca/eab": true, "DELETE /api/v1/ca/eab/{id}": true,
	}
	needOf := func(method, route string) ipam.Scope {
		switch {
		case admin[method+" "+route]:
			return ipam.ScopeAdmin
		case method == http.MethodGet || method == http.MethodHead || method+" "+route == "POST /api/v1/plan" || method+" "+route == "POST /api/v1/ca/ssh/users":
			return ipam.ScopeRead
		}
		return ipam.ScopeWrite
	}
	var doc struct {
		Paths map[string]map[string]struct {
			Scope string `json:"x-infrad-scope"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(openapiJSON, &doc); err != nil {
		t.Fatal(err)
	}
	routes := 0
	err := chi.Walk(s.Handler().(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if !strings.HasPrefix(route, "/api/v1/") || openRoutes[method+" "+route] {
			return nil // open routes: nothing to scope
		}
		routes++
		if got := doc.Paths[route][strings.ToLower(method)].Scope; got != string(needOf(method, route)) {
			t.Errorf("openapi.json says %s %s needs %q, want %s", method, route, got, needOf(method, route))
		}
		path := regexp.MustCompile(`\{[^}]+\}`).ReplaceAllString(route, "x")
		for _, scope := range ipam.Scopes {
			if scope == ipam.ScopeAdmin && method != http.MethodGet {
				continue // (an admin's changes: the other tests make them)
			}
			req, _ := http.NewRequest(method, ts.URL+path, strings.NewReader("{}"))
			req.Header.Set("Authorization", "Bearer "+tokens[scope])
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			need := needOf(method, route)
			if forbidden := resp.StatusCode == http.StatusForbidden; forbidden == scope.Allows(need) {
				t.Errorf("%s %s with a %s token: %d, want it %s (the route needs %s): %s", method, route, scope, resp.StatusCode,
					map[bool]string{true: "allowed", false: "refused with 403"}[scope.Allows(need)], need, raw)
			}
			if scope == ipam.ScopeAdmin {
				continue
			}
			for _, leak := range append([]string{secret, base64.StdEncoding.EncodeToString([]byte(secret)), testToken}, hashes...) {
				if strings.Contains(string(raw), leak) {
					t.Errorf("%s %s answers a %s token with secret material (%.12s…)", method, route, scope, leak)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if routes < 25 {
		t.Fatalf("walked %d routes: the walk missed the API", routes)
	}
}

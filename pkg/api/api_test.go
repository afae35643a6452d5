package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/infrad/infrad/internal/sitetest"
	"github.com/infrad/infrad/pkg/ca"
	"github.com/infrad/infrad/pkg/cluster"
	"github.com/infrad/infrad/pkg/config"
	"github.com/infrad/infrad/pkg/dhcp"
	"github.com/infrad/infrad/pkg/dns"
	"github.com/infrad/infrad/pkg/ipam"
	"github.com/infrad/infrad/pkg/ntp"
	"github.com/infrad/infrad/pkg/service"
	"github.com/infrad/infrad/pkg/sshca"
)

const testToken = "0123456789abcdef0123456789abcdef"

// testSite is the site file's part of the IPAM the test server starts with.
const testSite = `domain: k8s.example.com
subnets:
  - name: vm
    cidr: 10.0.40.0/24
    gateway: 10.0.40.1
    ranges:
      - {kind: dhcp, start: 10.0.40.150, end: 10.0.40.199}
      - {kind: reserved, name: metallb, start: 10.0.40.100, end: 10.0.40.120}
hosts:
  - {name: cp01, ip: 10.0.40.10, mac: "52:54:00:00:40:10"}
dns:
  records:
    - {name: api, type: A, value: 10.0.40.100}
`

func newIPAM(t *testing.T) *ipam.IPAM {
	t.Helper()
	m, _ := sitetest.IPAM(t, []byte(testSite))
	return m
}

func newTestServer(t *testing.T, states ...service.State) *httptest.Server {
	t.Helper()
	ts := httptest.NewServer(newServer(t, states...).Handler())
	t.Cleanup(ts.Close)
	return ts
}

func newServer(t *testing.T, states ...service.State) *Server {
	t.Helper()
	return newServerWith(t, func(*Options) {}, states...)
}

// newServerWith is newServer with its options changed by tweak.
func newServerWith(t *testing.T, tweak func(*Options), states ...service.State) *Server {
	t.Helper()
	names := []string{"ntp", "dns", "api"}
	opts := Options{
		Token:   testToken,
		IPAM:    newIPAM(t),
		Leases:  fakeLeases{},
		Time:    fakeTime{},
		Signer:  fakeSigner{},
		CA:      fakeCA{},
		Cluster: fakeCluster{},
		Backup:  func(w io.Writer) (int64, error) { n, err := w.Write([]byte("bbolt")); return int64(n), err },
		Plan: func(name string, data []byte) ([]ipam.Change, error) {
			_, err := config.Parse(name, data)
			return nil, err
		},
		Metrics: prometheus.NewRegistry(),
		Status: func() []service.Status {
			var out []service.Status
			for i, st := range states {
				out = append(out, service.Status{Name: names[i], Health: service.Health{State: st}})
			}
			return out
		},
		Site:    func() SiteInfo { return SiteInfo{Source: "site.yaml", Domain: "k8s.example.com."} },
		Build:   BuildInfo{Version: "v1.2.3", Commit: "abc", Go: "go1.26"},
		Started: time.Now(),
	}
	opts.SSH = sshca.New(sshca.Options{IPAM: opts.IPAM, Life: func() (time.Duration, time.Duration) { return 30 * 24 * time.Hour, 8 * time.Hour }})
	tweak(&opts)
	return New(opts)
}

func get(t *testing.T, url, token string) (*http.Response, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return do(t, req)
}

func do(t *testing.T, req *http.Request) (*http.Response, map[string]any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatalf("decode body: %v", err)
		}
	}
	return resp, body
}

// errorCode checks the body is {"error":{"code","message"}} and returns the code.
func errorCode(t *testing.T, body map[string]any) string {
	t.Helper()
	e, ok := body["error"].(map[string]any)
	if !ok {
		t.Fatalf("got body %v, want an error object", body)
	}
	if msg, _ := e["message"].(string); msg == "" {
		t.Errorf("got error %v without a message", e)
	}
	code, _ := e["code"].(string)
	return code
}

func TestReadyz(t *testing.T) {
	tests := []struct {
		name   string
		states []service.State
		want   int
	}{
		{"all ready", []service.State{service.StateReady, service.StateReady, service.StateReady}, 200},
		{"one failed", []service.State{service.StateReady, service.StateFailed, service.StateReady}, 503},
		{"one waiting", []service.State{service.StateReady, service.StateReady, service.StateWaiting}, 503},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t, tc.states...)
			resp, body := get(t, ts.URL+"/readyz", "")
			if resp.StatusCode != tc.want {
				t.Errorf("got %d, want %d", resp.StatusCode, tc.want)
			}
			services, _ := body["services"].([]any)
			if len(services) != 3 || services[0].(map[string]any)["name"] != "ntp" || services[2].(map[string]any)["name"] != "api" {
				t.Errorf("got services %v, want ntp, dns, api in start order", services)
			}
		})
	}
}

// stranded is a node of three cut off from the others: no quorum, no leader known.
type stranded struct{ fakeCluster }

func (stranded) Status() cluster.Status {
	return cluster.Status{Node: "infra1", Nodes: []cluster.NodeStatus{{Name: "infra1", Voter: true, State: "candidate"}}}
}

// TestReadyzWithoutQuorum: a node without its quorum is not ready (503), so a load
// balancer's status check leaves it out; ?read=1 asks only whether it answers what
// it can without one (DNS, reservations, renewals).
func TestReadyzWithoutQuorum(t *testing.T) {
	all := []service.State{service.StateReady, service.StateReady, service.StateReady}
	ts := httptest.NewServer(newServerWith(t, func(o *Options) { o.Cluster = stranded{} }, all...).Handler())
	t.Cleanup(ts.Close)
	if resp, body := get(t, ts.URL+"/readyz", ""); resp.StatusCode != http.StatusServiceUnavailable || body["ready"] != false || body["quorum"] != false {
		t.Errorf("/readyz without quorum: %d %v, want 503, not ready", resp.StatusCode, body)
	}
	if resp, body := get(t, ts.URL+"/readyz?read=1", ""); resp.StatusCode != http.StatusOK || body["ready"] != true {
		t.Errorf("/readyz?read=1 without quorum: %d %v, want 200", resp.StatusCode, body)
	}
}

// TestEveryRouteNeedsToken walks the router: every /api/v1 route but the two that
// relying parties fetch answers 401 without the token, or with a wrong one, before it
// reads a byte of the request.
func TestEveryRouteNeedsToken(t *testing.T) {
	ts := newTestServer(t, service.StateReady)
	open := []string{"GET /api/v1/ca/root.pem", "GET /api/v1/ca/crl", "GET /api/v1/ca/ssh", "GET /api/v1/ca/ssh/krl", "POST /api/v1/ca/ssh/renew"}
	checked := 0
	for _, route := range routes(t, newServer(t)) {
		method, path, _ := strings.Cut(route, " ")
		if !strings.HasPrefix(path, "/api/v1/") || slices.Contains(open, route) {
			continue
		}
		url := ts.URL + regexp.MustCompile(`\{[^}]*\}`).ReplaceAllString(path, "x")
		for _, token := range []string{"", "ffffffffffffffffffffffffffffffff"} {
			req, _ := http.NewRequest(method, url, strings.NewReader(`{"name": "x"}`))
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			resp, body := do(t, req)
			if resp.StatusCode != http.StatusUnauthorized || errorCode(t, body) != "unauthorized" {
				t.Errorf("%s with token %q: got %d %v, want 401 unauthorized", route, token, resp.StatusCode, body)
			}
		}
		checked++
	}
	if checked < 15 {
		t.Errorf("checked %d routes: the walk missed the API", checked)
	}
}

func TestStatusNeedsToken(t *testing.T) {
	ts := newTestServer(t, service.StateReady)
	tests := []struct {
		name, token string
		want        int
	}{
		{"no token", "", 401},
		{"wrong token", "ffffffffffffffffffffffffffffffff", 401},
		{"right token", testToken, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := get(t, ts.URL+"/api/v1/status", tc.token)
			if resp.StatusCode != tc.want {
				t.Fatalf("got %d, want %d", resp.StatusCode, tc.want)
			}
			if tc.want == 401 {
				if code := errorCode(t, body); code != "unauthorized" {
					t.Errorf("got code %q, want unauthorized", code)
				}
				if resp.Header.Get("WWW-Authenticate") == "" {
					t.Errorf("no WWW-Authenticate header on a 401")
				}
				return
			}
			if body["version"] != "v1.2.3" || body["go"] != "go1.26" || body["ready"] != true {
				t.Errorf("got %v, want version, go and ready", body)
			}
			if site, _ := body["site"].(map[string]any); site["domain"] != "k8s.example.com." {
				t.Errorf("got site %v, want the running site", body["site"])
			}
		})
	}
}

func TestErrorsAreJSON(t *testing.T) {
	ts := newTestServer(t, service.StateReady)
	tests := []struct {
		name, method, path, token string
		status                    int
		code                      string
	}{
		{"unknown route", "GET", "/nope", "", 404, "not_found"},
		{"unknown api route without token", "GET", "/api/v1/nope", "", 401, "unauthorized"},
		{"unknown api route with token", "GET", "/api/v1/nope", testToken, 404, "not_found"},
		{"wrong method", "POST", "/healthz", "", 405, "method_not_allowed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, ts.URL+tc.path, nil)
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			resp, body := do(t, req)
			if resp.StatusCode != tc.status {
				t.Errorf("got %d, want %d", resp.StatusCode, tc.status)
			}
			if code := errorCode(t, body); code != tc.code {
				t.Errorf("got code %q, want %q", code, tc.code)
			}
		})
	}
}

func TestMetrics(t *testing.T) {
	ts := newTestServer(t, service.StateReady, service.StateFailed)
	resp, err := http.Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`infrad_service_ready{service="ntp"} 1`, `infrad_service_ready{service="dns"} 0`, "go_goroutines"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestLoadToken(t *testing.T) {
	dir := t.TempDir()
	token, created, _, err := LoadToken(dir)
	if err != nil || !created || len(token) != 64 {
		t.Fatalf("first load: got %q created=%v err=%v, want a new 64-character token", token, created, err)
	}
	info, err := os.Stat(filepath.Join(dir, TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Mode().Perm(); got != 0o600 {
		t.Errorf("got mode %o, want 600", got)
	}
	again, created, _, err := LoadToken(dir)
	if err != nil || created || again != token {
		t.Errorf("second load: got %q created=%v err=%v, want the same token", again, created, err)
	}
	if err := os.Chmod(filepath.Join(dir, TokenFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, tightened, err := LoadToken(dir); err != nil || !tightened {
		t.Errorf("got tightened=%v err=%v, want a world-readable token tightened", tightened, err)
	}
	if info, _ := os.Stat(filepath.Join(dir, TokenFile)); info.Mode().Perm() != 0o600 {
		t.Errorf("got mode %o after tightening, want 600", info.Mode().Perm())
	}
}

// fakeLeases stands in for the DHCP service: no leases.
type fakeLeases struct{}

func (fakeLeases) Leases() ([]ipam.Lease, error) { return []ipam.Lease{}, nil }

func (fakeLeases) Activity(string, int) []dhcp.Event { return []dhcp.Event{} }

func (fakeLeases) Release(_ context.Context, ip netip.Addr) error {
	return &ipam.Error{Kind: ipam.ErrNotFound, Msg: "no lease of " + ip.String()}
}

// fakeSigner stands in for the DNS service's DNSSEC, which is off.
type fakeSigner struct{}

func (fakeSigner) DNSSEC() dns.DNSSECStatus { return dns.DNSSECStatus{} }
func (fakeSigner) RollKSK(context.Context) error {
	return fmt.Errorf("%w: the zones are not signed", dns.ErrKSKStage)
}
func (fakeSigner) ConfirmDS(context.Context) error {
	return fmt.Errorf("%w: no KSK roll is under way", dns.ErrKSKStage)
}

// fakeTime stands in for the NTP service.
type fakeTime struct{}

func (fakeTime) Status() ntp.State {
	return ntp.State{Source: ntp.SourceLocal, Stratum: 10, RefID: "LOCL"}
}

// fakeCA stands in for the CA: not started.
type fakeCA struct{}

func (fakeCA) RootPEM() []byte                         { return nil }
func (fakeCA) Info() (ca.Info, error)                  { return ca.Info{}, ca.ErrNotStarted }
func (fakeCA) Certificates() ([]ca.Certificate, error) { return nil, ca.ErrNotStarted }
func (fakeCA) CRL() ([]byte, error)                    { return nil, ca.ErrNotStarted }
func (fakeCA) CreateEAB(context.Context, string) (ca.EABKey, error) {
	return ca.EABKey{}, ca.ErrNotStarted
}
func (fakeCA) EABKeys(context.Context) ([]ca.EABKey, error) { return nil, ca.ErrNotStarted }
func (fakeCA) DeleteEAB(context.Context, string) error      { return ca.ErrNotStarted }

func TestRateLimit(t *testing.T) {
	s := newServerWith(t, func(o *Options) { o.RateLimit = 2 }, service.StateReady)
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	limited := 0
	for range 10 {
		resp, body := get(t, ts.URL+"/api/v1/status", testToken)
		if resp.StatusCode == http.StatusTooManyRequests {
			limited++
			if errorCode(t, body) != "rate_limited" || resp.Header.Get("Retry-After") == "" {
				t.Errorf("got %v, want a rate_limited error with Retry-After", body)
			}
		}
	}
	if limited == 0 || limited > 6 {
		t.Errorf("ten requests at once past 2/s (burst 4): got %d refused, want 6", limited)
	}
}

// fakeCluster is one box, alone in its cluster.
type fakeCluster struct{}

func (fakeCluster) Status() cluster.Status {
	return cluster.Status{Node: "infrad", Leader: "infrad", Quorum: true, Nodes: []cluster.NodeStatus{{Name: "infrad", Voter: true, State: "leader"}}}
}

func (fakeCluster) Remove(context.Context, string) error {
	return errors.New("the site runs on one box")
}

// TestMethods: HEAD is answered wherever GET is, and a 405 says in Allow what is.
func TestMethods(t *testing.T) {
	ts := newTestServer(t, service.StateReady, service.StateReady, service.StateReady)
	do := func(method, path string) *http.Response {
		req, _ := http.NewRequest(method, ts.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for _, path := range []string{"/healthz", "/api/v1/hosts", "/api/v1/subnets/vm", "/api/v1/changes"} {
		if resp := do(http.MethodHead, path); resp.StatusCode != http.StatusOK {
			t.Errorf("HEAD %s: %d, want 200", path, resp.StatusCode)
		}
	}
	for path, want := range map[string]string{
		"/api/v1/status":     "GET, HEAD",
		"/api/v1/hosts":      "GET, HEAD, POST",
		"/api/v1/hosts/cp01": "GET, HEAD, PUT, DELETE",
		"/api/v1/backup":     "GET, HEAD",
	} {
		resp := do(http.MethodPatch, path)
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != want {
			t.Errorf("PATCH %s: %d, Allow %q; want 405, Allow %q", path, resp.StatusCode, resp.Header.Get("Allow"), want)
		}
	}
}

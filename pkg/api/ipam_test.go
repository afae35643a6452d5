package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/go-chi/chi/v5"
)

// routes lists every "METHOD /path" the router serves.
func routes(t *testing.T, s *Server) []string {
	t.Helper()
	var out []string
	err := chi.Walk(s.Handler().(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		out = append(out, method+" "+strings.TrimSuffix(strings.ReplaceAll(route, "/*/", "/"), "/"))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// TestOpenAPIMatchesRouter walks the router and the document against each other.
func TestOpenAPIMatchesRouter(t *testing.T) {
	var doc struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(openapiJSON, &doc); err != nil {
		t.Fatalf("openapi.json is not JSON: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Errorf("got openapi %q, want 3.x", doc.OpenAPI)
	}
	var documented []string
	for path, ops := range doc.Paths {
		for method := range ops {
			documented = append(documented, strings.ToUpper(method)+" "+path)
		}
	}
	slices.Sort(documented)
	// The UI's files and the redirects to it are not the REST API.
	served := slices.DeleteFunc(routes(t, newServer(t)), func(r string) bool {
		_, path, _ := strings.Cut(r, " ")
		return path == "" || path == "/ui" || path == "/ui/*"
	})
	for _, r := range served {
		if !slices.Contains(documented, r) {
			t.Errorf("%s is served but not in openapi.json", r)
		}
	}
	for _, d := range documented {
		if !slices.Contains(served, d) {
			t.Errorf("%s is in openapi.json but not served", d)
		}
	}
}

// openRoutes need no token: what relying parties fetch, and a renewal proven by its key.
var openRoutes = map[string]bool{
	"GET /api/v1/ca/root.pem": true, "GET /api/v1/ca/crl": true,
	"GET /api/v1/ca/ssh": true, "GET /api/v1/ca/ssh/krl": true, "POST /api/v1/ca/ssh/renew": true,
}

// concrete fills a route's parameters with names that exist in the test site.
func concrete(route string) string {
	return strings.NewReplacer("{name}", "vm", "{id}", "0000000000000000").Replace(route)
}

// TestEveryRouteAnswersBadRequestsWithJSON sends each API route a request without a
// token and, where it takes a body, a malformed body, an unknown field and a body over
// the limit.
func TestEveryRouteAnswersBadRequestsWithJSON(t *testing.T) {
	s := newServer(t)
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	for _, route := range routes(t, s) {
		method, path, _ := strings.Cut(route, " ")
		if !strings.HasPrefix(path, "/api/v1/") || openRoutes[route] {
			continue // open by design: what relying parties fetch, and a renewal proven by its key
		}
		url := ts.URL + concrete(path)
		t.Run(route, func(t *testing.T) {
			req, _ := http.NewRequest(method, url, strings.NewReader("{}"))
			resp, body := do(t, req)
			if resp.StatusCode != http.StatusUnauthorized || errorCode(t, body) != "unauthorized" {
				t.Errorf("no token: got %d %v, want 401 unauthorized", resp.StatusCode, body)
			}
			if method != http.MethodPost && method != http.MethodPut {
				return
			}
			for _, tc := range []struct {
				name, body string
				status     int
				code       string
			}{
				{"malformed", `{"name": `, 400, "malformed"},
				{"not an object", `[1, 2]`, 400, "malformed"},
				{"two values", `{} {}`, 400, "malformed"},
				{"unknown field", `{"name": "x", "colour": "blue"}`, 400, "unknown_field"},
				{"too large", `{"name": "` + strings.Repeat("x", limitOf(path)) + `"}`, 413, "too_large"},
			} {
				if path == "/api/v1/plan" && tc.status != 413 {
					tc.status, tc.code = 422, "invalid" // a site file, YAML: not well formed is not a site
				}
				req, _ := http.NewRequest(method, url, strings.NewReader(tc.body))
				req.Header.Set("Authorization", "Bearer "+testToken)
				resp, body := do(t, req)
				if resp.StatusCode != tc.status || errorCode(t, body) != tc.code {
					t.Errorf("%s: got %d %v, want %d %s", tc.name, resp.StatusCode, body, tc.status, tc.code)
				}
			}
		})
	}
}

// call sends a JSON body with the token and decodes the JSON answer.
func call(t *testing.T, base, method, path string, body any) (*http.Response, map[string]any, []any) {
	t.Helper()
	return callAs(t, testToken, base, method, path, body)
}

// callAs is call with the bearer token token.
func callAs(t *testing.T, token, base, method, path string, body any) (*http.Response, map[string]any, []any) {
	t.Helper()
	var buf bytes.Buffer
	if body != nil {
		if err := json.NewEncoder(&buf).Encode(body); err != nil {
			t.Fatal(err)
		}
	}
	req, _ := http.NewRequest(method, base+path, &buf)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw json.RawMessage
	if resp.StatusCode != http.StatusNoContent {
		if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
			t.Fatalf("%s %s: decode: %v", method, path, err)
		}
	}
	var obj map[string]any
	var arr []any
	if len(raw) > 0 && raw[0] == '[' {
		_ = json.Unmarshal(raw, &arr)
	} else if len(raw) > 0 {
		_ = json.Unmarshal(raw, &obj)
	}
	return resp, obj, arr
}

func TestHostLifecycle(t *testing.T) {
	ts := newTestServer(t)
	resp, h, _ := call(t, ts.URL, "POST", "/api/v1/hosts", map[string]any{"name": "w01", "ip": "10.0.40.20", "mac": "52:54:00:00:40:20"})
	if resp.StatusCode != 201 || resp.Header.Get("Location") != "/api/v1/hosts/w01" || h["owner"] != "api" {
		t.Fatalf("create: got %d %q %v, want 201 with Location", resp.StatusCode, resp.Header.Get("Location"), h)
	}
	resp, h, _ = call(t, ts.URL, "GET", "/api/v1/hosts/w01", nil)
	if resp.StatusCode != 200 || h["ip"] != "10.0.40.20" {
		t.Errorf("get: got %d %v", resp.StatusCode, h)
	}
	resp, h, _ = call(t, ts.URL, "PUT", "/api/v1/hosts/w01", map[string]any{"ip": "10.0.40.21", "role": "worker"})
	if resp.StatusCode != 200 || h["ip"] != "10.0.40.21" || h["role"] != "worker" {
		t.Errorf("put: got %d %v", resp.StatusCode, h)
	}
	_, _, list := call(t, ts.URL, "GET", "/api/v1/hosts", nil)
	if len(list) != 2 {
		t.Errorf("list: got %d hosts, want 2", len(list))
	}
	if resp, _, _ := call(t, ts.URL, "DELETE", "/api/v1/hosts/w01", nil); resp.StatusCode != 204 {
		t.Errorf("delete: got %d, want 204", resp.StatusCode)
	}
	resp, body, _ := call(t, ts.URL, "GET", "/api/v1/hosts/w01", nil)
	if resp.StatusCode != 404 || errorCode(t, body) != "not_found" {
		t.Errorf("get after delete: got %d %v, want 404", resp.StatusCode, body)
	}
}

func TestRefusalsMapToStatus(t *testing.T) {
	ts := newTestServer(t)
	tests := []struct {
		name, method, path string
		body               any
		status             int
		code, field        string
		words              []string
	}{
		{"duplicate IP", "POST", "/api/v1/hosts", map[string]any{"name": "w02", "ip": "10.0.40.10"}, 409, "conflict", "ip", []string{"10.0.40.10", `"cp01"`}},
		{"host in a reserved range", "POST", "/api/v1/hosts", map[string]any{"name": "w02", "ip": "10.0.40.105"}, 409, "conflict", "ip", []string{`"metallb"`}},
		{"malformed MAC", "POST", "/api/v1/hosts", map[string]any{"name": "w02", "ip": "10.0.40.22", "mac": "zz"}, 422, "invalid", "mac", []string{`"zz"`}},
		{"a host name of two labels", "POST", "/api/v1/hosts", map[string]any{"name": "web03.example.com", "ip": "10.0.40.22"}, 422, "invalid", "name", []string{"one label", `name it "web03"`}},
		{"an absolute host name", "POST", "/api/v1/hosts", map[string]any{"name": "web03.k8s.example.com.", "ip": "10.0.40.22"}, 422, "invalid", "name", []string{"one label"}},
		{"field of the wrong type", "POST", "/api/v1/hosts", map[string]any{"name": 7}, 400, "malformed", "name", nil},
		{"file-owned host", "PUT", "/api/v1/hosts/cp01", map[string]any{"ip": "10.0.40.30"}, 409, "owned_by_file", "", []string{"site.yaml"}},
		{"delete file-owned subnet", "DELETE", "/api/v1/subnets/vm", nil, 409, "owned_by_file", "", []string{`"vm"`}},
		{"overlapping subnet", "POST", "/api/v1/subnets", map[string]any{"name": "lab", "cidr": "10.0.40.0/25"}, 409, "conflict", "cidr", []string{`"lab"`, `"vm"`}},
		{"missing subnet", "GET", "/api/v1/subnets/nope", nil, 404, "not_found", "", nil},
		{"allocate in a missing subnet", "POST", "/api/v1/subnets/nope/allocate", map[string]any{"name": "x"}, 404, "not_found", "", nil},
		{"CNAME at a host", "POST", "/api/v1/dns/records", map[string]any{"name": "cp01", "type": "CNAME", "value": "api"}, 409, "conflict", "", []string{`"cp01"`}},
		{"bad SRV", "POST", "/api/v1/dns/records", map[string]any{"name": "_x._tcp", "type": "SRV", "value": "1 2 x y"}, 422, "invalid", "value", nil},
		{"missing record", "DELETE", "/api/v1/dns/records/0000000000000000", nil, 404, "not_found", "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body, _ := call(t, ts.URL, tc.method, tc.path, tc.body)
			if resp.StatusCode != tc.status {
				t.Errorf("got %d %v, want %d", resp.StatusCode, body, tc.status)
			}
			if code := errorCode(t, body); code != tc.code {
				t.Errorf("got code %q, want %q", code, tc.code)
			}
			e := body["error"].(map[string]any)
			if got, _ := e["field"].(string); got != tc.field {
				t.Errorf("got field %q, want %q (%v)", got, tc.field, e["message"])
			}
			for _, w := range tc.words {
				if !strings.Contains(e["message"].(string), w) {
					t.Errorf("message %q does not name %s", e["message"], w)
				}
			}
		})
	}
}

func TestAllocateAndRecordsOverHTTP(t *testing.T) {
	ts := newTestServer(t)
	resp, h, _ := call(t, ts.URL, "POST", "/api/v1/subnets/vm/allocate", map[string]any{"name": "n1", "mac": "52:54:00:00:50:01"})
	if resp.StatusCode != 201 || h["ip"] != "10.0.40.2" || resp.Header.Get("Location") != "/api/v1/hosts/n1" {
		t.Errorf("allocate: got %d %v", resp.StatusCode, h)
	}
	resp, r, _ := call(t, ts.URL, "POST", "/api/v1/dns/records", map[string]any{"name": "grafana", "type": "CNAME", "value": "api"})
	if resp.StatusCode != 201 || r["value"] != "api.k8s.example.com." || r["id"] == "" {
		t.Fatalf("create record: got %d %v", resp.StatusCode, r)
	}
	loc := resp.Header.Get("Location")
	if loc != fmt.Sprintf("/api/v1/dns/records/%s", r["id"]) {
		t.Errorf("got Location %q", loc)
	}
	if resp, got, _ := call(t, ts.URL, "GET", loc, nil); resp.StatusCode != 200 || got["name"] != "grafana.k8s.example.com." {
		t.Errorf("get record: got %d %v", resp.StatusCode, got)
	}
	_, _, list := call(t, ts.URL, "GET", "/api/v1/dns/records", nil)
	if len(list) != 2 {
		t.Errorf("got %d records, want 2", len(list))
	}
	if resp, _, _ := call(t, ts.URL, "DELETE", loc, nil); resp.StatusCode != 204 {
		t.Errorf("delete record: got %d", resp.StatusCode)
	}
}

func TestIPAMMetrics(t *testing.T) {
	ts := newTestServer(t)
	resp, err := http.Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	for _, want := range []string{
		// 254 usable; used: gateway, cp01 and the 21 addresses of metallb.
		`infrad_ipam_subnet_addresses{state="used",subnet="vm"} 23`,
		`infrad_ipam_subnet_addresses{state="free",subnet="vm"} 231`,
		`infrad_ipam_range_addresses{kind="reserved",range="metallb",state="used",subnet="vm"} 21`,
		`infrad_ipam_range_addresses{kind="dhcp",range="10.0.40.150-10.0.40.199",state="free",subnet="vm"} 50`,
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestConcurrentAllocateOverHTTP(t *testing.T) {
	ts := newTestServer(t)
	const n = 100
	ips := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			body := fmt.Sprintf(`{"name": "node%03d"}`, i)
			req, _ := http.NewRequest("POST", ts.URL+"/api/v1/subnets/vm/allocate", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+testToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			var h map[string]any
			json.NewDecoder(resp.Body).Decode(&h)
			if resp.StatusCode != http.StatusCreated {
				t.Errorf("node%03d: got %d %v", i, resp.StatusCode, h)
				return
			}
			ips[i], _ = h["ip"].(string)
		})
	}
	wg.Wait()
	seen := map[string]int{}
	for i, ip := range ips {
		if j, dup := seen[ip]; dup && ip != "" {
			t.Errorf("node%03d and node%03d both got %s", i, j, ip)
		}
		seen[ip] = i
	}
	if len(seen) != n {
		t.Errorf("got %d distinct addresses, want %d", len(seen), n)
	}
}

// limitOf is the largest body the route at path reads.
func limitOf(path string) int {
	if path == "/api/v1/import" {
		return maxImport
	}
	return maxBody
}

package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/infrad/infrad/pkg/service"
)

// TestOpenAPIListsEveryStatus sends every documented operation the requests that make
// each kind of answer (good ones, none of a token, objects that do not exist, bad and
// oversized bodies, invalid objects, a method the path does not have, more requests
// than the rate allows) and fails on any status the document does not list for it.
func TestOpenAPIListsEveryStatus(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]struct {
			Responses map[string]json.RawMessage `json:"responses"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(openapiJSON, &doc); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(newServer(t, service.StateReady, service.StateDegraded).Handler())
	defer ts.Close()
	limited := httptest.NewServer(newServerWith(t, func(o *Options) { o.RateLimit = 1 }, service.StateReady).Handler())
	defer limited.Close()
	sendTo := func(base, method, path, token, body string) int {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	send := func(method, path, token, body string) int { return sendTo(ts.URL, method, path, token, body) }
	bodies := []string{"", "{", `{"colour": 1}`, `{"name": "` + strings.Repeat("x", maxBody) + `"}`,
		`{"name": "w09", "ip": "10.0.40.999"}`, `{"name": "w09", "ip": "10.0.40.10"}`, `{"name": "t1", "cidr": "10.9.0.0/24"}`,
		`{"name": "x", "type": "A", "value": "10.0.40.77"}`, "domain: k8s.example.com\n"}
	for path, ops := range doc.Paths {
		for _, concretePath := range []string{concrete(path), strings.NewReplacer("{name}", "nothing", "{id}", "ffff", "{ip}", "10.0.40.250").Replace(path), strings.ReplaceAll(concrete(path), "{ip}", "not-an-ip")} {
			for method, op := range ops {
				method = strings.ToUpper(method)
				seen := map[int]bool{send(method, concretePath, "", ""): true}
				for _, body := range bodies {
					seen[send(method, concretePath, testToken, body)] = true
				}
				for code := range seen {
					if _, ok := op.Responses[fmt.Sprint(code)]; !ok {
						t.Errorf("%s %s answers %d, which openapi.json does not list", method, path, code)
					}
				}
			}
			for _, method := range []string{"GET", "POST", "PUT", "DELETE", "PATCH"} {
				if _, ok := ops[strings.ToLower(method)]; ok {
					continue
				}
				if code := send(method, concretePath, testToken, "{}"); code != http.StatusMethodNotAllowed {
					continue // (a route of another path can match: /subnets/{name} for /subnets/allocate)
				}
				for m, op := range ops {
					if _, ok := op.Responses["405"]; !ok {
						t.Errorf("%s answers 405 to %s; its %s does not list 405", path, method, strings.ToUpper(m))
					}
				}
			}
		}
	}
	// Past the rate, 429 is listed exactly where it is answered (the root and the CRL
	// are open, and not limited).
	for path, ops := range doc.Paths {
		if !strings.HasPrefix(path, "/api/v1/") {
			continue
		}
		for method, op := range ops {
			seen := false
			for range 5 {
				seen = seen || sendTo(limited.URL, strings.ToUpper(method), concrete(path), testToken, "") == http.StatusTooManyRequests
			}
			switch _, ok := op.Responses["429"]; {
			case seen && !ok:
				t.Errorf("%s %s is rate-limited; openapi.json does not list 429", strings.ToUpper(method), path)
			case ok && !seen:
				t.Errorf("%s %s lists 429 but answered none past the rate", strings.ToUpper(method), path)
			}
		}
	}
}

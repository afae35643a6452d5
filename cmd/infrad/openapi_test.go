package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// The suite's API traffic is held to openapi.json: every response of the running
// infrad the tests' Go clients read (http.DefaultClient) is recorded, and once the
// tests end each value of a field whose schema has an enum must be one of it. A
// value the server emits and the document does not list (a new change kind, a new
// state) fails the suite.

type exchange struct {
	method, path string
	status       int
	body         []byte
}

// recorder is http.DefaultClient's transport in this package's tests.
type recorder struct {
	next http.RoundTripper
	mu   sync.Mutex
	seen []exchange
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	if err != nil || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") || !strings.HasPrefix(req.URL.Path, "/api/v1/") {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if err == nil {
		r.mu.Lock()
		r.seen = append(r.seen, exchange{req.Method, req.URL.Path, resp.StatusCode, body})
		r.mu.Unlock()
	}
	return resp, nil
}

var traffic = &recorder{next: http.DefaultTransport}

func init() { http.DefaultClient.Transport = traffic }

// checkTraffic returns the values the recorded responses hold that openapi.json's
// enums do not list, one line each.
func checkTraffic() ([]string, error) {
	raw, err := os.ReadFile("../../pkg/api/openapi.json")
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, err
	}
	paths, _ := doc["paths"].(map[string]any)
	templates := make([]string, 0, len(paths))
	for p := range paths {
		templates = append(templates, p)
	}
	// Literal segments first: /tokens/api-token/rotate before /tokens/{name}.
	sort.Slice(templates, func(i, j int) bool { return strings.Count(templates[i], "{") < strings.Count(templates[j], "{") })
	problems := map[string]bool{}
	traffic.mu.Lock()
	defer traffic.mu.Unlock()
	for _, x := range traffic.seen {
		tmpl := slices.IndexFunc(templates, func(t string) bool { return matches(t, x.path) })
		if tmpl < 0 {
			continue
		}
		op, _ := paths[templates[tmpl]].(map[string]any)[strings.ToLower(x.method)].(map[string]any)
		resps, _ := op["responses"].(map[string]any)
		resp, _ := resps[strconv.Itoa(x.status)].(map[string]any)
		schema := dig(resp, "content", "application/json", "schema")
		if schema == nil {
			continue
		}
		var v any
		if json.Unmarshal(x.body, &v) != nil {
			continue
		}
		where := x.method + " " + templates[tmpl]
		walk(doc, schema, v, "body", func(at string, value any, enum []any) {
			at = regexp.MustCompile(`\[\d+\]`).ReplaceAllString(at, "[]")
			problems[fmt.Sprintf("%s: %s is %v, which the enum %v does not list", where, at, value, enum)] = true
		})
	}
	var out []string
	for p := range problems {
		out = append(out, p)
	}
	sort.Strings(out)
	return out, nil
}

// matches reports whether path is an instance of the template /a/{b}/c.
func matches(template, path string) bool {
	t, p := strings.Split(template, "/"), strings.Split(path, "/")
	if len(t) != len(p) {
		return false
	}
	for i := range t {
		if !strings.HasPrefix(t[i], "{") && t[i] != p[i] {
			return false
		}
	}
	return true
}

func dig(v any, keys ...string) map[string]any {
	for _, k := range keys {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	m, _ := v.(map[string]any)
	return m
}

// walk follows value along schema ($refs resolved in doc), calling bad for each
// value outside its schema's enum.
func walk(doc, schema map[string]any, value any, at string, bad func(at string, value any, enum []any)) {
	for ref, ok := schema["$ref"].(string); ok; ref, ok = schema["$ref"].(string) {
		schema = dig(doc, strings.Split(strings.TrimPrefix(ref, "#/"), "/")...)
		if schema == nil {
			return
		}
	}
	if enum, ok := schema["enum"].([]any); ok && value != nil && !slices.Contains(enum, value) {
		bad(at, value, enum)
	}
	switch v := value.(type) {
	case map[string]any:
		props, _ := schema["properties"].(map[string]any)
		for k, sub := range v {
			if s, ok := props[k].(map[string]any); ok {
				walk(doc, s, sub, at+"."+k, bad)
			}
		}
	case []any:
		if items, ok := schema["items"].(map[string]any); ok {
			for i, sub := range v {
				walk(doc, items, sub, fmt.Sprintf("%s[%d]", at, i), bad)
			}
		}
	}
}

package export

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

// The projects whose objects infrad exports, at the versions whose CRDs the exports
// are checked against: each Go module ships its CRDs as YAML.
var crdModules = []struct{ module, dir string }{
	{"go.universe.tf/metallb@v0.15.3", "config/crd/bases"},
	{"github.com/cert-manager/cert-manager@v1.19.1", "deploy/crds"},
}

// TestExportsMatchTheCRDs validates every object the metallb and cert-manager exports
// write (L2 and BGP) against the openAPIV3Schema of its kind and version in the CRDs
// those projects publish, strictly: a field the schema does not have is an error, as
// kubectl's strict field validation makes it.
func TestExportsMatchTheCRDs(t *testing.T) {
	crds := loadCRDs(t)
	l2 := exampleSite(t)
	bgp := exampleSite(t)
	bgp.BGP = &BGP{MyASN: 64512, PeerASN: 64513, PeerAddress: netip.MustParseAddr("10.0.40.1"), PeerPort: 179}
	eab := exampleSite(t)
	eab.EAB = &EAB{KeyID: "kid-1", HMAC: "c2VjcmV0"}
	checked := 0
	for _, tc := range []struct {
		kind string
		site Site
	}{{"metallb", l2}, {"metallb", bgp}, {"cert-manager", l2}, {"cert-manager", eab}} {
		out, err := Render(tc.kind, tc.site)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(strings.NewReader(out))
		for {
			var obj map[string]any
			if err := dec.Decode(&obj); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", tc.kind, err)
			}
			id := obj["apiVersion"].(string) + " " + obj["kind"].(string)
			if id == "v1 Secret" { // core, no CRD: what the issuer's keySecretRef names
				if md, _ := obj["metadata"].(map[string]any); md["name"] != "infrad-acme-eab" || md["namespace"] != "cert-manager" {
					t.Errorf("%s writes a Secret the issuer does not name: %v", tc.kind, md)
				}
				checked++
				continue
			}
			schema, ok := crds[id]
			if !ok {
				t.Errorf("%s writes %s, which no served version of the CRDs defines", tc.kind, id)
				continue
			}
			if err := schema.Validate(jsonValue(t, obj)); err != nil {
				t.Errorf("%s writes a %s its CRD refuses: %#v", tc.kind, id, err)
			}
			checked++
		}
	}
	if checked < 6 {
		t.Errorf("checked %d objects, want every one of the exports", checked)
	}
}

// loadCRDs compiles the schema of every served version of every CRD, by
// "group/version Kind".
func loadCRDs(t *testing.T) map[string]*jsonschema.Schema {
	t.Helper()
	out := map[string]*jsonschema.Schema{}
	for _, m := range crdModules {
		dir := moduleDir(t, m.module)
		files, _ := filepath.Glob(filepath.Join(dir, m.dir, "*.yaml"))
		for _, f := range files {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var crd struct {
				Kind string
				Spec struct {
					Group    string
					Names    struct{ Kind string }
					Versions []struct {
						Name   string
						Served bool
						Schema struct {
							OpenAPIV3Schema map[string]any `yaml:"openAPIV3Schema"`
						}
					}
				}
			}
			if err := yaml.Unmarshal(raw, &crd); err != nil || crd.Kind != "CustomResourceDefinition" {
				continue
			}
			for _, v := range crd.Spec.Versions {
				if !v.Served {
					continue
				}
				id := crd.Spec.Group + "/" + v.Name + " " + crd.Spec.Names.Kind
				c := jsonschema.NewCompiler()
				if err := c.AddResource(id, jsonValue(t, strict(v.Schema.OpenAPIV3Schema))); err != nil {
					t.Fatal(err)
				}
				schema, err := c.Compile(id)
				if err != nil {
					t.Fatalf("%s: %v", id, err)
				}
				out[id] = schema
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("no CRDs found")
	}
	return out
}

// moduleDir downloads module (from the module proxy, once) and returns its directory.
func moduleDir(t *testing.T, module string) string {
	t.Helper()
	out, err := exec.Command("go", "mod", "download", "-json", module).Output()
	if err != nil {
		t.Fatalf("go mod download %s: %v", module, err)
	}
	var m struct{ Dir string }
	if err := json.Unmarshal(out, &m); err != nil || m.Dir == "" {
		t.Fatalf("go mod download %s: %v\n%s", module, err, out)
	}
	return m.Dir
}

// strict closes every object schema that lists its properties and does not say to
// keep unknown ones: the API server prunes unknown fields, and strict validation
// refuses them.
func strict(s any) any {
	switch s := s.(type) {
	case map[string]any:
		for k, v := range s {
			s[k] = strict(v)
		}
		if _, listed := s["properties"]; listed && s["x-kubernetes-preserve-unknown-fields"] != true {
			if _, set := s["additionalProperties"]; !set {
				s["additionalProperties"] = false
			}
		}
	case []any:
		for i, v := range s {
			s[i] = strict(v)
		}
	}
	return s
}

// jsonValue is v as jsonschema reads a JSON document.
func jsonValue(t *testing.T, v any) any {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

package config

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds the site-file parser anything: it may refuse, never panic.
func FuzzParse(f *testing.F) {
	f.Add(demoYAML)
	for _, pattern := range []string{"testdata/*.yaml", "../../deploy/examples/*.yaml"} {
		paths, _ := filepath.Glob(pattern)
		for _, p := range paths {
			if raw, err := os.ReadFile(p); err == nil {
				f.Add(raw)
			}
		}
	}
	f.Add([]byte("domain: [a\n  b: {c"))
	f.Add([]byte("subnets:\n  - &a {name: x}\n  - *a\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		site, err := Parse("fuzz.yaml", data)
		if err == nil && site == nil {
			t.Fatal("no site and no error")
		}
	})
}

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestExamplesValidate runs infrad validate on every example site in deploy/.
func TestExamplesValidate(t *testing.T) {
	examples, _ := filepath.Glob("../../deploy/examples/*.yaml")
	if len(examples) < 3 {
		t.Fatalf("got %d examples, want the lab/edge box, the bastion and the homelab", len(examples))
	}
	for _, path := range examples {
		t.Run(filepath.Base(path), func(t *testing.T) {
			out, err := exec.Command(binary, "validate", "-c", path).CombinedOutput()
			if err != nil {
				t.Errorf("%s: %v\n%s", path, err, out)
			}
		})
	}
}

// TestSystemdUnit checks deploy/infrad.service with systemd-analyze, where it exists.
func TestSystemdUnit(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze is not installed")
	}
	raw, err := os.ReadFile("../../deploy/infrad.service")
	if err != nil {
		t.Fatal(err)
	}
	// verify wants ExecStart's program to exist: point it at the binary under test.
	unit := filepath.Join(t.TempDir(), "infrad.service")
	os.WriteFile(unit, []byte(strings.ReplaceAll(string(raw), "/usr/local/bin/infrad", binary)), 0o644)
	out, err := exec.Command("systemd-analyze", "verify", unit).CombinedOutput()
	if err != nil {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

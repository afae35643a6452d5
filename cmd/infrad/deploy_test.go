package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/infrad/infrad/internal/testenv"
)

// TestExamplesValidate runs infrad validate on every example site in deploy/.
func TestExamplesValidate(t *testing.T) {
	examples, _ := filepath.Glob("../../deploy/examples/*.yaml")
	if len(examples) < 4 {
		t.Fatalf("got %d examples, want the lab/edge box, the bastion, the homelab and the edge pair", len(examples))
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

// TestMetricsOfEveryService checks that /metrics has each service's families.
func TestMetricsOfEveryService(t *testing.T) {
	dir := t.TempDir()
	port := testenv.FreePort(t)
	start(t, dir, "serve", "-c", siteFile(t, dir, "k8s.example.com", port))
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitReady(t, base)
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, family := range []string{"infrad_service_ready", "infrad_dns_requests_total", "infrad_dhcp_sent_total",
		"infrad_ntp_requests_total", "infrad_ntp_stratum", "infrad_ca_intermediate_expiry_days",
		"infrad_ipam_subnet_addresses", "infrad_dnssec_signatures_total", "infrad_nts_replies_total", "infrad_nts_naks_total",
		"infrad_nts_ke_handshakes_total", "infrad_nts_ke_errors_total", "go_goroutines"} {
		if !strings.Contains(string(body), "\n"+family) {
			t.Errorf("/metrics lacks %s", family)
		}
	}
}

// TestGrafanaDashboard checks that every panel of deploy/grafana-dashboard.json asks
// for a metric infrad exports.
func TestGrafanaDashboard(t *testing.T) {
	raw, err := os.ReadFile("../../deploy/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	exported := []string{"infrad_service_ready", "infrad_dns_requests_total", "infrad_dns_request_duration_seconds",
		"infrad_dhcp_sent_total", "infrad_dhcp_pool_exhausted_total", "infrad_ipam_range_addresses", "infrad_ipam_subnet_addresses",
		"infrad_ntp_offset_seconds", "infrad_ntp_stratum", "infrad_ntp_leap", "infrad_ntp_requests_total", "infrad_ntp_rate_limited_total",
		"infrad_ca_certificates_issued", "infrad_ca_issue_failures_total", "infrad_ca_intermediate_expiry_days",
		"infrad_dnssec_signatures_total", "infrad_nts_replies_total", "infrad_nts_naks_total", "infrad_nts_ke_handshakes_total", "infrad_nts_ke_errors_total"}
	if len(dash.Panels) == 0 {
		t.Fatal("no panels")
	}
	for _, p := range dash.Panels {
		for _, target := range p.Targets {
			for _, name := range regexp.MustCompile(`infrad_[a-z_]+`).FindAllString(target.Expr, -1) {
				name = strings.TrimSuffix(name, "_bucket")
				if !slices.Contains(exported, name) {
					t.Errorf("panel %q asks for %s, which infrad does not export", p.Title, name)
				}
			}
		}
	}
}

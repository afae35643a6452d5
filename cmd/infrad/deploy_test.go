package main

import (
	"debug/elf"
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
	"time"

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

// TestRelease runs make release into a directory of its own: static binaries for
// linux/amd64 and linux/arm64; a .deb of each with the binary in /usr/bin, the unit
// run as the package's system user, the scripts that make that user, and the
// examples; and the multi-arch OCI image, read back with skopeo. The arm64 binary
// taken out of the image then serves a site under qemu-user (whose kernel emulation
// gives NTP no receive timestamps, which once took NTP and the CA down) and answers
// the API's readiness and a DNS query.
func TestRelease(t *testing.T) {
	testenv.Need(t, "make", "git", "dpkg-deb", "qemu-aarch64-static", "dig", "skopeo", "tar")
	dist := t.TempDir()
	if out, err := exec.Command("make", "-C", "../..", "release", "DIST="+dist).CombinedOutput(); err != nil {
		t.Fatalf("make release: %v\n%s", err, out)
	}
	for arch, machine := range map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64} {
		f, err := elf.Open(filepath.Join(dist, "infrad-linux-"+arch))
		if err != nil {
			t.Fatal(err)
		}
		libs, _ := f.ImportedLibraries()
		static := !slices.ContainsFunc(f.Progs, func(p *elf.Prog) bool { return p.Type == elf.PT_INTERP })
		if f.Machine != machine || !static || len(libs) > 0 {
			t.Errorf("infrad-linux-%s: machine %s, static %v, libraries %v", arch, f.Machine, static, libs)
		}
		f.Close()
		debs, _ := filepath.Glob(filepath.Join(dist, "infrad_*_"+arch+".deb"))
		if len(debs) != 1 {
			t.Fatalf("%d .deb files for %s in %s", len(debs), arch, dist)
		}
		contents, _ := exec.Command("dpkg-deb", "-c", debs[0]).Output()
		control, _ := exec.Command("dpkg-deb", "-f", debs[0], "Architecture").Output()
		postinst, _ := exec.Command("dpkg-deb", "-I", debs[0], "postinst").Output()
		unit, _ := exec.Command("dpkg-deb", "--fsys-tarfile", debs[0]).Output()
		for _, want := range []string{"./usr/bin/infrad", "./lib/systemd/system/infrad.service", "./usr/share/doc/infrad/examples/edge-pair.yaml"} {
			if !strings.Contains(string(contents), want) {
				t.Errorf("%s lacks %s:\n%s", filepath.Base(debs[0]), want, contents)
			}
		}
		if strings.TrimSpace(string(control)) != arch || !strings.Contains(string(postinst), "adduser --system") {
			t.Errorf("%s: architecture %q, postinst:\n%s", filepath.Base(debs[0]), control, postinst)
		}
		if !strings.Contains(string(unit), "ExecStart=/usr/bin/infrad serve") || strings.Contains(string(unit), "DynamicUser=yes") {
			t.Errorf("%s's unit does not run /usr/bin/infrad as the package's user", filepath.Base(debs[0]))
		}
	}

	index, err := exec.Command("skopeo", "inspect", "--raw", "oci:"+filepath.Join(dist, "oci")).Output()
	if err != nil {
		t.Fatalf("skopeo inspect the image: %v", err)
	}
	var manifests struct {
		Manifests []struct {
			Platform struct{ OS, Architecture string }
		}
	}
	json.Unmarshal(index, &manifests)
	var platforms []string
	for _, m := range manifests.Manifests {
		platforms = append(platforms, m.Platform.OS+"/"+m.Platform.Architecture)
	}
	if !slices.Equal(platforms, []string{"linux/amd64", "linux/arm64"}) {
		t.Errorf("the image's platforms are %v, want linux/amd64 and linux/arm64:\n%s", platforms, index)
	}
	cfg, _ := exec.Command("skopeo", "inspect", "--config", "--override-arch", "arm64", "oci:"+filepath.Join(dist, "oci")).Output()
	if !strings.Contains(string(cfg), `"/usr/local/bin/infrad"`) || !strings.Contains(string(cfg), `"User": "65532:65532"`) {
		t.Errorf("the arm64 image's configuration:\n%s", cfg)
	}
	img := t.TempDir()
	if out, err := exec.Command("skopeo", "copy", "--override-arch", "arm64", "oci:"+filepath.Join(dist, "oci"), "dir:"+img).CombinedOutput(); err != nil {
		t.Fatalf("skopeo copy the arm64 image: %v\n%s", err, out)
	}
	var manifest struct{ Layers []struct{ Digest string } }
	raw, _ := os.ReadFile(filepath.Join(img, "manifest.json"))
	if json.Unmarshal(raw, &manifest) != nil || len(manifest.Layers) != 1 {
		t.Fatalf("the arm64 image's manifest: %s", raw)
	}
	rootfs := t.TempDir()
	layer := filepath.Join(img, strings.TrimPrefix(manifest.Layers[0].Digest, "sha256:"))
	if out, err := exec.Command("tar", "-x", "-f", layer, "-C", rootfs).CombinedOutput(); err != nil {
		t.Fatalf("the arm64 image's layer: %v\n%s", err, out)
	}

	dir := t.TempDir()
	api := testenv.FreePort(t)
	site := siteFile(t, dir, "arm.test", api)
	raw, _ = os.ReadFile(site)
	dnsPort := regexp.MustCompile(`dns: \{listen: \["127\.0\.0\.1:(\d+)"\]\}`).FindStringSubmatch(string(raw))[1]
	p := startCmd(t, dir, "qemu-aarch64-static", filepath.Join(rootfs, "usr/local/bin/infrad"), "serve", "-c", site)
	base := fmt.Sprintf("http://127.0.0.1:%d", api)
	deadline := time.Now().Add(2 * time.Minute) // every instruction emulated
	for {
		if code, _, err := httpGet(base+"/readyz", ""); err == nil && code == http.StatusOK {
			break
		}
		select {
		case <-p.done:
			t.Fatalf("the arm64 binary stopped:\n%s", p.output.String())
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_, body, _ := httpGet(base+"/readyz", "")
			t.Fatalf("the arm64 binary is not ready after 2 minutes: %s", body)
		}
	}
	out, _ := exec.Command("dig", "@127.0.0.1", "-p", dnsPort, "+short", "+tries=3", "+time=5", "cp01.arm.test").Output()
	if strings.TrimSpace(string(out)) != "10.0.40.10" {
		t.Errorf("the arm64 binary answered cp01 with %q", out)
	}
	if strings.Contains(p.output.String(), "no receive timestamps") {
		t.Log("under qemu-user the kernel gave NTP no receive timestamps: it stamps requests as it reads them")
	}
}

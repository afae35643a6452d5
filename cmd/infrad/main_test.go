package main

// These tests build the infrad binary and run it as a user would.

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/infrad/infrad/internal/testenv"
	"github.com/infrad/infrad/pkg/export"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "infrad-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "infrad")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build infrad:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		problems, err := checkTraffic()
		if err != nil {
			fmt.Fprintln(os.Stderr, "check the API's traffic against openapi.json:", err)
			code = 1
		}
		for _, p := range problems {
			fmt.Fprintln(os.Stderr, "openapi.json:", p)
			code = 1
		}
	}
	os.Exit(code)
}

type proc struct {
	cmd    *exec.Cmd
	output *testenv.Output
	done   chan struct{}
	err    error // valid once done is closed
}

// start runs the binary in dir; the test's cleanup kills it if it is still running.
func start(t *testing.T, dir string, args ...string) *proc {
	t.Helper()
	return startCmd(t, dir, binary, args...)
}

// startCmd runs any command in dir, collecting its output, and kills it at cleanup.
func startCmd(t *testing.T, dir, name string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(name, args...), output: &testenv.Output{}, done: make(chan struct{})}
	p.cmd.Dir = dir
	p.cmd.Stdout, p.cmd.Stderr = p.output, p.output
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(name), p.output.String())
		}
	})
	return p
}

// wait returns the exit code, failing the test if the process runs past limit.
func (p *proc) wait(t *testing.T, limit time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(limit):
		t.Fatalf("infrad still running after %s", limit)
		return -1
	}
}

// siteFile writes a small valid site with its API on a free port, in a fresh data dir.
func siteFile(t *testing.T, dir, domain string, apiPort int) string {
	t.Helper()
	path := filepath.Join(dir, "site.yaml")
	site := fmt.Sprintf(`domain: %s
data_dir: %s
api: {listen: "127.0.0.1:%d"}
dns: {listen: ["127.0.0.1:%d"]}
ntp: {listen: ["127.0.0.1:%d"], local_stratum: 10, chronyd: none}
ca: {listen: "127.0.0.1:%d"}
subnets:
  - {name: vm, cidr: 10.0.40.0/24, gateway: 10.0.40.1}
hosts:
  - {name: cp01, ip: 10.0.40.10, mac: "52:54:00:00:40:10"}
`, domain, filepath.Join(dir, "data"), apiPort, testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t))
	if err := os.WriteFile(path, []byte(site), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func httpGet(url, token string) (int, map[string]any, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var body map[string]any
	err = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body, err
}

func waitReady(t *testing.T, base string) {
	t.Helper()
	testenv.WaitFor(t, base+"/readyz to answer 200", func() bool {
		code, _, err := httpGet(base+"/readyz", "")
		return err == nil && code == http.StatusOK
	})
}

func readToken(t *testing.T, dataDir string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dataDir, "api-token"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(raw))
}

func TestValidateNamesEveryMistake(t *testing.T) {
	dir, _ := filepath.Abs("../../pkg/config/testdata")
	p := start(t, dir, "validate", "-c", "every-mistake.yaml")
	if code := p.wait(t, 30*time.Second); code != exitFail {
		t.Errorf("got exit %d, want %d", code, exitFail)
	}
	golden, err := os.ReadFile(filepath.Join(dir, "every-mistake.golden"))
	if err != nil {
		t.Fatal(err)
	}
	out := p.output.String()
	for _, line := range strings.Split(strings.TrimSpace(string(golden)), "\n") {
		line = strings.TrimPrefix(line, "testdata/")
		if !strings.Contains(out, line+"\n") {
			t.Errorf("validate did not print %q", line)
		}
	}
}

func TestValidateAcceptsAGoodSite(t *testing.T) {
	dir := t.TempDir()
	p := start(t, dir, "validate", "-c", siteFile(t, dir, "k8s.example.com", 8080))
	if code := p.wait(t, 30*time.Second); code != exitOK {
		t.Errorf("got exit %d, want 0", code)
	}
	if !strings.Contains(p.output.String(), "valid (domain k8s.example.com., 1 subnets, 1 hosts") {
		t.Errorf("got %q, want a one-line summary", p.output.String())
	}
}

func TestVersion(t *testing.T) {
	p := start(t, t.TempDir(), "version")
	if code := p.wait(t, 30*time.Second); code != exitOK {
		t.Errorf("got exit %d, want 0", code)
	}
	if out := p.output.String(); !strings.HasPrefix(out, "infrad ") || !strings.Contains(out, "commit ") || !strings.Contains(out, "go1.") {
		t.Errorf("got %q, want version, commit and Go version", out)
	}
}

func TestHelpListsOnlyWorkingCommands(t *testing.T) {
	p := start(t, t.TempDir(), "help")
	p.wait(t, 30*time.Second)
	out := p.output.String()
	for _, cmd := range []string{"serve", "validate", "plan", "check", "export", "backup", "token", "version"} {
		if !strings.Contains(out, "infrad "+cmd) {
			t.Errorf("help does not list %s", cmd)
		}
	}
	for kind := range export.Kinds {
		if !regexp.MustCompile(`infrad export .*\b` + regexp.QuoteMeta(kind) + `\b`).MatchString(out) {
			t.Errorf("help does not list export %s", kind)
		}
	}
	// The commands that talk to infrad take their flags before the verb or after it.
	for _, args := range [][]string{
		{"cluster", "status", "--api", "http://127.0.0.1:1", "--token", "x"},
		{"cluster", "--api", "http://127.0.0.1:1", "--token", "x", "status"},
		{"cluster", "remove", "infra3", "--api", "http://127.0.0.1:1", "--token", "x"},
		{"token", "list", "--api", "http://127.0.0.1:1", "--token", "x"},
		{"token", "--api", "http://127.0.0.1:1", "--token", "x", "list"},
	} {
		p := start(t, t.TempDir(), args...)
		if code := p.wait(t, 30*time.Second); code != exitFail || !strings.Contains(p.output.String(), "connection refused") {
			t.Errorf("infrad %s: exit %d, want it to reach for the API:\n%s", strings.Join(args, " "), code, p.output.String())
		}
	}
}

// needDemoPort skips a test of the demo site, or fails it with INFRAD_E2E=1, when the
// demo's API port is taken (a make run in another terminal).
func needDemoPort(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:8080")
	if err != nil {
		if os.Getenv("INFRAD_E2E") == "1" {
			t.Fatalf("the demo site's port 127.0.0.1:8080 is taken: %v", err)
		}
		t.Skipf("the demo site's port 127.0.0.1:8080 is taken (%v); skipping", err)
	}
	ln.Close()
}

// TestDemoSite runs `infrad serve` with no site file, as `make run` does.
func TestDemoSite(t *testing.T) {
	needDemoPort(t)
	dir := t.TempDir()
	p := start(t, dir, "serve")
	base := "http://127.0.0.1:8080"
	waitReady(t, base)

	dataDir := filepath.Join(dir, "data")
	info, err := os.Stat(filepath.Join(dataDir, "api-token"))
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Mode().Perm(); got != 0o600 {
		t.Errorf("api-token: got mode %o, want 600", got)
	}
	if code, body, _ := httpGet(base+"/api/v1/status", ""); code != http.StatusUnauthorized || body["error"] == nil {
		t.Errorf("status without token: got %d %v, want 401 with a JSON error", code, body)
	}
	code, body, err := httpGet(base+"/api/v1/status", readToken(t, dataDir))
	if err != nil || code != http.StatusOK {
		t.Fatalf("status with token: got %d %v", code, err)
	}
	if site := body["site"].(map[string]any); site["domain"] != "lab.internal." {
		t.Errorf("got domain %v, want lab.internal.", site["domain"])
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 10*time.Second); code != exitOK {
		t.Errorf("SIGTERM: got exit %d, want 0", code)
	}
	// The token appears in the log once: in the sign-in link.
	token, out := readToken(t, dataDir), p.output.String()
	if n := strings.Count(out, token); n != 1 || !strings.Contains(out, "/ui/#token="+token) {
		t.Errorf("the token appears %d times in the log, want once, in the sign-in link:\n%s", n, out)
	}
}

func TestSecondInstanceOnTheSameDataDirExits(t *testing.T) {
	dir := t.TempDir()
	port := testenv.FreePort(t)
	first := start(t, dir, "serve", "-c", siteFile(t, dir, "k8s.example.com", port))
	waitReady(t, fmt.Sprintf("http://127.0.0.1:%d", port))

	// Same data dir, another API port: only the store's lock can refuse it.
	other := t.TempDir()
	second := start(t, other, "serve", "-c", siteFile(t, other, "k8s.example.com", testenv.FreePort(t)), "--data", filepath.Join(dir, "data"))
	if code := second.wait(t, 10*time.Second); code != exitFail {
		t.Errorf("second infrad: got exit %d, want %d", code, exitFail)
	}
	if out := second.output.String(); !strings.Contains(out, "another infrad holds the store") {
		t.Errorf("second infrad said %q, want that another infrad holds the store", out)
	}
	select {
	case <-first.done:
		t.Errorf("the first infrad exited")
	default:
	}
}

func TestSIGHUPReloadsAndRefusesABadFile(t *testing.T) {
	dir := t.TempDir()
	port := testenv.FreePort(t)
	path := siteFile(t, dir, "k8s.example.com", port)
	p := start(t, dir, "serve", "-c", path)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitReady(t, base)
	token := readToken(t, filepath.Join(dir, "data"))
	domain := func() any {
		_, body, err := httpGet(base+"/api/v1/status", token)
		if err != nil {
			return err
		}
		return body["site"].(map[string]any)["domain"]
	}

	if err := os.WriteFile(path, []byte("domain: k8s.example.com\nhosts: [{name: cp01, ip: 10.0.40.999}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGHUP)
	testenv.WaitFor(t, "the refusal in the log", func() bool {
		return strings.Contains(p.output.String(), "site file refused") && strings.Contains(p.output.String(), "hosts[0].ip")
	})
	if got := domain(); got != "k8s.example.com." {
		t.Errorf("after a bad reload: got domain %v, want the running site kept", got)
	}

	siteFile(t, dir, "lab.example.org", port)
	p.cmd.Process.Signal(syscall.SIGHUP)
	testenv.WaitFor(t, "the new domain in /api/v1/status", func() bool { return domain() == "lab.example.org." })
	// That reload moved DNS, NTP and the CA to new ports (siteFile picks fresh ones):
	// the CA restarted itself, and every service is ready again.
	waitReady(t, base)
	if !strings.Contains(p.output.String(), "the CA's settings changed: restarting it") {
		t.Errorf("the CA did not restart for its new ca.listen")
	}

	// api.listen takes a restart: the running API stays, and /readyz names the key.
	siteFile(t, dir, "lab.example.org", testenv.FreePort(t))
	p.cmd.Process.Signal(syscall.SIGHUP)
	testenv.WaitFor(t, "restart_needed in /readyz", func() bool {
		_, body, err := httpGet(base+"/readyz", "")
		if err != nil {
			return false
		}
		keys, _ := body["restart_needed"].([]any)
		return len(keys) == 1 && keys[0] == "api.listen"
	})

	p.cmd.Process.Signal(syscall.SIGINT)
	if code := p.wait(t, 10*time.Second); code != exitOK {
		t.Errorf("SIGINT: got exit %d, want 0", code)
	}
}

func TestServeRefusesABadSiteFile(t *testing.T) {
	dir, _ := filepath.Abs("../../pkg/config/testdata")
	p := start(t, dir, "serve", "-c", "every-mistake.yaml", "--data", t.TempDir())
	if code := p.wait(t, 10*time.Second); code != exitFail {
		t.Errorf("got exit %d, want %d", code, exitFail)
	}
	if out := p.output.String(); !strings.Contains(out, "hosts[4].mac") || !strings.Contains(out, "subnets[1].cidr") {
		t.Errorf("got %q, want every mistake logged", out)
	}
}

// send makes an API request with the token and a JSON body, returning the status and
// the decoded answer.
func send(t *testing.T, method, url, token, body string) (int, any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out any
	if resp.StatusCode != http.StatusNoContent {
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
	}
	return resp.StatusCode, out
}

// hostOwners lists the hosts as "name:owner:role", in name order.
func hostOwners(t *testing.T, base, token string) []string {
	t.Helper()
	_, out := send(t, "GET", base+"/api/v1/hosts", token, "")
	var got []string
	for _, h := range out.([]any) {
		m := h.(map[string]any)
		role, _ := m["role"].(string) // absent when the host has none
		got = append(got, fmt.Sprintf("%s:%s:%s", m["name"], m["owner"], role))
	}
	return got
}

func TestAPIObjectsSurviveRestartAndReloadTouchesOnlyFileObjects(t *testing.T) {
	dir := t.TempDir()
	port := testenv.FreePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	path := filepath.Join(dir, "site.yaml")
	dnsPort, ntpPort, caPort := testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t)
	writeSite := func(hosts string) {
		t.Helper()
		site := fmt.Sprintf("domain: k8s.example.com\ndata_dir: %s\napi: {listen: \"127.0.0.1:%d\"}\ndns: {listen: [\"127.0.0.1:%d\"]}\nntp: {listen: [\"127.0.0.1:%d\"], local_stratum: 10, chronyd: none}\nca: {listen: \"127.0.0.1:%d\"}\n"+
			"subnets:\n  - {name: vm, cidr: 10.0.40.0/24, gateway: 10.0.40.1}\nhosts:\n%s", filepath.Join(dir, "data"), port, dnsPort, ntpPort, caPort, hosts)
		if err := os.WriteFile(path, []byte(site), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeSite("  - {name: cp01, ip: 10.0.40.10, role: control-plane}\n  - {name: cp02, ip: 10.0.40.11}\n")

	p := start(t, dir, "serve", "-c", path)
	waitReady(t, base)
	token := readToken(t, filepath.Join(dir, "data"))
	if code, out := send(t, "POST", base+"/api/v1/hosts", token, `{"name": "w01", "ip": "10.0.40.20", "role": "worker"}`); code != http.StatusCreated {
		t.Fatalf("create w01: got %d %v", code, out)
	}
	if code, out := send(t, "POST", base+"/api/v1/subnets/vm/allocate", token, `{"name": "w02", "role": "worker"}`); code != http.StatusCreated {
		t.Fatalf("allocate w02: got %d %v", code, out)
	}
	if _, err := exec.LookPath("dig"); err == nil || os.Getenv("INFRAD_E2E") == "1" {
		dig := func(args ...string) string {
			out, _ := exec.Command("dig", append([]string{"@127.0.0.1", "-p", fmt.Sprint(dnsPort), "+short"}, args...)...).Output()
			return strings.TrimSpace(string(out))
		}
		// The 201 left after the write path published w01: DNS has it already.
		if a, ptr := dig("w01.k8s.example.com"), dig("-x", "10.0.40.20"); a != "10.0.40.20" || ptr != "w01.k8s.example.com." {
			t.Errorf("right after the 201: got A %q, PTR %q", a, ptr)
		}
		// Again, many times: a write is answered before it is acknowledged.
		for i := range 16 {
			name, ip := fmt.Sprintf("v%02d", i), fmt.Sprintf("10.0.40.%d", 30+i)
			if code, out := send(t, "POST", base+"/api/v1/hosts", token, fmt.Sprintf(`{"name": %q, "ip": %q}`, name, ip)); code != http.StatusCreated {
				t.Fatalf("create %s: got %d %v", name, code, out)
			}
			if a, ptr := dig(name+".k8s.example.com"), dig("-x", ip); a != ip || ptr != name+".k8s.example.com." {
				t.Errorf("%s right after its 201: got A %q, PTR %q", name, a, ptr)
			}
			if code, _ := send(t, "DELETE", base+"/api/v1/hosts/"+name, token, ""); code != http.StatusNoContent {
				t.Fatalf("delete %s: got %d", name, code)
			}
			if a := dig(name + ".k8s.example.com"); a != "" {
				t.Errorf("%s right after its 204: got A %q, want none", name, a)
			}
		}
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t, 10*time.Second); code != exitOK {
		t.Fatalf("SIGTERM: got exit %d", code)
	}

	p = start(t, dir, "serve", "-c", path)
	waitReady(t, base)
	want := []string{"cp01:file:control-plane", "cp02:file:", "w01:api:worker", "w02:api:worker"}
	if got := hostOwners(t, base, token); !slices.Equal(got, want) {
		t.Errorf("after restart: got %v, want %v", got, want)
	}

	// cp01 changes, cp02 leaves, cp03 arrives; w01 and w02 are the API's and stay.
	writeSite("  - {name: cp01, ip: 10.0.40.10, role: etcd}\n  - {name: cp03, ip: 10.0.40.12}\n")
	p.cmd.Process.Signal(syscall.SIGHUP)
	want = []string{"cp01:file:etcd", "cp03:file:", "w01:api:worker", "w02:api:worker"}
	testenv.WaitFor(t, "the reload in /api/v1/hosts", func() bool { return slices.Equal(hostOwners(t, base, token), want) })

	// A file host on w01's address is refused, placed by line, and nothing changes.
	writeSite("  - {name: cp01, ip: 10.0.40.10, role: etcd}\n  - {name: cp04, ip: 10.0.40.20}\n")
	p.cmd.Process.Signal(syscall.SIGHUP)
	testenv.WaitFor(t, "the refusal in the log", func() bool {
		return strings.Contains(p.output.String(), `site.yaml:11: hosts[1].ip: 10.0.40.20 is already the address of host \"w01\"`)
	})
	if got := hostOwners(t, base, token); !slices.Equal(got, want) {
		t.Errorf("after a refused reload: got %v, want %v", got, want)
	}
}

// runBackup runs infrad backup against the infrad at base, whose data directory is
// dir/data, and returns the copy's path.
func runBackup(t *testing.T, dir, base string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "infrad.db")
	b := start(t, dir, "backup", "--api", base, "--data", filepath.Join(dir, "data"), path)
	if code := b.wait(t, 30*time.Second); code != exitOK {
		t.Fatalf("backup: exit %d\n%s", code, b.output.String())
	}
	return path
}

func TestBackupAndRestore(t *testing.T) {
	dir := t.TempDir()
	port := testenv.FreePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	p := start(t, dir, "serve", "-c", siteFile(t, dir, "k8s.example.com", port))
	waitReady(t, base)
	token := readToken(t, filepath.Join(dir, "data"))
	if code, out := send(t, "POST", base+"/api/v1/hosts", token, `{"name": "w01", "ip": "10.0.40.20"}`); code != http.StatusCreated {
		t.Fatalf("create w01: %d %v", code, out)
	}
	copyPath := runBackup(t, dir, base)
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.wait(t, 10*time.Second)

	// Restore into a fresh data directory: the copy is the store.
	other := t.TempDir()
	os.MkdirAll(filepath.Join(other, "data"), 0o700)
	raw, _ := os.ReadFile(copyPath)
	os.WriteFile(filepath.Join(other, "data", "infrad.db"), raw, 0o600)
	port2 := testenv.FreePort(t)
	start(t, other, "serve", "-c", siteFile(t, other, "k8s.example.com", port2))
	base2 := fmt.Sprintf("http://127.0.0.1:%d", port2)
	waitReady(t, base2)
	if code, out := send(t, "GET", base2+"/api/v1/hosts/w01", readToken(t, filepath.Join(other, "data")), ""); code != http.StatusOK {
		t.Errorf("after restore: got %d %v, want the API's host w01", code, out)
	}
}

func TestExportFromARunningInfrad(t *testing.T) {
	dir := t.TempDir()
	port := testenv.FreePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	start(t, dir, "serve", "-c", siteFile(t, dir, "k8s.example.com", port))
	waitReady(t, base)
	for kind, want := range map[string]string{
		"no-proxy":     "10.0.40.0/24,k8s.example.com,.k8s.example.com,.cluster.local,.svc",
		"resolv":       "nameserver 127.0.0.1\nsearch k8s.example.com",
		"cert-manager": "server: https://ca.k8s.example.com:", // the CA's port: the test's is not 443
	} {
		p := start(t, dir, "export", "--api", base, kind)
		if code := p.wait(t, 30*time.Second); code != exitOK || !strings.Contains(p.output.String(), want) {
			t.Errorf("export %s: exit %d\n%s\nwant it to hold %q", kind, code, p.output.String(), want)
		}
	}
	p := start(t, dir, "export", "--api", base, "metallb")
	if code := p.wait(t, 30*time.Second); code != exitFail || !strings.Contains(p.output.String(), "no reserved range is named metallb") {
		t.Errorf("export metallb with no metallb range: exit %d\n%s", code, p.output.String())
	}

	// With the API on loopback (the default) and dns.advertise set, what the nodes
	// are told is the advertised address, not the API's loopback one.
	adv := t.TempDir()
	advPort := testenv.FreePort(t)
	path := siteFile(t, adv, "k8s.example.com", advPort)
	raw, _ := os.ReadFile(path)
	os.WriteFile(path, []byte(strings.Replace(string(raw), "dns: {listen: [", "dns: {advertise: 10.0.40.2, listen: [", 1)), 0o644)
	start(t, adv, "serve", "-c", path)
	advBase := fmt.Sprintf("http://127.0.0.1:%d", advPort)
	waitReady(t, advBase)
	for kind, want := range map[string]string{"resolv": "nameserver 10.0.40.2\n", "chrony": "server 10.0.40.2 ", "cloud-init": "10.0.40.2"} {
		p := start(t, adv, "export", "--api", advBase, kind)
		if code := p.wait(t, 30*time.Second); code != exitOK || !strings.Contains(p.output.String(), want) || strings.Contains(p.output.String(), "127.0.0.1") {
			t.Errorf("export %s with dns.advertise: exit %d\n%s\nwant %q, and no loopback address", kind, code, p.output.String(), want)
		}
	}
}

func TestPlanAndTheChangeBudget(t *testing.T) {
	dir := t.TempDir()
	port := testenv.FreePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	path := siteFile(t, dir, "k8s.example.com", port)
	raw, _ := os.ReadFile(path)
	os.WriteFile(path, append(raw, []byte("  - {name: cp02, ip: 10.0.40.11}\n")...), 0o644)
	p := start(t, dir, "serve", "-c", path)
	waitReady(t, base)
	token := readToken(t, filepath.Join(dir, "data"))

	// The edit: cp01 changes, cp02 leaves, cp03 arrives.
	edited := filepath.Join(t.TempDir(), "site.yaml")
	os.WriteFile(edited, []byte(strings.Replace(string(raw), `mac: "52:54:00:00:40:10"}`, `mac: "52:54:00:00:40:10", role: etcd}`, 1)+
		"  - {name: cp03, ip: 10.0.40.12}\n"), 0o644)
	pl := start(t, dir, "plan", "-c", edited, "--api", base)
	if code := pl.wait(t, 30*time.Second); code != exitOK {
		t.Fatalf("plan: exit %d\n%s", code, pl.output.String())
	}
	for _, want := range []string{`~ host "cp01"`, `+ host "cp03"`, `- host "cp02"`, "1 to add, 1 to change, 1 to remove"} {
		if !strings.Contains(pl.output.String(), want) {
			t.Errorf("plan does not say %q:\n%s", want, pl.output.String())
		}
	}
	if got := hostOwners(t, base, token); len(got) != 2 || !strings.HasPrefix(got[1], "cp02") {
		t.Errorf("plan changed the store: %v", got)
	}
	over := start(t, dir, "plan", "-c", edited, "--api", base, "--max-deletes", "0")
	if code := over.wait(t, 30*time.Second); code != exitFail || !strings.Contains(over.output.String(), "would be refused") {
		t.Errorf("plan over budget: exit %d\n%s", code, over.output.String())
	}

	// A SIGHUP over the file's own budget is refused, and changes nothing.
	budgeted, _ := os.ReadFile(edited)
	os.WriteFile(path, append([]byte("max_deletes: 0\n"), budgeted...), 0o644)
	p.cmd.Process.Signal(syscall.SIGHUP)
	testenv.WaitFor(t, "the refusal", func() bool { return strings.Contains(p.output.String(), "more than max_deletes (0)") })
	if got := hostOwners(t, base, token); len(got) != 2 || !strings.HasPrefix(got[1], "cp02") {
		t.Errorf("a refused reload changed the store: %v", got)
	}
}

func TestValidateWarns(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "site.yaml")
	os.WriteFile(path, []byte("domain: k8s.example.com\ndns: {listen: [\"0.0.0.0:53\"]}\nntp: {listen: [\"0.0.0.0:1123\"]}\ndhcp: {interfaces: [eth0]}\n"), 0o644)
	p := start(t, dir, "validate", "-c", path)
	if code := p.wait(t, 30*time.Second); code != exitOK {
		t.Errorf("got exit %d, want 0: warnings are not mistakes", code)
	}
	for _, want := range []string{"warning: dns.advertise: not set", "warning: ntp.listen: DHCP clients are told NTP is at the DHCP interface's address, port 123"} {
		if !strings.Contains(p.output.String(), want) {
			t.Errorf("validate did not warn %q:\n%s", want, p.output.String())
		}
	}
}

// TestExportForALoadBalancedBGPSite: a homelab whose control-plane endpoint is a
// CNAME to a load balancer's host, and whose MetalLB pool is announced by BGP.
func TestExportForALoadBalancedBGPSite(t *testing.T) {
	dir := t.TempDir()
	api := testenv.FreePort(t)
	site := fmt.Sprintf(`domain: home.example
data_dir: %s
api: {listen: "127.0.0.1:%d"}
dns:
  listen: ["127.0.0.1:%d"]
  records:
    - {name: k8s, type: CNAME, value: haproxy}
ntp: {listen: ["127.0.0.1:%d"], local_stratum: 10, chronyd: none}
ca: {listen: "127.0.0.1:%d"}
kubernetes: {endpoint: "k8s:8443", cluster_name: homelab, dns_domain: cluster.home}
metallb:
  bgp: {my_asn: 64512, peer_asn: 64513, peer_address: 10.4.0.1}
subnets:
  - name: nodes
    cidr: 10.4.0.0/24
    ranges: [{kind: reserved, name: metallb, start: 10.4.0.200, end: 10.4.0.250}]
  - {name: pods, cidr: 10.244.0.0/16, purpose: pods}
hosts:
  - {name: haproxy, ip: 10.4.0.9}
`, filepath.Join(dir, "data"), api, testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t))
	path := filepath.Join(dir, "site.yaml")
	os.WriteFile(path, []byte(site), 0o644)
	base := fmt.Sprintf("http://127.0.0.1:%d", api)
	start(t, dir, "serve", "-c", path)
	waitReady(t, base)
	for kind, wants := range map[string][]string{
		"kubeadm": {"clusterName: homelab\n", "controlPlaneEndpoint: k8s.home.example:8443\n", "dnsDomain: cluster.home\n",
			"podSubnet: 10.244.0.0/16\n", "    - k8s.home.example\n    - haproxy.home.example\n    - 10.4.0.9\n"},
		"metallb": {"kind: BGPPeer", "myASN: 64512", "peerASN: 64513", "peerAddress: 10.4.0.1", "kind: BGPAdvertisement", "    - nodes-metallb\n"},
	} {
		p := start(t, dir, "export", "--api", base, kind)
		if code := p.wait(t, 30*time.Second); code != exitOK {
			t.Errorf("export %s: exit %d\n%s", kind, code, p.output.String())
			continue
		}
		for _, want := range wants {
			if !strings.Contains(p.output.String(), want) {
				t.Errorf("export %s lacks %q:\n%s", kind, want, p.output.String())
			}
		}
	}
}

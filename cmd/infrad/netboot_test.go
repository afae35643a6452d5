package main

// Network boot end to end, with real firmware: QEMU machines (TCG) on a tap on the
// server namespace's bridge, with no DHCP, TFTP or HTTP server but infrad's. A BIOS
// machine (SeaBIOS with Debian's iPXE ROM) and a UEFI one (OVMF's own PXE, no iPXE
// ROM, so it takes ipxe.efi over TFTP) each boot Debian's kernel and an initramfs the
// test makes (busybox, an init that prints a marker with its command line and powers
// off). Then a boot_once host's second boot gets no profile, TFTP's and HTTP's bounds
// are tried from the client namespace, and dhclient shows what PXE firmware is told.

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/infrad/infrad/internal/testenv"
)

const netbootSite = `domain: lab.test
data_dir: %s
` + labServices + `dhcp: {interfaces: [br0], lease_time: 1h}
boot:
  root: %s
  profiles:
    - name: debian
      kernel: debian/vmlinuz
      initrd: [debian/initrd.gz]
      cmdline: "console=ttyS0 quiet panic=-1 infrad.host={{.Name}} infrad.ip={{.IP}}"
    - {name: pi4, pi: pi4, cmdline: "console=serial0,115200 ip={{.IP}} hostname={{.Name}}"}
subnets:
  - name: lab
    cidr: 10.77.0.0/24
    ranges: [{kind: dhcp, start: 10.77.0.100, end: 10.77.0.150}]
hosts:
  - {name: node1, ip: 10.77.0.21, mac: "52:54:00:77:00:21", boot: debian, boot_once: true}
  - {name: node2, ip: 10.77.0.22, mac: "52:54:00:77:00:22", boot: debian}
  - {name: node3, ip: 10.77.0.23, mac: "52:54:00:77:00:23"}
  - {name: pi01, ip: 10.77.0.31, mac: "dc:a6:32:77:00:31", boot: pi4, pi_serial: a1b2c3d4}
`

// The firmware and the machine's software, from Debian's packages.
const (
	ovmfCode    = "/usr/share/OVMF/OVMF_CODE_4M.fd" // ovmf
	ovmfVars    = "/usr/share/OVMF/OVMF_VARS_4M.fd"
	biosLoader  = "/usr/lib/ipxe/undionly.kpxe" // ipxe
	busyboxPath = "/bin/busybox"                // busybox-static
)

func TestNetbootWithRealFirmware(t *testing.T) {
	kernel := needNetboot(t)
	l := newLab(t)
	sh(t, "ip", "-n", l.srv, "tuntap", "add", "tap0", "mode", "tap")
	sh(t, "ip", "-n", l.srv, "link", "set", "tap0", "master", "br0", "up")
	sh(t, "ip", "-n", l.cli, "addr", "add", "10.77.0.50/24", "dev", clientIf)

	dir := t.TempDir()
	root := bootRoot(t, dir, kernel)
	big := bytes.Repeat([]byte("infrad boot "), 700_000) // 8.4 MB: a TFTP transfer long enough to overlap others
	os.WriteFile(filepath.Join(root, "big.img"), big, 0o644)
	os.Symlink("/etc", filepath.Join(root, "escape")) // os.Root refuses to follow it out
	os.MkdirAll(filepath.Join(root, "pi4"), 0o755)
	os.WriteFile(filepath.Join(root, "pi4", "start4.elf"), []byte("the Pi 4's firmware"), 0o644)
	os.WriteFile(filepath.Join(dir, "site.yaml"), fmt.Appendf(nil, netbootSite, filepath.Join(dir, "data"), root), 0o644)
	l.serveIn(t, dir)

	// BIOS: the iPXE ROM asks infrad, which gives it node1's script; the callback
	// before its boot marks node1 booted.
	out := l.qemu(t, dir, "bios-1", "52:54:00:77:00:21", bios, "INFRAD-BOOT-MARKER")
	if !strings.Contains(out, "infrad.host=node1 infrad.ip=10.77.0.21") {
		t.Errorf("the BIOS machine booted without node1's command line:\n%s", tail(out))
	}
	var node1 struct {
		Booted   string `json:"booted"`
		BootOnce bool   `json:"boot_once"`
	}
	l.api(t, dir, "/api/v1/hosts/node1", &node1)
	if node1.Booted == "" {
		t.Errorf("node1 booted once and its callback was called: got no booted time")
	}
	var changes struct {
		Changes []struct {
			Source  string
			Changes []struct{ Kind, Key, Op string }
		}
	}
	l.api(t, dir, "/api/v1/changes?source=callback", &changes)
	if e := changes.Changes; len(e) != 1 || e[0].Source != "boot callback" || len(e[0].Changes) != 1 || e[0].Changes[0].Key != "node1" {
		t.Errorf("the change log of node1's callback: got %+v, want one entry by the boot callback, updating host node1", changes)
	}
	if types := l.eventTypes(t, dir, "52:54:00:77:00:21"); !strings.Contains(types, "SCRIPT") || !strings.Contains(types, "BOOTED") || !strings.Contains(types, "ACK") {
		t.Errorf("the activity view of node1's boot: got %s, want its ACK, SCRIPT and BOOTED", types)
	}
	// Its second boot gets no profile: iPXE has nothing to boot, nor has the BIOS.
	out = l.qemu(t, dir, "bios-2", "52:54:00:77:00:21", bios, noBootableDevice)
	if strings.Contains(out, "INFRAD-BOOT-MARKER") || strings.Contains(out, "/ipxe/") {
		t.Errorf("node1 booted once, yet its second boot was given its profile:\n%s", tail(out))
	}
	// Re-armed through the API, it boots from its profile again (on its next boot).
	token := readToken(t, filepath.Join(dir, "data"))
	sh(t, "ip", "netns", "exec", l.srv, "curl", "-sf", "-X", "DELETE", "-H", "Authorization: Bearer "+token, "http://127.0.0.1:8080/api/v1/hosts/node1/booted")
	node1.Booted, node1.BootOnce = "", false
	l.api(t, dir, "/api/v1/hosts/node1", &node1)
	if node1.Booted != "" || !node1.BootOnce {
		t.Errorf("after DELETE .../booted: got booted %q, boot_once %v; want none, true", node1.Booted, node1.BootOnce)
	}

	// UEFI: OVMF's PXE (no iPXE ROM) takes ipxe.efi over TFTP, which takes node2's script.
	out = l.qemu(t, dir, "uefi", "52:54:00:77:00:22", uefiPXE, "INFRAD-BOOT-MARKER")
	if !strings.Contains(out, "NBP filename is ipxe.efi") || !strings.Contains(out, "infrad.host=node2") {
		t.Errorf("the UEFI machine did not boot node2 through ipxe.efi over TFTP:\n%s", tail(out))
	}
	if types := l.eventTypes(t, dir, "ipxe.efi"); !strings.Contains(types, "TFTP") {
		t.Errorf("the activity view: got %s for ipxe.efi, want its TFTP transfer", types)
	}
	// UEFI HTTP boot: OVMF asks as HTTPClient and fetches ipxe.efi by the URL it is given.
	out = l.qemu(t, dir, "uefi-http", "52:54:00:77:00:22", uefiHTTP, "INFRAD-BOOT-MARKER")
	if !strings.Contains(out, "UEFI HTTPv4") || !strings.Contains(out, "infrad.host=node2") {
		t.Errorf("the UEFI machine did not boot node2 by HTTP boot:\n%s", tail(out))
	}
	if types := l.eventTypes(t, dir, "ipxe.efi"); !strings.Contains(types, "FILE") {
		t.Errorf("the activity view: got %s for ipxe.efi, want its HTTP fetch", types)
	}

	// What PXE firmware is told, seen by dhclient: node2's machine gets the BIOS
	// loader from this box; node3, which boots from no profile, gets no boot options.
	// A Raspberry Pi 4 asks as PXE firmware does, from its own MAC: it is told
	// next-server and option 43's "Raspberry Pi Boot", and no file.
	for _, tc := range []struct{ mac, file, next string }{
		{"52:54:00:77:00:22", "undionly.kpxe", "10.77.0.1"},
		{"52:54:00:77:00:23", "", ""},
		{"dc:a6:32:77:00:31", "", "10.77.0.1"},
	} {
		l.setMAC(t, tc.mac)
		sh(t, "ip", "-n", l.cli, "addr", "add", "10.77.0.50/24", "dev", clientIf)
		cdir := filepath.Join(dir, "pxe-"+tc.mac[len(tc.mac)-2:])
		args := l.dhclientArgs(t, cdir, "pxe", "-d", "-1")
		f, _ := os.OpenFile(filepath.Join(cdir, "dhclient.conf"), os.O_APPEND|os.O_WRONLY, 0)
		f.WriteString("send vendor-class-identifier \"PXEClient:Arch:00000:UNDI:002001\";\nalso request vendor-encapsulated-options;\n")
		f.Close()
		c := &dhclient{dir: cdir, p: startCmd(t, cdir, "ip", args...)}
		testenv.WaitFor(t, tc.mac+" bound", func() bool { return c.got("BOUND") != nil })
		got := c.got("BOUND")
		c.stop()
		if got["new_filename"] != tc.file || got["new_next_server"] != tc.next && tc.next != "" {
			t.Errorf("%s as PXE firmware: got file %q, next-server %q; want %q, %q", tc.mac, got["new_filename"], got["new_next_server"], tc.file, tc.next)
		}
		// "Rasp", in dhclient's hex of option 43.
		if pi := strings.Contains(got["new_vendor_encapsulated_options"], "52:61:73:70"); pi != strings.HasPrefix(tc.mac, "dc:a6:32") {
			t.Errorf("%s: option 43 %q: Raspberry Pi Boot there %v, want it for the Pi only", tc.mac, got["new_vendor_encapsulated_options"], pi)
		}
	}
	sh(t, "ip", "-n", l.cli, "addr", "replace", "10.77.0.50/24", "dev", clientIf)

	// TFTP: what PXE firmware fetches, byte for byte, whatever block size it asks.
	want, _ := os.ReadFile(biosLoader)
	for _, blk := range []string{"512", "1468", "65464"} {
		if got := l.fetch(t, "--tftp-blksize", blk, "tftp://10.77.0.1/undionly.kpxe"); !bytes.Equal(got, want) {
			t.Errorf("tftp undionly.kpxe with blksize %s: got %d bytes, want Debian's %d", blk, len(got), len(want))
		}
	}
	// The Pi's files, below its serial number: its profile's firmware, and its own cmdline.txt.
	if got := string(l.fetch(t, "tftp://10.77.0.1/a1b2c3d4/start4.elf")); got != "the Pi 4's firmware" {
		t.Errorf("the Pi's start4.elf: got %q", got)
	}
	if got := string(l.fetch(t, "tftp://10.77.0.1/a1b2c3d4/cmdline.txt")); got != "console=serial0,115200 ip=10.77.0.31 hostname=pi01\n" {
		t.Errorf("the Pi's cmdline.txt: got %q", got)
	}
	// Nothing outside the boot root, by TFTP or HTTP, by .. or through a symlink.
	for _, url := range []string{"tftp://10.77.0.1/../../../etc/hostname", "tftp://10.77.0.1/escape/hostname",
		"http://10.77.0.1:8081/files/../../../etc/hostname", "http://10.77.0.1:8081/files/escape/hostname"} {
		if out, err := exec.Command("ip", "netns", "exec", l.cli, "curl", "-sf", "--path-as-is", "-m", "10", url).Output(); err == nil {
			t.Errorf("%s: got %q, want a refusal", url, out)
		}
	}
	// HTTP serves ranges of a file (a resumed or parallel download).
	if got := l.fetch(t, "-r", "100-199", "http://10.77.0.1:8081/files/big.img"); !bytes.Equal(got, big[100:200]) {
		t.Errorf("range 100-199 of big.img: got %q", got)
	}
	// A flood of read requests from one client: some are refused, none is served wrong.
	var wg sync.WaitGroup
	var mu sync.Mutex
	served, refused := 0, 0
	for range 16 {
		wg.Go(func() {
			got, err := exec.Command("ip", "netns", "exec", l.cli, "curl", "-sf", "-m", "60", "tftp://10.77.0.1/big.img").Output()
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				refused++
			case bytes.Equal(got, big):
				served++
			default:
				t.Errorf("a flooding client got %d bytes of big.img, not the file", len(got))
			}
		})
	}
	wg.Wait()
	if served == 0 || refused == 0 {
		t.Errorf("16 transfers at once from one client: %d served, %d refused; want some of each (at most 4 at once a client)", served, refused)
	}
	metrics := sh(t, "ip", "netns", "exec", l.srv, "curl", "-sf", "http://127.0.0.1:8080/metrics")
	for _, m := range []string{`infrad_boot_tftp_requests_total{outcome="refused"}`, `infrad_boot_http_requests_total{code="200",kind="script"}`, `infrad_dhcp_netboot_total{firmware="pxe"}`} {
		if !strings.Contains(metrics, m) {
			t.Errorf("/metrics has no %s", m)
		}
	}
}

// needNetboot skips (or, under INFRAD_E2E=1, fails) a test without the tools and
// firmware of a network boot, and returns the kernel the machines boot.
func needNetboot(t *testing.T) string {
	t.Helper()
	testenv.NeedRoot(t, "ip", "qemu-system-x86_64", "curl", "dhclient")
	kernels, _ := filepath.Glob("/boot/vmlinuz-*") // linux-image-amd64
	if len(kernels) == 0 {
		needFiles(t, "/boot/vmlinuz-*")
	}
	needFiles(t, ovmfCode, ovmfVars, biosLoader, busyboxPath, "/usr/lib/ipxe/qemu/pxe-e1000.rom")
	if f, err := elf.Open(busyboxPath); err == nil {
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Fatalf("%s is not statically linked: install busybox-static", busyboxPath)
			}
		}
		f.Close()
	}
	return kernels[len(kernels)-1]
}

// bootRoot makes dir/boot, a boot root with the profile debian's files: kernel, and
// an initramfs whose init prints the marker.
func bootRoot(t *testing.T, dir, kernel string) string {
	t.Helper()
	root := filepath.Join(dir, "boot")
	os.MkdirAll(filepath.Join(root, "debian"), 0o755)
	copyFile(t, kernel, filepath.Join(root, "debian", "vmlinuz"))
	os.WriteFile(filepath.Join(root, "debian", "initrd.gz"), initramfs(t), 0o644)
	return root
}

// noBootableDevice is what SeaBIOS says when no device, the network's included, has
// anything to boot.
const noBootableDevice = "No bootable device"

// qemu boots a machine with mac from the network, its serial console in a file,
// until the console shows want, and returns what it showed.
func (l *lab) qemu(t *testing.T, dir, name, mac string, fw firmware, want string) string {
	t.Helper()
	return qemuIn(t, l.srv, dir, name, mac, fw, want)
}

// firmware is what a QEMU machine boots with.
type firmware int

const (
	bios     firmware = iota // SeaBIOS, an e1000 with Debian's iPXE ROM
	uefiPXE                  // OVMF with a virtio NIC and no option ROM: EDK2's own PXE
	uefiHTTP                 // the same with PXE switched off: EDK2's HTTP boot
)

// qemuIn is qemu in namespace ns, on its tap0.
func qemuIn(t *testing.T, ns, dir, name, mac string, fw firmware, want string) string {
	t.Helper()
	serial := filepath.Join(dir, name+".serial")
	args := []string{"netns", "exec", ns, "qemu-system-x86_64", "-m", "512", "-nographic", "-no-reboot",
		"-serial", "file:" + serial, "-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no"}
	if fw != bios {
		vars := filepath.Join(dir, name+".vars")
		copyFile(t, ovmfVars, vars)
		args = append(args, "-machine", "q35", "-drive", "if=pflash,format=raw,readonly=on,file="+ovmfCode,
			"-drive", "if=pflash,format=raw,file="+vars, "-device", "virtio-net-pci,netdev=n0,romfile=,mac="+mac)
	}
	if fw == uefiHTTP { // OVMF's knobs: no PXE, so its boot manager goes on to HTTP boot
		args = append(args, "-fw_cfg", "name=opt/org.tianocore/IPv4PXESupport,string=n", "-fw_cfg", "name=opt/org.tianocore/IPv6PXESupport,string=n")
	}
	if fw == bios {
		args = append(args, "-device", "e1000,netdev=n0,mac="+mac, "-boot", "n")
	}
	p := startCmd(t, dir, "ip", args...)
	deadline := time.Now().Add(5 * time.Minute) // TCG: OVMF takes a minute or so here
	for {
		ended := false
		select {
		case <-p.done:
			ended = true
		default:
		}
		out, _ := os.ReadFile(serial) // read after looking: a machine may print and power off between the two
		if bytes.Contains(out, []byte(want)) {
			select {
			case <-p.done:
			case <-time.After(10 * time.Second): // a machine that powers off has done so
				p.cmd.Process.Kill()
				<-p.done
			}
			out, _ = os.ReadFile(serial)
			return string(out)
		}
		if ended || want != noBootableDevice && bytes.Contains(out, []byte(noBootableDevice)) {
			t.Fatalf("%s: QEMU ended, or the machine found nothing to boot, without %q on its console (%v):\n%s\n%s", name, want, p.err, tail(string(out)), p.output.String())
		}
		select {
		case <-p.done:
		case <-time.After(time.Second):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %q on the console:\n%s", name, want, tail(string(out)))
		}
	}
}

// fetch runs curl in the client namespace and returns what it got.
func (l *lab) fetch(t *testing.T, args ...string) []byte {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", l.cli, "curl", "-sf", "-m", "30"}, args...)...).Output()
	if err != nil {
		t.Errorf("curl %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// eventTypes lists the types of the activity view's events matching q.
func (l *lab) eventTypes(t *testing.T, dir, q string) string {
	t.Helper()
	var events []struct{ Type string }
	l.api(t, dir, "/api/v1/dhcp/events?q="+q, &events)
	var types []string
	for _, e := range events {
		types = append(types, e.Type)
	}
	b, _ := json.Marshal(types)
	return string(b)
}

func needFiles(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			if os.Getenv("INFRAD_E2E") == "1" {
				t.Fatalf("%s is missing (make deps); INFRAD_E2E=1 needs it", p)
			}
			t.Skipf("%s is missing (make deps); skipping", p)
		}
	}
}

func tail(s string) string {
	if len(s) > 3000 {
		return "…" + s[len(s)-3000:]
	}
	return s
}

// initramfs is a gzip'ed newc cpio archive: busybox and an init that prints the
// marker with the kernel's command line, then powers the machine off.
func initramfs(t *testing.T) []byte {
	t.Helper()
	bb, err := os.ReadFile(busyboxPath)
	if err != nil {
		t.Fatal(err)
	}
	init := "#!/bin/busybox sh\n/bin/busybox mount -t proc proc /proc\n" +
		"/bin/busybox echo \"INFRAD-BOOT-MARKER $(/bin/busybox cat /proc/cmdline)\"\n/bin/busybox poweroff -f\n"
	var a bytes.Buffer
	ino := 0
	add := func(name string, mode int, data []byte) {
		ino++
		fmt.Fprintf(&a, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X", ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name)+1, 0)
		a.WriteString(name + "\x00")
		for a.Len()%4 != 0 {
			a.WriteByte(0)
		}
		a.Write(data)
		for a.Len()%4 != 0 {
			a.WriteByte(0)
		}
	}
	add("bin", 0o40755, nil)
	add("proc", 0o40755, nil)
	add("bin/busybox", 0o100755, bb)
	add("init", 0o100755, []byte(init))
	add("TRAILER!!!", 0, nil)
	var z bytes.Buffer
	gz := gzip.NewWriter(&z)
	gz.Write(a.Bytes())
	gz.Close()
	return z.Bytes()
}

const proxySite = `domain: lab.test
data_dir: %s
` + labServices + `dhcp: {mode: proxy, interfaces: [br0]}
boot:
  root: %s
  profiles:
    - {name: debian, kernel: debian/vmlinuz, initrd: [debian/initrd.gz], cmdline: "console=ttyS0 quiet panic=-1 infrad.host={{.Name}}"}
subnets:
  - {name: lab, cidr: 10.77.0.0/24}
hosts:
  - {name: node2, ip: 10.77.0.22, mac: "52:54:00:77:00:22", boot: debian, boot_once: true}
`

// TestProxyDHCPBesideDnsmasq boots machines on a network whose router keeps DHCP:
// dnsmasq, in a namespace of its own on the bridge, hands out the addresses and
// knows nothing of booting; infrad, as a proxyDHCP server, tells the machine where
// it boots from. A BIOS machine (iPXE asks port 4011) and a UEFI one (EDK2's PXE)
// boot to the marker with dnsmasq's address; the boot_once host's callback comes
// from that address and is taken.
func TestProxyDHCPBesideDnsmasq(t *testing.T) {
	kernel := needNetboot(t)
	testenv.Need(t, "dnsmasq")
	l := newLab(t)
	rtr := l.srv + "-r"
	sh(t, "ip", "netns", "add", rtr)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", rtr).Run() })
	for _, cmd := range [][]string{
		{"ip", "-n", l.srv, "link", "add", "r1", "type", "veth", "peer", "name", "r0", "netns", rtr},
		{"ip", "-n", l.srv, "link", "set", "r1", "master", "br0", "up"},
		{"ip", "-n", rtr, "addr", "add", "10.77.0.254/24", "dev", "r0"},
		{"ip", "-n", rtr, "link", "set", "r0", "up"},
		{"ip", "-n", l.srv, "tuntap", "add", "tap0", "mode", "tap"},
		{"ip", "-n", l.srv, "link", "set", "tap0", "master", "br0", "up"},
	} {
		sh(t, cmd...)
	}
	dir := t.TempDir()
	startCmd(t, dir, "ip", "netns", "exec", rtr, "dnsmasq", "-k", "--conf-file=/dev/null", "--port=0", "--interface=r0", "--bind-interfaces",
		"--dhcp-range=10.77.0.160,10.77.0.170,255.255.255.0,1h", "--dhcp-leasefile="+filepath.Join(dir, "dnsmasq.leases"), "--log-dhcp")
	root := bootRoot(t, dir, kernel)
	os.WriteFile(filepath.Join(dir, "site.yaml"), fmt.Appendf(nil, proxySite, filepath.Join(dir, "data"), root), 0o644)
	l.serveIn(t, dir)

	out := l.qemu(t, dir, "bios", "52:54:00:77:00:22", bios, "INFRAD-BOOT-MARKER")
	if !strings.Contains(out, "infrad.host=node2") || !strings.Contains(out, "10.77.0.16") {
		t.Errorf("the BIOS machine did not boot node2 with an address of dnsmasq's:\n%s", tail(out))
	}
	leases, _ := os.ReadFile(filepath.Join(dir, "dnsmasq.leases"))
	if !strings.Contains(string(leases), "52:54:00:77:00:22") {
		t.Errorf("dnsmasq's leases do not have the machine: %q", leases)
	}
	var node2 struct{ Booted string }
	l.api(t, dir, "/api/v1/hosts/node2", &node2)
	if node2.Booted == "" {
		t.Error("node2's callback, from dnsmasq's address, was not taken")
	}
	var ls []lease
	l.api(t, dir, "/api/v1/dhcp/leases", &ls)
	if len(ls) != 0 {
		t.Errorf("a proxy committed leases: %v", ls)
	}

	token := readToken(t, filepath.Join(dir, "data"))
	sh(t, "ip", "netns", "exec", l.srv, "curl", "-sf", "-X", "DELETE", "-H", "Authorization: Bearer "+token, "http://127.0.0.1:8080/api/v1/hosts/node2/booted")
	out = l.qemu(t, dir, "uefi", "52:54:00:77:00:22", uefiPXE, "INFRAD-BOOT-MARKER")
	if !strings.Contains(out, "NBP filename is ipxe.efi") || !strings.Contains(out, "infrad.host=node2") {
		t.Errorf("the UEFI machine did not boot node2 through ipxe.efi beside dnsmasq:\n%s", tail(out))
	}
}

const relayBootSite = `domain: relay.test
data_dir: %s
` + labServices + `dhcp: {interfaces: [s0], lease_time: 1h}
boot:
  root: %s
  profiles:
    - {name: debian, kernel: debian/vmlinuz, initrd: [debian/initrd.gz], cmdline: "console=ttyS0 quiet panic=-1 infrad.host={{.Name}} infrad.ip={{.IP}}"}
subnets:
  - {name: near, cidr: 10.77.0.0/24, gateway: 10.77.0.254}
  - name: far
    cidr: 10.78.0.0/24
    gateway: 10.78.0.1
    boot: debian
    ranges:
      - {kind: dhcp, start: 10.78.0.100, end: 10.78.0.109}
`

// TestNetbootThroughARelay boots a BIOS machine on a far segment, behind a router
// running ISC's dhcrelay: its DHCP through the relay, its script and files routed to
// infrad. The machine has no host: it boots from its subnet's profile, with the
// address of its lease.
func TestNetbootThroughARelay(t *testing.T) {
	kernel := needNetboot(t)
	testenv.Need(t, "dhcrelay")
	l, rtr := newRelayLab(t)
	for _, cmd := range [][]string{ // the far segment is a bridge in the client namespace, with a tap for QEMU
		{"ip", "-n", l.cli, "link", "add", "br1", "type", "bridge"},
		{"ip", "-n", l.cli, "link", "set", clientIf, "master", "br1"},
		{"ip", "-n", l.cli, "link", "set", "br1", "up"},
		{"ip", "-n", l.cli, "tuntap", "add", "tap0", "mode", "tap"},
		{"ip", "-n", l.cli, "link", "set", "tap0", "master", "br1", "up"},
	} {
		sh(t, cmd...)
	}
	dir := t.TempDir()
	root := bootRoot(t, dir, kernel)
	os.WriteFile(filepath.Join(dir, "site.yaml"), fmt.Appendf(nil, relayBootSite, filepath.Join(dir, "data"), root), 0o644)
	l.serveIn(t, dir)
	startCmd(t, dir, "ip", "netns", "exec", rtr, "dhcrelay", "-4", "-d", "--no-pid", "-id", "r1", "-iu", "r0", "10.77.0.1")

	out := qemuIn(t, l.cli, dir, "far", "52:54:00:78:00:42", bios, "INFRAD-BOOT-MARKER")
	if !strings.Contains(out, "infrad.ip=10.78.0.10") || !strings.Contains(out, "http://10.77.0.1:8081/ipxe/52-54-00-78-00-42") {
		t.Errorf("the far machine did not boot its subnet's profile with its lease's address, through the relay:\n%s", tail(out))
	}
}

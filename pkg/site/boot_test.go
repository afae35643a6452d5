package site

import (
	"testing"
)

func TestBootScripts(t *testing.T) {
	v := BootVars{Name: "node1", FQDN: "node1.lab.test", IP: "10.0.40.21", MAC: "52:54:00:00:40:21",
		BootURL: "http://10.0.40.1:8081", CallbackURL: "http://10.0.40.1:8081/booted/52-54-00-00-40-21"}
	tests := []struct {
		name string
		p    BootProfile
		once bool
		want string
	}{
		{"a kernel, its initrds named on its command line", BootProfile{Kernel: "debian/vmlinuz", Initrd: []string{"debian/initrd.gz", "https://mirror.example/extra.img"},
			Cmdline: "console=ttyS0 hostname={{.Name}} ip={{.IP}}"}, false,
			"#!ipxe\nkernel http://10.0.40.1:8081/files/debian/vmlinuz initrd=initrd0 initrd=initrd1 console=ttyS0 hostname=node1 ip=10.0.40.21\n" +
				"initrd --name initrd0 http://10.0.40.1:8081/files/debian/initrd.gz\ninitrd --name initrd1 https://mirror.example/extra.img\nboot\n"},
		{"booting once calls back once both are loaded", BootProfile{Kernel: "k", Initrd: []string{"i"}}, true,
			"#!ipxe\nkernel http://10.0.40.1:8081/files/k initrd=initrd0\ninitrd --name initrd0 http://10.0.40.1:8081/files/i\n" +
				"imgfetch --name infrad-booted http://10.0.40.1:8081/booted/52-54-00-00-40-21 && imgfree infrad-booted || echo infrad: the boot callback failed\nboot\n"},
		{"an ISO is booted from SAN", BootProfile{URL: "http://mirror.example/rescue.iso"}, false, "#!ipxe\nsanboot http://mirror.example/rescue.iso\n"},
		{"an EFI binary is chained", BootProfile{URL: "http://mirror.example/shell.efi"}, true,
			"#!ipxe\nimgfetch --name infrad-booted http://10.0.40.1:8081/booted/52-54-00-00-40-21 && imgfree infrad-booted || echo infrad: the boot callback failed\nchain http://mirror.example/shell.efi\n"},
		{"a script of the site's own, its callback its own", BootProfile{IPXE: "#!ipxe\necho {{.FQDN}} {{.MAC}}\nshell"}, true, "#!ipxe\necho node1.lab.test 52:54:00:00:40:21\nshell"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.p.Script(v, tc.once)
			if err != nil || got != tc.want {
				t.Errorf("got %q, %v\nwant %q", got, err, tc.want)
			}
		})
	}
}

func TestBootProfileMistakes(t *testing.T) {
	tests := []struct {
		p           BootProfile
		field, want string
	}{
		{BootProfile{Name: "a", Kernel: "/boot/vmlinuz"}, "kernel", `"/boot/vmlinuz" is neither a file below boot.root (a clean relative path, such as debian/vmlinuz) nor an http(s) URL`},
		{BootProfile{Name: "a", Kernel: "k", Initrd: []string{"a/../../b"}}, "initrd[0]", `"a/../../b" is neither a file below boot.root (a clean relative path, such as debian/vmlinuz) nor an http(s) URL`},
		{BootProfile{Name: "a", Kernel: "k", Cmdline: "a\nchain http://evil/"}, "cmdline", "a kernel command line is one line"},
		{BootProfile{Name: "a", Kernel: "k b"}, "kernel", `"k b" is neither a file below boot.root (a clean relative path, such as debian/vmlinuz) nor an http(s) URL`},
		{BootProfile{Name: "a", URL: "ftp://h/x.efi"}, "url", `"ftp://h/x.efi" is not an http or https URL`},
		{BootProfile{Name: "a"}, "kernel", "a profile needs exactly one of kernel, ipxe, url and pi"},
		{BootProfile{Name: "a", IPXE: "#!ipxe\n{{.Nope}}"}, "ipxe", `the template names what a host does not have: template: :2:2: executing "" at <.Nope>: can't evaluate field Nope in type site.BootVars`},
		{BootProfile{Name: "Not_A_Label", IPXE: "#!ipxe"}, "name", `"Not_A_Label" is not a profile name (letters, digits and '-')`},
	}
	for _, tc := range tests {
		errs := tc.p.Check()
		if len(errs) != 1 || errs[0].Field != tc.field || errs[0].Msg != tc.want {
			t.Errorf("%+v: got %v, want %s: %s", tc.p, errs, tc.field, tc.want)
		}
	}
}

package site

import (
	"bytes"
	"fmt"
	"net/url"
	"path"
	"regexp"
	"strings"
	"text/template"
)

// BootProfile is how a machine boots from the network (boot.profiles): a Linux kernel
// with its initrds and command line, or a whole iPXE script, or the URL of an EFI
// binary or a disk image. A host names one (Host.Boot), or its subnet does; the iPXE
// script it gets follows from the profile and the host (Script).
type BootProfile struct {
	Name    string   `yaml:"name" json:"name"`
	Kernel  string   `yaml:"kernel" json:"kernel,omitempty"`   // below the boot root, or an http(s) URL
	Initrd  []string `yaml:"initrd" json:"initrd,omitempty"`   // likewise
	Cmdline string   `yaml:"cmdline" json:"cmdline,omitempty"` // a template of BootVars
	IPXE    string   `yaml:"ipxe" json:"ipxe,omitempty"`       // a whole script ("#!ipxe ..."), a template of BootVars
	URL     string   `yaml:"url" json:"url,omitempty"`         // an EFI binary (chained) or an .iso/.img (sanboot)
	// Pi is a folder below the boot root holding a Raspberry Pi's boot files
	// (start4.elf, kernel8.img, config.txt, ...), which a Pi 4 or 5 fetches over TFTP
	// as <serial>/<file>; its cmdline.txt is Cmdline, made for the host.
	Pi string `yaml:"pi" json:"pi,omitempty"`
}

// Kind says what p boots: "kernel", "ipxe", "url" or "pi" (a valid profile is one).
func (p BootProfile) Kind() string {
	switch {
	case p.IPXE != "":
		return "ipxe"
	case p.URL != "":
		return "url"
	case p.Pi != "":
		return "pi"
	}
	return "kernel"
}

// BootVars are what a profile's command line and script may name ({{.Name}}, ...).
type BootVars struct {
	Name        string // the host's name
	FQDN        string // its fully qualified name, without the final dot
	Domain      string // the site's domain, without the final dot
	IP          string // its address
	MAC         string // its MAC, as 52:54:00:00:40:21
	BootURL     string // the boot endpoint, as http://10.0.40.1:8081 (files are below BootURL/files/)
	CallbackURL string // called once the machine has booted (a boot_once host boots from its profile no more)
}

// Check names every mistake of the profile, by its field.
func (p BootProfile) Check() []FieldError {
	var errs fieldErrors
	if err := checkLabel(p.Name, false); p.Name == "" || err != nil {
		errs.add("name", fmt.Sprintf("%q is not a profile name (letters, digits and '-')", p.Name))
	}
	kinds := 0
	for _, set := range []bool{p.Kernel != "", p.IPXE != "", p.URL != "", p.Pi != ""} {
		if set {
			kinds++
		}
	}
	if kinds != 1 {
		errs.add("kernel", "a profile needs exactly one of kernel, ipxe, url and pi")
	}
	if p.Kernel == "" && p.Pi == "" && (len(p.Initrd) > 0 || p.Cmdline != "") {
		errs.add("initrd", "initrd and cmdline go with a kernel (or cmdline with pi)")
	}
	if p.Pi != "" {
		if err := checkBootPath(p.Pi); err != nil || strings.Contains(p.Pi, "://") {
			errs.add("pi", fmt.Sprintf("%q is not a folder below boot.root (a clean relative path, such as pi4)", p.Pi))
		}
		if len(p.Initrd) > 0 {
			errs.add("initrd", "a Pi's initramfs is named in its config.txt, in the pi folder")
		}
	}
	if p.Kernel != "" {
		if err := checkBootPath(p.Kernel); err != nil {
			errs.add("kernel", err.Error())
		}
	}
	for i, f := range p.Initrd {
		if err := checkBootPath(f); err != nil {
			errs.add(fmt.Sprintf("initrd[%d]", i), err.Error())
		}
	}
	if strings.ContainsAny(p.Cmdline, "\r\n") {
		errs.add("cmdline", "a kernel command line is one line")
	}
	if p.URL != "" {
		if u, err := url.Parse(p.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs.add("url", fmt.Sprintf("%q is not an http or https URL", p.URL))
		}
	}
	if p.IPXE != "" && !strings.HasPrefix(p.IPXE, "#!ipxe") {
		errs.add("ipxe", `an iPXE script starts with "#!ipxe"`)
	}
	for field, text := range map[string]string{"cmdline": p.Cmdline, "ipxe": p.IPXE} {
		if _, err := Render(text, BootVars{}); err != nil {
			errs.add(field, err.Error())
		}
	}
	return errs
}

// checkBootPath accepts a file below the boot root (relative, no "..") or an http(s) URL.
func checkBootPath(f string) error {
	if strings.HasPrefix(f, "http://") || strings.HasPrefix(f, "https://") {
		if u, err := url.Parse(f); err != nil || u.Host == "" {
			return fmt.Errorf("%q is not a URL", f)
		}
		return nil
	}
	if f == "" || path.IsAbs(f) || path.Clean(f) != f || strings.HasPrefix(f, "../") || f == ".." || !bootFile.MatchString(f) {
		return fmt.Errorf("%q is neither a file below boot.root (a clean relative path, such as debian/vmlinuz) nor an http(s) URL", f)
	}
	return nil
}

// bootFile is what a file's path below the boot root may hold: what URLs and iPXE
// scripts carry without quoting.
var bootFile = regexp.MustCompile(`^[A-Za-z0-9._/+-]+$`)

// Render executes a profile's template (its cmdline or its script) with v; a field
// BootVars lacks is an error.
func Render(text string, v BootVars) (string, error) {
	t, err := template.New("").Option("missingkey=error").Parse(text)
	if err != nil {
		return "", fmt.Errorf("not a template: %v", err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, v); err != nil {
		return "", fmt.Errorf("the template names what a host does not have: %v", err)
	}
	return b.String(), nil
}

// Script is the iPXE script that boots a machine from p, as v's host. once: the
// script calls v.CallbackURL once the kernel and its initrds (or the image) are
// loaded, before it boots them.
func (p BootProfile) Script(v BootVars, once bool) (string, error) {
	fileURL := func(f string) string {
		if strings.Contains(f, "://") {
			return f
		}
		return v.BootURL + "/files/" + f
	}
	callback := ""
	if once {
		callback = fmt.Sprintf("imgfetch --name infrad-booted %s && imgfree infrad-booted || echo infrad: the boot callback failed\n", v.CallbackURL)
	}
	var b strings.Builder
	switch p.Kind() {
	case "pi":
		return "", fmt.Errorf("profile %q boots Raspberry Pis over TFTP, which need no iPXE script", p.Name)
	case "ipxe":
		s, err := Render(p.IPXE, v)
		if err != nil {
			return "", err
		}
		return s, nil // the script calls the callback itself, when it means to
	case "url":
		b.WriteString("#!ipxe\n")
		b.WriteString(callback)
		if ext := strings.ToLower(path.Ext(p.URL)); ext == ".iso" || ext == ".img" {
			fmt.Fprintf(&b, "sanboot %s\n", p.URL)
		} else {
			fmt.Fprintf(&b, "chain %s\n", p.URL)
		}
	default:
		cmdline, err := Render(p.Cmdline, v)
		if err != nil {
			return "", err
		}
		// The initrds are named, and named on the command line too: an EFI kernel
		// finds them so (initrd=), a BIOS one is handed them by iPXE.
		var names []string
		for i := range p.Initrd {
			names = append(names, fmt.Sprintf("initrd=initrd%d", i))
		}
		b.WriteString("#!ipxe\n")
		fmt.Fprintf(&b, "kernel %s %s\n", fileURL(p.Kernel), strings.TrimSpace(strings.Join(append(names, cmdline), " ")))
		for i, f := range p.Initrd {
			fmt.Fprintf(&b, "initrd --name initrd%d %s\n", i, fileURL(f))
		}
		b.WriteString(callback)
		b.WriteString("boot\n")
	}
	return b.String(), nil
}

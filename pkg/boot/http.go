package boot

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/infrad/infrad/pkg/ipam"
	"github.com/infrad/infrad/pkg/site"
)

// The boot endpoint's routes, which DHCP's replies and the scripts name.
const (
	ScriptPath = "/ipxe/"   // + MAC: the machine's iPXE script
	FilesPath  = "/files/"  // + a path below the boot root (or an iPXE binary)
	BootedPath = "/booted/" // + MAC: the callback of a boot_once host's script
)

// MACPath is a MAC as the endpoint's paths carry it: 52-54-00-00-40-21, which no
// client escapes (iPXE escapes a colon).
func MACPath(m site.MAC) string { return strings.ReplaceAll(m.String(), ":", "-") }

// macParam is the MAC of a path, in any form site.ParseMAC takes, escaped or not.
func macParam(r *http.Request) (site.MAC, error) {
	raw := chi.URLParam(r, "mac")
	if u, err := url.PathUnescape(raw); err == nil {
		raw = u
	}
	return site.ParseMAC(raw)
}

// handler is the boot endpoint: read-only but for the callback, and without a token.
func (s *Service) handler() http.Handler {
	r := chi.NewRouter()
	r.Get(ScriptPath+"{mac}", s.script)
	r.Get(FilesPath+"*", s.file)
	r.Head(FilesPath+"*", s.file)
	r.Get(BootedPath+"{mac}", s.booted) // iPXE's imgfetch can only GET
	r.Post(BootedPath+"{mac}", s.booted)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "the boot endpoint serves "+ScriptPath+"<mac>, "+FilesPath+"<file> and "+BootedPath+"<mac>")
	})
	return r
}

// machine is what the boot endpoint knows of the machine with a MAC, which asks
// from from: its host, else its lease, else (another server gave it its address: a
// proxyDHCP site) the subnet it asks from; and the profile it boots from ("": none).
type machine struct {
	host    site.Host
	hosted  bool
	ip      netip.Addr
	name    string
	profile string
}

func (s *Service) machine(m *ipam.Model, mac site.MAC, from netip.Addr) (machine, bool) {
	var mc machine
	var sn site.Subnet // the subnet of a machine without a host
	if h, ok := m.HostWithMAC(mac); ok {
		mc = machine{host: h, hosted: true, ip: h.IP, name: h.Name}
	} else if l, ok := m.LeaseOf(mac); ok {
		mc = machine{ip: l.IP, name: l.Hostname}
		sn, _ = m.SubnetOf(l.IP)
	} else if sn, ok = m.SubnetOf(from); ok {
		mc = machine{ip: from}
	} else {
		return machine{}, false
	}
	mc.profile = s.BootsFrom(m, mac, sn)
	return mc, true
}

// Profile is the site's profile of that name.
func (s *Service) Profile(name string) (site.BootProfile, bool) {
	for _, p := range s.cfg.Load().Profiles {
		if p.Name == name {
			return p, true
		}
	}
	return site.BootProfile{}, false
}

// BootsFrom is the profile the machine with mac boots from, "" for none: its host's
// (Host.BootProfile, on the host's subnet), else that of sn, the subnet the machine
// is on. The one rule: DHCP asks it before it points a client here, the endpoint
// before it serves a script, TFTP before it serves a Pi's folder.
func (s *Service) BootsFrom(m *ipam.Model, mac site.MAC, sn site.Subnet) string {
	if !s.Serving() {
		return ""
	}
	if h, ok := m.HostWithMAC(mac); ok {
		return hostBootsFrom(m, h, sn)
	}
	return sn.Boot
}

// hostBootsFrom is the profile host h boots from: its own, else its subnet's (sn's
// when its address is in none).
func hostBootsFrom(m *ipam.Model, h site.Host, sn site.Subnet) string {
	if hsn, ok := m.SubnetOf(h.IP); ok {
		sn = hsn
	}
	return h.BootProfile(sn)
}

func (s *Service) script(w http.ResponseWriter, r *http.Request) {
	mac, err := macParam(r)
	if err != nil {
		s.fail(w, "script", http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	mc, ok := s.machine(s.ipam.Model(), mac, remoteAddr(r))
	if !ok || mc.profile == "" {
		s.fail(w, "script", http.StatusNotFound, "not_found", fmt.Sprintf("%s boots from no profile: boot from disk", mac))
		return
	}
	p, ok := s.Profile(mc.profile)
	if !ok {
		s.fail(w, "script", http.StatusNotFound, "not_found", fmt.Sprintf("%s names profile %q, which the site does not have", mac, mc.profile))
		return
	}
	v := s.vars(mc.name, mc.ip, mac, localAddr(r))
	text, err := p.Script(v, mc.hosted && mc.host.BootOnce)
	if err != nil {
		s.fail(w, "script", http.StatusInternalServerError, "internal", err.Error())
		return
	}
	s.mu.Lock()
	if len(s.fetched) >= maxFetched {
		clear(s.fetched)
	}
	s.fetched[mac] = remoteAddr(r)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write([]byte(text))
	s.metrics.http.WithLabelValues("script", "200").Inc()
	s.note(Event{Step: "script", Client: remoteAddr(r), MAC: mac, File: mc.profile})
}

// file streams a file below the boot root, with ranges (http.ServeContent).
func (s *Service) file(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "*")
	f, err := s.open(name)
	if err != nil {
		s.fail(w, "file", http.StatusNotFound, "not_found", fmt.Sprintf("no file %q below the boot root", name))
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		s.fail(w, "file", http.StatusInternalServerError, "internal", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, "", fi.ModTime(), f)
	s.metrics.http.WithLabelValues("file", "200").Inc()
	if r.Method == http.MethodGet && r.Header.Get("Range") == "" {
		s.note(Event{Step: "file", Client: remoteAddr(r), File: name})
	}
}

// booted is the callback of a boot_once host's script: from now on the host boots
// from no profile (ipam.BootHost), until it is armed again. Only the machine itself
// may say so: the request comes from its host's address, its lease's, or the address
// its script was fetched from.
func (s *Service) booted(w http.ResponseWriter, r *http.Request) {
	mac, err := macParam(r)
	if err != nil {
		s.fail(w, "booted", http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	m := s.ipam.Model()
	h, ok := m.HostWithMAC(mac)
	if !ok {
		s.fail(w, "booted", http.StatusNotFound, "not_found", fmt.Sprintf("no host has MAC %s", mac))
		return
	}
	if !h.BootOnce {
		s.fail(w, "booted", http.StatusConflict, "conflict", fmt.Sprintf("host %q does not boot once (boot_once): nothing to record", h.Name))
		return
	}
	from := remoteAddr(r)
	l, leased := m.LeaseOf(mac)
	s.mu.Lock()
	fetched, ok := s.fetched[mac]
	s.mu.Unlock()
	if from != h.IP && !(leased && from == l.IP) && !(ok && from == fetched) {
		s.fail(w, "booted", http.StatusForbidden, "forbidden", fmt.Sprintf("only host %q itself (%s) may say it has booted, not %s", h.Name, h.IP, from))
		return
	}
	res, err := s.ipam.Apply(r.Context(), ipam.BootHost{Stamp: ipam.Stamp{At: time.Now(), By: "boot callback"}, Name: h.Name, Booted: true})
	if err != nil {
		status, code := http.StatusServiceUnavailable, "unavailable"
		if errors.Is(err, ipam.ErrNotFound) {
			status, code = http.StatusNotFound, "not_found"
		}
		s.fail(w, "booted", status, code, err.Error())
		return
	}
	h = res.(site.Host)
	writeJSON(w, http.StatusOK, map[string]any{"host": h.Name, "booted": h.Booted})
	s.metrics.http.WithLabelValues("booted", "200").Inc()
	s.note(Event{Step: "booted", Client: from, MAC: mac, File: h.Name})
}

// vars are what a profile's templates may name, for the machine called name (""
// for a lease without one) at ip with mac, which reached this box at local.
func (s *Service) vars(name string, ip netip.Addr, mac site.MAC, local netip.Addr) site.BootVars {
	base := s.Endpoint(local)
	domain := *s.domain.Load()
	v := site.BootVars{Name: name, IP: ip.String(), MAC: mac.String(), Domain: strings.TrimSuffix(string(domain), "."),
		BootURL: base, CallbackURL: base + BootedPath + MACPath(mac)}
	if name != "" {
		v.FQDN = strings.TrimSuffix(string(site.HostFQDN(name, domain)), ".")
	}
	return v
}

func (s *Service) fail(w http.ResponseWriter, kind string, status int, code, msg string) {
	s.metrics.http.WithLabelValues(kind, strconv.Itoa(status)).Inc()
	writeError(w, status, code, msg)
}

// writeError answers as the API does: {"error":{"code","message"}}.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func remoteAddr(r *http.Request) netip.Addr {
	ap, _ := netip.ParseAddrPort(r.RemoteAddr)
	return ap.Addr().Unmap()
}

// localAddr is the address the request came in on.
func localAddr(r *http.Request) netip.Addr {
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if ap, err := netip.ParseAddrPort(a.String()); err == nil {
			return ap.Addr().Unmap()
		}
	}
	return netip.Addr{}
}

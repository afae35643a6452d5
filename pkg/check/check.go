// Package check is the preflight a node runs before kubeadm (infrad check): what the
// node will ask of infrad, asked as the node's own clients will ask it. The root CA
// from the API; its own forward and reverse names; its clock against infrad's NTP;
// the ACME directory over the site's root; forwarding of a name outside the site;
// when the site has them, a signed answer that validates and NTS-authenticated time;
// and the same of each other serving node of a cluster.
package check

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/facebook/time/ntp/ntske"
	"github.com/facebook/time/ntp/protocol"
	"github.com/facebook/time/ntp/protocol/nts"
	"github.com/miekg/dns"

	"github.com/infrad/infrad/pkg/ca"
	"github.com/infrad/infrad/pkg/site"
)

// Options say where infrad answers and who this node is.
type Options struct {
	Server  string // infrad's address
	DNSPort int
	NTPPort int
	NTSPort int
	API     string // for the root certificate: http://SERVER:8080 when empty
	CAPort  int    // the ACME port
	Name    string // this node's name, as in the site
	Domain  string // the site's domain; empty: from the CA's name
	Outside string // a name outside the site, which forwarding must resolve
}

// Result is one check's outcome: Err nil and Skipped false is a pass.
type Result struct {
	What    string
	Detail  string
	Err     error
	Skipped bool // not for this site (Detail says why); neither passed nor failed
}

// Run makes every check in turn and hands each result to report.
func Run(opts Options, report func(Result)) {
	api := opts.API
	if api == "" { // (the API's port when it listens off loopback)
		api = fmt.Sprintf("http://%s:8080", opts.Server)
	}
	resolver := net.JoinHostPort(opts.Server, fmt.Sprint(opts.DNSPort))
	result := func(what, detail string, err error) { report(Result{What: what, Detail: detail, Err: err}) }
	skip := func(what, why string) { report(Result{What: what, Detail: why, Skipped: true}) }

	root, err := fetchRoot(api)
	from := api
	if err != nil {
		// The API listens on loopback unless told otherwise, out of a node's reach:
		// the CA's listener serves the root too.
		ca := net.JoinHostPort(opts.Server, fmt.Sprint(opts.CAPort))
		if root, err = caRoot(ca); err == nil {
			from = "https://" + ca + "/roots.pem"
		}
	}
	var caName string
	if err == nil {
		sum := sha256.Sum256(root.Raw)
		caName = strings.TrimSuffix(root.Subject.CommonName, " Root CA")
		result("root CA", "sha256 "+hex.EncodeToString(sum[:])+" from "+from, nil)
	} else {
		result("root CA", "", err)
	}
	domain := opts.Domain
	if domain == "" && caName != "" {
		_, domain, _ = strings.Cut(caName, ".")
	}
	fqdn := dns.Fqdn(opts.Name + "." + domain)
	addr, err := lookup(resolver, fqdn, dns.TypeA)
	result("forward name", fmt.Sprintf("%s is %s", fqdn, addr), err)
	if err == nil {
		rev, _ := dns.ReverseAddr(addr)
		back, err := lookup(resolver, rev, dns.TypePTR)
		if err == nil && !strings.EqualFold(back, fqdn) {
			err = fmt.Errorf("%s points back to %s, not %s", addr, back, fqdn)
		}
		result("reverse name", fmt.Sprintf("%s is %s", addr, back), err)
	} else {
		result("reverse name", "", errors.New("no forward name to check"))
	}
	offset, err := clockOffset(net.JoinHostPort(opts.Server, fmt.Sprint(opts.NTPPort)))
	if err == nil && (offset > 100*time.Millisecond || offset < -100*time.Millisecond) {
		err = fmt.Errorf("this clock is %s off infrad's, more than 100ms: etcd and TLS need better", offset)
	}
	result("clock", fmt.Sprintf("%s off infrad's", offset), err)
	if root != nil {
		err = acmeDirectory(root, caName, net.JoinHostPort(opts.Server, fmt.Sprint(opts.CAPort)))
		result("ACME directory", ca.DirectoryURL(site.Name(caName), uint16(opts.CAPort))+" answers", err)
	} else {
		result("ACME directory", "", errors.New("no root to trust it with"))
	}
	out, err := lookup(resolver, dns.Fqdn(opts.Outside), dns.TypeA)
	result("forwarding", fmt.Sprintf("%s is %s", opts.Outside, out), err)
	// Trust: when the site signs its zones and serves NTS, this node checks what its
	// validating resolver and its chronyd will.
	if signed, err := signedName(resolver, dns.Fqdn(domain), fqdn); signed == "" && err == nil {
		skip("signed name", "the zones are not signed (dns.dnssec)")
	} else {
		result("signed name", signed, err)
	}
	if root != nil {
		offset, err := ntsOffset(root, opts.Server, net.JoinHostPort(opts.Server, fmt.Sprint(opts.NTSPort)), opts.NTPPort)
		if errors.Is(err, syscall.ECONNREFUSED) {
			skip("NTS", fmt.Sprintf("nothing listens on port %d (ntp.nts)", opts.NTSPort))
		} else {
			result("NTS", fmt.Sprintf("authenticated time, %s off infrad's", offset), err)
		}
	}
	// The site's other name servers are its cluster's other serving nodes: this node
	// must get its name and its time from each of them too.
	for _, ns := range nameServers(resolver, domain, opts.Server) {
		a, err := lookup(net.JoinHostPort(ns.addr, fmt.Sprint(opts.DNSPort)), fqdn, dns.TypeA)
		result("name from "+ns.name, fmt.Sprintf("%s is %s at %s", fqdn, a, ns.addr), err)
		offset, err := clockOffset(net.JoinHostPort(ns.addr, fmt.Sprint(opts.NTPPort)))
		if err == nil && (offset > 100*time.Millisecond || offset < -100*time.Millisecond) {
			err = fmt.Errorf("this clock is %s off %s's, more than 100ms", offset, ns.name)
		}
		result("clock of "+ns.name, fmt.Sprintf("%s off %s's", offset, ns.addr), err)
	}
}

type nameServer struct{ name, addr string }

// nameServers are the domain's name servers other than server, with their
// addresses, as infrad's DNS at resolver gives them.
func nameServers(resolver, domain, server string) []nameServer {
	if domain == "" {
		return nil
	}
	m := new(dns.Msg).SetQuestion(dns.Fqdn(domain), dns.TypeNS)
	r, _, err := (&dns.Client{Timeout: 3 * time.Second}).Exchange(m, resolver)
	if err != nil || r.Rcode != dns.RcodeSuccess {
		return nil
	}
	var out []nameServer
	for _, rr := range r.Answer {
		ns, ok := rr.(*dns.NS)
		if !ok {
			continue
		}
		addr, err := lookup(resolver, ns.Ns, dns.TypeA)
		if err == nil && addr != server {
			out = append(out, nameServer{name: strings.TrimSuffix(ns.Ns, "."), addr: addr})
		}
	}
	return out
}

func fetchRoot(api string) (*x509.Certificate, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(strings.TrimSuffix(api, "/") + "/api/v1/ca/root.pem")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	block, _ := pem.Decode(raw)
	if resp.StatusCode != http.StatusOK || block == nil {
		return nil, fmt.Errorf("no root certificate at %s (%s)", api, resp.Status)
	}
	return x509.ParseCertificate(block.Bytes)
}

// caRoot fetches the root from the CA's listener at addr (/roots.pem). Nothing vouches
// for it yet, so it is taken only if the listener's own certificate chains to it: a
// root the listener does not hold is refused. The operator compares its fingerprint
// with the one infrad shows (its UI, infrad export cloud-init).
func caRoot(addr string) (*x509.Certificate, error) {
	var chain []*x509.Certificate
	tr := &http.Transport{TLSClientConfig: &tls.Config{
		InsecureSkipVerify: true, // checked below, against the root it serves
		VerifyConnection: func(cs tls.ConnectionState) error {
			chain = cs.PeerCertificates
			return nil
		},
	}}
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + addr + "/roots.pem")
	if err != nil {
		return nil, fmt.Errorf("neither the API nor the CA at %s gives the root: %w", addr, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	block, _ := pem.Decode(raw)
	if resp.StatusCode != http.StatusOK || block == nil || len(chain) == 0 {
		return nil, fmt.Errorf("no root certificate at https://%s/roots.pem (%s)", addr, resp.Status)
	}
	root, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, err
	}
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(root)
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter}); err != nil {
		return nil, fmt.Errorf("the CA at %s serves a root its own certificate does not chain to: %w", addr, err)
	}
	return root, nil
}

// lookup asks infrad's DNS for name and returns the first answer's data.
func lookup(server, name string, qtype uint16) (string, error) {
	m := new(dns.Msg).SetQuestion(name, qtype)
	m.RecursionDesired = true
	r, _, err := (&dns.Client{Timeout: 3 * time.Second}).Exchange(m, server)
	if err != nil {
		return "", err
	}
	if r.Rcode != dns.RcodeSuccess {
		return "", fmt.Errorf("%s: %s", name, dns.RcodeToString[r.Rcode])
	}
	for _, rr := range r.Answer {
		switch rr := rr.(type) {
		case *dns.A:
			if qtype == dns.TypeA {
				return rr.A.String(), nil
			}
		case *dns.PTR:
			return rr.Ptr, nil
		}
	}
	return "", fmt.Errorf("%s: no %s record", name, dns.TypeToString[qtype])
}

func clockOffset(server string) (time.Duration, error) {
	conn, err := net.DialTimeout("udp", server, 3*time.Second)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(3 * time.Second))
	t1 := time.Now()
	req := protocol.Packet{Settings: 4<<3 | 3}
	req.TxTimeSec, req.TxTimeFrac = protocol.Time(t1)
	b, _ := req.Bytes()
	conn.Write(b)
	buf := make([]byte, 1024)
	n, err := conn.Read(buf)
	t4 := time.Now()
	if err != nil {
		return 0, err
	}
	resp, err := protocol.BytesToPacket(buf[:n])
	if err != nil {
		return 0, err
	}
	if resp.Settings>>6 == 3 {
		return 0, errors.New("infrad says its own time is not synchronised (leap 3): see GET /api/v1/ntp")
	}
	rx, tx := protocol.Unix(resp.RxTimeSec, resp.RxTimeFrac), protocol.Unix(resp.TxTimeSec, resp.TxTimeFrac)
	return time.Duration(protocol.Offset(t1, rx, tx, t4)), nil
}

// signedName checks that fqdn's address comes signed by a key of zone's DNSKEY set,
// which one of its KSKs signs, and that the signatures hold now: what a validating
// resolver that trusts the zone's DS checks. It returns "" and no error when the zone
// has no DNSKEY set (it is not signed).
func signedName(resolver, zone, fqdn string) (string, error) {
	ask := func(name string, qtype uint16) (rrs []dns.RR, sig *dns.RRSIG, err error) {
		m := new(dns.Msg).SetQuestion(name, qtype)
		m.SetEdns0(1232, true)
		r, _, err := (&dns.Client{Net: "tcp", Timeout: 3 * time.Second}).Exchange(m, resolver)
		if err != nil {
			return nil, nil, err
		}
		for _, rr := range r.Answer {
			if s, ok := rr.(*dns.RRSIG); ok && s.TypeCovered == qtype {
				sig = s
			} else if rr.Header().Rrtype == qtype {
				rrs = append(rrs, rr)
			}
		}
		return rrs, sig, nil
	}
	keys, keySig, err := ask(zone, dns.TypeDNSKEY)
	if err != nil || len(keys) == 0 {
		return "", err
	}
	byTag := map[uint16]*dns.DNSKEY{}
	for _, rr := range keys {
		k := rr.(*dns.DNSKEY)
		byTag[k.KeyTag()] = k
	}
	now := time.Now()
	verify := func(what string, rrs []dns.RR, sig *dns.RRSIG, ksk bool) error {
		if sig == nil {
			return fmt.Errorf("%s is not signed", what)
		}
		k := byTag[sig.KeyTag]
		switch {
		case k == nil:
			return fmt.Errorf("%s is signed by key %d, which %s's DNSKEY set lacks", what, sig.KeyTag, zone)
		case ksk && k.Flags&dns.SEP == 0:
			return fmt.Errorf("%s is signed by key %d, not a KSK", what, sig.KeyTag)
		case !sig.ValidityPeriod(now):
			return fmt.Errorf("%s's signature is not valid now (this clock, or infrad's signing, is off)", what)
		}
		if err := sig.Verify(k, rrs); err != nil {
			return fmt.Errorf("%s's signature does not verify: %w", what, err)
		}
		return nil
	}
	if err := verify(zone+" DNSKEY", keys, keySig, true); err != nil {
		return "", err
	}
	addrs, sig, err := ask(fqdn, dns.TypeA)
	if err == nil && len(addrs) == 0 {
		err = fmt.Errorf("%s has no address", fqdn)
	}
	if err == nil {
		err = verify(fqdn+" A", addrs, sig, false)
	}
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s A signed by key %d, valid until %s", fqdn, sig.KeyTag, time.Unix(int64(sig.Expiration), 0).UTC().Format(time.DateOnly)), nil
}

// ntsOffset runs NTS-KE with infrad at keAddr, trusting only root and expecting a
// certificate for name, then sends one NTS-protected request to the NTP port it
// names (ntpPort when it names none) and returns the clock's offset from the
// authenticated reply.
func ntsOffset(root *x509.Certificate, name, keAddr string, ntpPort int) (time.Duration, error) {
	pool := x509.NewCertPool()
	pool.AddCert(root)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := (&ntske.Client{SupportedAEAD: []uint16{uint16(protocol.AEADAES128GCMSIV)}}).Handshake(ctx, keAddr, &tls.Config{RootCAs: pool, ServerName: name})
	if err != nil {
		return 0, err
	}
	if res.NTPPort != 0 {
		ntpPort = int(res.NTPPort)
	}
	host, _, _ := net.SplitHostPort(keAddr)
	conn, err := net.DialTimeout("udp", net.JoinHostPort(host, fmt.Sprint(ntpPort)), 3*time.Second)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(3 * time.Second))
	uid := make([]byte, nts.MinUniqueIdentifierLen)
	rand.Read(uid)
	t1 := time.Now()
	req := protocol.Packet{Settings: 4<<3 | 3}
	req.TxTimeSec, req.TxTimeFrac = protocol.Time(t1)
	b, err := nts.BuildNTSRequest(req, nts.RequestParams{AEAD: protocol.AEADAlgorithm(res.AEAD), C2S: res.C2S, Cookie: res.Cookies[0], UniqueID: uid})
	if err != nil {
		return 0, err
	}
	conn.Write(b)
	buf := make([]byte, 2048)
	n, err := conn.Read(buf)
	t4 := time.Now()
	if err != nil {
		return 0, fmt.Errorf("no NTS reply from %s: %w", conn.RemoteAddr(), err)
	}
	resp, _, err := nts.VerifyNTSResponse(buf[:n], protocol.AEADAlgorithm(res.AEAD), res.S2C, uid)
	if err != nil {
		return 0, err
	}
	rx, tx := protocol.Unix(resp.RxTimeSec, resp.RxTimeFrac), protocol.Unix(resp.TxTimeSec, resp.TxTimeFrac)
	return time.Duration(protocol.Offset(t1, rx, tx, t4)), nil
}

// acmeDirectory fetches the directory from addr, trusting only root and expecting a
// certificate for caName.
func acmeDirectory(root *x509.Certificate, caName, addr string) error {
	pool := x509.NewCertPool()
	pool.AddCert(root)
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: caName},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
		},
	}
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + caName + "/acme/acme/directory")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the directory answers %s", resp.Status)
	}
	return nil
}

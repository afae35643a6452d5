package importer

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/infrad/infrad/pkg/site"
)

// NetBox's objects, as its REST API gives them (the fields an import reads).
type (
	nbPrefix struct {
		Prefix      string   `json:"prefix"`
		Status      nbChoice `json:"status"`
		Description string   `json:"description"`
		VLAN        *struct {
			Name string `json:"name"`
		} `json:"vlan"`
	}
	nbRange struct {
		Start       string   `json:"start_address"`
		End         string   `json:"end_address"`
		Status      nbChoice `json:"status"`
		Description string   `json:"description"`
		Role        *struct {
			Slug string `json:"slug"`
		} `json:"role"`
	}
	nbAddress struct {
		Address        string   `json:"address"`
		DNSName        string   `json:"dns_name"`
		Status         nbChoice `json:"status"`
		Role           nbChoice `json:"role"`
		Description    string   `json:"description"`
		AssignedType   string   `json:"assigned_object_type"`
		AssignedObject *struct {
			ID     int    `json:"id"`
			Name   string `json:"name"`
			Device *struct {
				Name string `json:"name"`
			} `json:"device"`
		} `json:"assigned_object"`
	}
	nbInterface struct {
		ID         int    `json:"id"`
		MACAddress string `json:"mac_address"` // NetBox 4.1 and before
		PrimaryMAC *struct {
			MACAddress string `json:"mac_address"`
		} `json:"primary_mac_address"` // NetBox 4.2 on
	}
	// nbChoice is a choice field: {"value": "active", "label": "Active"} from the API,
	// the label alone in a CSV.
	nbChoice struct {
		Value string `json:"value"`
	}
)

func (i nbInterface) mac() string {
	if i.PrimaryMAC != nil && i.PrimaryMAC.MACAddress != "" {
		return i.PrimaryMAC.MACAddress
	}
	return i.MACAddress
}

// netbox reads NetBox's prefixes, IP ranges and IP addresses: from its REST API (a
// source that is an http(s) URL, with Options.Token) or from its CSV exports.
func (b *builder) netbox(ctx context.Context, sources []string) error {
	var n netboxData
	for _, src := range sources {
		var err error
		if strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://") {
			err = b.netboxAPI(ctx, src, &n)
		} else {
			err = b.netboxCSV(src, &n)
		}
		if err != nil {
			return err
		}
	}
	b.netboxObjects(&n)
	return nil
}

type netboxData struct {
	prefixes   []item[nbPrefix]
	ranges     []item[nbRange]
	addresses  []item[nbAddress]
	interfaces map[int]nbInterface
	macs       map[string]string // by address, from a CSV with a MAC column
}

// netboxAPI reads the objects from NetBox's REST API at base, every page.
func (b *builder) netboxAPI(ctx context.Context, base string, n *netboxData) error {
	client := b.opts.HTTP
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	base = strings.TrimSuffix(base, "/")
	base = strings.TrimSuffix(base, "/api")
	get := func(path string, each func(string, json.RawMessage, int) error) error {
		url := base + path + "?limit=1000"
		for i := 0; url != ""; {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				return err
			}
			req.Header.Set("Accept", "application/json")
			if b.opts.Token != "" {
				req.Header.Set("Authorization", "Token "+b.opts.Token)
			}
			resp, err := client.Do(req)
			if err != nil {
				return fmt.Errorf("netbox: %w", err)
			}
			body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
			resp.Body.Close()
			if err != nil {
				return fmt.Errorf("netbox: %s: %w", url, err)
			}
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("netbox: %s: %s: %s", url, resp.Status, bytes.TrimSpace(body[:min(len(body), 200)]))
			}
			var page struct {
				Next    *string           `json:"next"`
				Results []json.RawMessage `json:"results"`
			}
			if err := json.Unmarshal(body, &page); err != nil {
				return fmt.Errorf("netbox: %s: not NetBox's list of objects: %w", url, err)
			}
			for _, r := range page.Results {
				i++
				if err := each(path, r, i); err != nil {
					return fmt.Errorf("netbox: %s: %w", path, err)
				}
			}
			url = ""
			if page.Next != nil {
				url = *page.Next
			}
		}
		return nil
	}
	if err := get("/api/ipam/prefixes/", collect(&n.prefixes, base)); err != nil {
		return err
	}
	if err := get("/api/ipam/ip-ranges/", collect(&n.ranges, base)); err != nil {
		return err
	}
	if err := get("/api/ipam/ip-addresses/", collect(&n.addresses, base)); err != nil {
		return err
	}
	var ifaces []item[nbInterface]
	if err := get("/api/dcim/interfaces/", collect(&ifaces, base)); err != nil {
		return err
	}
	n.interfaces = map[int]nbInterface{}
	for _, i := range ifaces {
		n.interfaces[i.v.ID] = i.v
	}
	return nil
}

// collect decodes each object of a list into list, placed at the list's URL and its
// place in it.
func collect[T any](list *[]item[T], base string) func(string, json.RawMessage, int) error {
	return func(path string, r json.RawMessage, i int) error {
		var v T
		if err := json.Unmarshal(r, &v); err != nil {
			return err
		}
		*list = append(*list, item[T]{Pos{base + path, i}, v})
		return nil
	}
}

// netboxCSV reads one of NetBox's CSV exports, told by its header: prefixes (a
// Prefix column), IP ranges (Start address) or IP addresses (Address, IP Address).
// Both the table's export (the columns' labels) and the all-data export (the fields'
// names) are read.
func (b *builder) netboxCSV(path string, n *netboxData) error {
	data, err := readSource(path)
	if err != nil {
		return err
	}
	r := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))))
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if len(rows) == 0 {
		return fmt.Errorf("%s: empty", path)
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[strings.ReplaceAll(strings.ToLower(strings.TrimSpace(h)), " ", "_")] = i
	}
	field := func(row []string, names ...string) string {
		for _, name := range names {
			if i, ok := col[name]; ok && i < len(row) {
				return strings.TrimSpace(row[i])
			}
		}
		return ""
	}
	choice := func(s string) nbChoice { return nbChoice{Value: strings.ToLower(strings.ReplaceAll(s, " ", "-"))} }
	_, prefixes := col["prefix"]
	_, ranges := col["start_address"]
	_, ip := col["ip_address"]
	_, addr := col["address"]
	if !prefixes && !ranges && !ip && !addr {
		return fmt.Errorf("%s:1: not a NetBox export of prefixes, IP ranges or IP addresses (no Prefix, Start address or Address column)", path)
	}
	if n.macs == nil {
		n.macs = map[string]string{}
	}
	noted := false
	for i, row := range rows[1:] {
		p := Pos{path, i + 2}
		switch {
		case prefixes:
			v := nbPrefix{Prefix: field(row, "prefix"), Status: choice(field(row, "status")), Description: field(row, "description")}
			if vl := field(row, "vlan"); vl != "" {
				v.VLAN = &struct {
					Name string `json:"name"`
				}{vl}
			}
			n.prefixes = append(n.prefixes, item[nbPrefix]{p, v})
		case ranges:
			v := nbRange{Start: field(row, "start_address"), End: field(row, "end_address"), Status: choice(field(row, "status")), Description: field(row, "description")}
			if role := field(row, "role"); role != "" {
				v.Role = &struct {
					Slug string `json:"slug"`
				}{choice(role).Value}
			}
			n.ranges = append(n.ranges, item[nbRange]{p, v})
		default:
			v := nbAddress{Address: field(row, "ip_address", "address"), DNSName: field(row, "dns_name"), Status: choice(field(row, "status")),
				Role: choice(field(row, "role")), Description: field(row, "description")}
			if mac := field(row, "mac_address", "mac"); mac != "" {
				n.macs[v.Address] = mac
			} else if field(row, "assigned_object_id", "interface", "assigned") != "" && !noted {
				b.notef(p, "the export names the addresses' interfaces but not their MACs: hosts are made without a DHCP reservation (add a MAC column, or import from the API)")
				noted = true
			}
			n.addresses = append(n.addresses, item[nbAddress]{p, v})
		}
	}
	return nil
}

// netboxObjects makes the site's objects: a prefix is a subnet (a container holds
// others: left out), a range a DHCP pool when its role or description says DHCP and
// a reserved range otherwise, an address with a DNS name a host (with its interface's
// MAC) or, as a VIP, a record.
func (b *builder) netboxObjects(n *netboxData) {
	var nets []item[site.SubnetSpec]
	for _, p := range n.prefixes {
		pfx, err := netip.ParsePrefix(p.v.Prefix)
		if err != nil {
			b.notef(p.Pos, "prefix %q: not a network; left out", p.v.Prefix)
			continue
		}
		if p.v.Status.Value == "container" {
			b.notef(p.Pos, "prefix %s is a container (of other prefixes): left out", pfx)
			continue
		}
		name := p.v.Description
		if p.v.VLAN != nil && p.v.VLAN.Name != "" {
			name = p.v.VLAN.Name
		}
		sn := site.SubnetSpec{Name: subnetName(name, pfx.Masked()), CIDR: pfx.Masked().String(), Comment: p.v.Description}
		if pfx.Addr().Is6() {
			sn.DHCP6 = "stateless"
		}
		nets = append(nets, item[site.SubnetSpec]{p.Pos, sn})
	}
	holder := func(a netip.Addr) *site.SubnetSpec {
		for i := range nets {
			if netip.MustParsePrefix(nets[i].v.CIDR).Contains(a) {
				return &nets[i].v
			}
		}
		return nil
	}
	for _, r := range n.ranges {
		start, err1 := netip.ParsePrefix(r.v.Start)
		end, err2 := netip.ParsePrefix(r.v.End)
		if err1 != nil || err2 != nil {
			b.notef(r.Pos, "IP range %s–%s: not two addresses with their prefix length; left out", r.v.Start, r.v.End)
			continue
		}
		sn := holder(start.Addr())
		if sn == nil {
			b.notef(r.Pos, "IP range %s–%s is in no prefix: left out", start.Addr(), end.Addr())
			continue
		}
		kind := "reserved"
		if strings.Contains(strings.ToLower(r.v.Description), "dhcp") || (r.v.Role != nil && strings.Contains(r.v.Role.Slug, "dhcp")) {
			kind = "dhcp"
			if start.Addr().Is6() {
				sn.DHCP6 = "stateful"
			}
		} else {
			b.notef(r.Pos, "IP range %s–%s: a reserved range (its role or description does not say DHCP)", start.Addr(), end.Addr())
		}
		rs := site.RangeSpec{Kind: kind, Start: start.Addr().String(), End: end.Addr().String()}
		if kind == "reserved" {
			rs.Name = site.SanitizeHostname(r.v.Description)
		}
		sn.Ranges = append(sn.Ranges, rs)
	}
	for _, s := range nets {
		b.subnet(s.Pos, s.v)
	}
	for _, a := range n.addresses {
		p, err := netip.ParsePrefix(a.v.Address)
		if err != nil {
			b.notef(a.Pos, "IP address %q: not an address with its prefix length; left out", a.v.Address)
			continue
		}
		ip := p.Addr()
		switch {
		case a.v.Status.Value == "dhcp" || a.v.Status.Value == "slaac":
			b.notef(a.Pos, "%s is a %s address in NetBox (a client's lease): left out", ip, a.v.Status.Value)
			continue
		case a.v.DNSName == "":
			b.notef(a.Pos, "%s has no DNS name in NetBox: left out (a host needs a name)", ip)
			continue
		case a.v.Role.Value == "vip" || a.v.Role.Value == "anycast" || a.v.Role.Value == "carp" || a.v.Role.Value == "vrrp" || a.v.Role.Value == "hsrp":
			typ := "A"
			if ip.Is6() {
				typ = "AAAA"
			}
			b.record(a.Pos, site.RecordSpec{Name: a.v.DNSName, Type: typ, Value: ip.String()})
			continue
		}
		h := hostItem{HostSpec: hostAt(ip, a.v.DNSName)}
		h.Comment = a.v.Description
		if o := a.v.AssignedObject; o != nil && a.v.AssignedType == "dcim.interface" {
			h.MAC = strings.ToLower(n.interfaces[o.ID].mac())
		}
		if mac := n.macs[a.v.Address]; mac != "" {
			h.MAC = strings.ToLower(mac)
		}
		b.host(a.Pos, h)
	}
}

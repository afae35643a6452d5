package ipam

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"time"

	"github.com/infrad/infrad/pkg/site"
	"github.com/infrad/infrad/pkg/store"
)

// Command is one change of the site's state, as a value. Its apply checks the change
// against the working model and makes it there, in the transaction that writes it; it
// reads no clock and no random source (the time travels in the command as At), so the
// same command on the same store makes the same change on any box.
type Command interface {
	apply(t *txn) (any, error)
	time() time.Time
	source() string
}

// Stamp is the time a command was made, which its apply uses as "now", and who made
// it, which the change log records.
type Stamp struct {
	At time.Time `json:"at"`
	// By is who made the command ("token NAME" through the API); empty: the source
	// its kind implies (DHCP's commands "dhcp", Reconcile "site file", the CA's "acme").
	By string `json:"by,omitempty"`
}

func (s Stamp) time() time.Time { return s.At }
func (s Stamp) source() string  { return s.By }

// commandTypes names every command for Encode and Decode.
var commandTypes = map[string]reflect.Type{}

func init() {
	for _, c := range []Command{
		PutSubnet{}, DeleteSubnet{}, PutHost{}, DeleteHost{}, AllocateHost{}, PutRecord{}, DeleteRecord{},
		UpdateRecords{}, Reconcile{}, CommitLease{}, ReleaseLease{}, DeclineLease{}, ExpireLeases{}, TableWrite{},
		PinLease{}, PutToken{}, DeleteToken{}, Resign{}, SetDHCPServers{}, SettleEnds{}, ReleaseClientLease{}, TrackGrants{},
		BootHost{}, EnrolSSHHost{}, IssueSSHCert{}, RevokeSSHCert{}, CommitLease6{}, ReleaseLease6{}, DeclineLease6{}, Import{},
	} {
		t := reflect.TypeOf(c)
		commandTypes[t.Name()] = t
	}
}

// CommandTypes names every command this build can apply, sorted: what a node of a
// cluster announces to the others.
func CommandTypes() []string {
	return slices.Sorted(maps.Keys(commandTypes))
}

// CommandType names cmd's type, as a log entry does ("CommitLease").
func CommandType(cmd Command) string { return reflect.TypeOf(cmd).Name() }

// Requires names the command type every box must apply before cmd may go into the
// log, beside cmd's own: a command that carries what an earlier build would drop
// (its host's boot fields, its SSH principals) needs a build that knows them, or the
// boxes' stores part. A build that knows a later type knows the earlier ones. "": none.
func Requires(cmd Command) string {
	booting := func(hosts []site.Host, subnets []site.Subnet, profiles []string) bool {
		return len(profiles) > 0 || slices.ContainsFunc(hosts, func(h site.Host) bool { return h.Boot != "" || h.BootOnce || h.PiSerial != "" }) ||
			slices.ContainsFunc(subnets, func(sn site.Subnet) bool { return sn.Boot != "" })
	}
	sshing := func(hosts []site.Host) bool { // (and dual-stack: the same build)
		return slices.ContainsFunc(hosts, func(h site.Host) bool { return h.SSH != nil || h.IP6.IsValid() })
	}
	withDUID := func(h site.Host) bool { return h.DUID != "" }
	switch c := cmd.(type) {
	case PutHost:
		if withDUID(c.Host) {
			return CommandType(CommitLease6{}) // this build's newest
		}
		if sshing([]site.Host{c.Host}) {
			return CommandType(IssueSSHCert{})
		}
		if booting([]site.Host{c.Host}, nil, nil) {
			return CommandType(BootHost{})
		}
	case AllocateHost:
		if c.Host.IP.IsValid() && !c.Host.IP.IsUnspecified() {
			return CommandType(CommitLease6{}) // a dual-stack host's ip6 allocated: this build's
		}
		return Requires(PutHost{Host: c.Host}) // the host it makes carries the same fields
	case PutToken:
		if len(c.Token.SSHPrincipals) > 0 {
			return CommandType(IssueSSHCert{})
		}
	case TableWrite:
		// DNSSEC's key ring with a KSK roll's or a withdrawal's fields: a build before
		// them would rewrite the ring without them at its next plan.
		for _, op := range c.Ops {
			if op.Table == keyringTable && string(op.Key) == "dnssec" &&
				(bytes.Contains(op.Value, []byte(`"ds_ready"`)) || bytes.Contains(op.Value, []byte(`"withdraw"`))) {
				return CommandType(IssueSSHCert{})
			}
		}
	case PutSubnet:
		if c.Subnet.Delegate != nil {
			return CommandType(CommitLease6{})
		}
		if c.Subnet.RA != nil || c.Subnet.DHCP6 != "" {
			return CommandType(IssueSSHCert{})
		}
		if booting(nil, []site.Subnet{c.Subnet}, nil) {
			return CommandType(BootHost{})
		}
	case Reconcile:
		if slices.ContainsFunc(c.File.Subnets, func(sn site.Subnet) bool { return sn.Delegate != nil }) || slices.ContainsFunc(c.File.Hosts, withDUID) {
			return CommandType(CommitLease6{})
		}
		if sshing(c.File.Hosts) || slices.ContainsFunc(c.File.Subnets, func(sn site.Subnet) bool { return sn.RA != nil || sn.DHCP6 != "" }) {
			return CommandType(IssueSSHCert{})
		}
		if booting(c.File.Hosts, c.File.Subnets, c.File.Boot) {
			return CommandType(BootHost{})
		}
	}
	return ""
}

// MarshalCommand is cmd as JSON: written by the command itself when it can (the
// lease commands, on DHCP's hot path), else by encoding/json, byte for byte alike.
func MarshalCommand(cmd Command) ([]byte, error) {
	if a, ok := cmd.(store.JSONAppender); ok {
		return a.AppendJSON(nil)
	}
	return json.Marshal(cmd)
}

// DecodeCommand makes the command of type typ from its JSON; a type this build does
// not know is an error.
func DecodeCommand(typ string, body json.RawMessage) (Command, error) {
	t, ok := commandTypes[typ]
	if !ok {
		return nil, fmt.Errorf("decode command: unknown type %q", typ)
	}
	v := reflect.New(t)
	if err := json.Unmarshal(body, v.Interface()); err != nil {
		return nil, fmt.Errorf("decode command %s: %w", typ, err)
	}
	return v.Elem().Interface().(Command), nil
}

// PutSubnet creates (Create) or replaces an API-owned subnet.
type PutSubnet struct {
	Stamp
	Subnet site.Subnet `json:"subnet"`
	Create bool        `json:"create"`
}

func (c PutSubnet) apply(t *txn) (any, error) {
	sn := c.Subnet
	sn.Owner = site.OwnerAPI
	old, exists := t.m.Subnet(sn.Name)
	if err := t.mayPut("subnet", sn.Name, c.Create, exists, old.Owner); err != nil {
		return nil, err
	}
	var prev *site.Subnet
	if exists {
		prev = &old
	}
	if err := t.checkSubnet(prev, &sn); err != nil {
		return nil, err
	}
	t.replaceSubnet(sn.Name, &sn)
	return sn, nil
}

// DeleteSubnet removes an API-owned subnet that holds no host and no lease.
type DeleteSubnet struct {
	Stamp
	Name string `json:"name"`
}

func (c DeleteSubnet) apply(t *txn) (any, error) {
	sn, ok := t.m.Subnet(c.Name)
	if err := t.changeable("subnet", c.Name, ok, sn.Owner); err != nil {
		return nil, err
	}
	var err error
	t.m.HostsIn(sn.CIDR.Addr(), lastAddr(sn.CIDR), func(h site.Host) bool {
		err = &Error{Kind: ErrConflict, Msg: fmt.Sprintf("subnet %q still holds host %q (%s): delete or move its hosts first", sn.Name, h.Name, h.IP)}
		return false
	})
	t.m.leasesOf(sn, func(l Lease) bool {
		err = &Error{Kind: ErrConflict, Msg: fmt.Sprintf("subnet %q still holds the DHCP lease of %s (%s): release it first", sn.Name, l.Name(), l.holder())}
		return false
	})
	if err != nil {
		return nil, err
	}
	if err := t.checkSubnet(&sn, nil); err != nil {
		return nil, err
	}
	t.replaceSubnet(c.Name, nil)
	return nil, nil
}

// PutHost creates (Create) or replaces an API-owned host. With Renames, it replaces
// the API-owned host of that name under Host's new name, in one change: its address,
// its MAC's lease and its DNS records follow the host.
type PutHost struct {
	Stamp
	Host    site.Host `json:"host"`
	Create  bool      `json:"create"`
	Renames string    `json:"renames,omitempty"`
}

func (c PutHost) apply(t *txn) (any, error) {
	h := c.Host
	h.Owner = site.OwnerAPI
	h.Booted = time.Time{} // only BootHost sets it
	if c.Renames != "" && c.Renames != h.Name {
		old, ok := t.m.Host(c.Renames)
		if err := t.changeable("host", c.Renames, ok, old.Owner); err != nil {
			return nil, err
		}
		other, taken := t.m.Host(h.Name)
		if err := t.mayPut("host", h.Name, true, taken, other.Owner); err != nil {
			return nil, err
		}
		if err := t.checkHost(c.Renames, &h); err != nil {
			return nil, err
		}
		t.deleteHost(c.Renames)
		t.putHost(h)
		return h, nil
	}
	old, exists := t.m.Host(h.Name)
	if err := t.mayPut("host", h.Name, c.Create, exists, old.Owner); err != nil {
		return nil, err
	}
	if err := t.checkHost(h.Name, &h); err != nil {
		return nil, err
	}
	h.Booted = keptBooted(old, h)
	t.putHost(h)
	return h, nil
}

// BootHost records that a host which boots once has booted (Booted: its boot
// script's callback), from when on it boots from no profile, or arms it to boot from
// its profile again (not Booted). A host of either owner: this is the machine's
// state, not its declaration.
type BootHost struct {
	Stamp
	Name   string `json:"name"`
	Booted bool   `json:"booted"`
}

func (c BootHost) apply(t *txn) (any, error) {
	h, ok := t.m.Host(c.Name)
	if !ok {
		return nil, notFound(fmt.Sprintf("host %q", c.Name))
	}
	if c.Booted == !h.Booted.IsZero() {
		return h, nil // already so: the callback called twice
	}
	h.Booted = time.Time{}
	if c.Booted {
		h.Booted = c.At
	}
	t.setHostState(h)
	return h, nil
}

// DeleteHost removes an API-owned host.
type DeleteHost struct {
	Stamp
	Name string `json:"name"`
}

func (c DeleteHost) apply(t *txn) (any, error) {
	h, ok := t.m.Host(c.Name)
	if err := t.changeable("host", c.Name, ok, h.Owner); err != nil {
		return nil, err
	}
	t.deleteHost(c.Name)
	return nil, nil
}

// AllocateHost creates an API-owned host at the lowest free address of a subnet: not
// its network, broadcast or gateway address, not in a range, not a host's and not
// leased. The address is chosen inside the transaction from the model, so it follows
// from the store and the command alone. A host given an IPv4 ip, allocated in an IPv6
// subnet, is a dual-stack host: the address is its ip6.
type AllocateHost struct {
	Stamp
	Subnet string    `json:"subnet"`
	Host   site.Host `json:"host"` // without an address (0.0.0.0), or with an IPv4 one for an IPv6 subnet
}

func (c AllocateHost) apply(t *txn) (any, error) {
	sn, ok := t.m.Subnet(c.Subnet)
	if !ok {
		return nil, notFound(fmt.Sprintf("subnet %q", c.Subnet))
	}
	if sn.Purpose != site.PurposeNodes {
		return nil, invalid("", fmt.Sprintf("subnet %q is for %s: hosts belong in nodes subnets", sn.Name, sn.Purpose))
	}
	if _, exists := t.m.Host(c.Host.Name); exists {
		return nil, &Error{Kind: ErrConflict, Field: "name", Msg: fmt.Sprintf("host %q exists already", c.Host.Name)}
	}
	ip, ok := lowestFree(t.m, sn)
	if !ok {
		return nil, &Error{Kind: ErrConflict, Msg: fmt.Sprintf("subnet %q (%s) has no free address outside its ranges", sn.Name, sn.CIDR)}
	}
	h := c.Host
	h.Owner = site.OwnerAPI
	switch given := h.IP.IsValid() && !h.IP.IsUnspecified(); {
	case given && h.IP.Is4() && ip.Is6():
		h.IP6 = ip // a dual-stack host's second address
	case given:
		return nil, invalid("ip", fmt.Sprintf("allocate picks the address in subnet %q: leave ip out, or give an IPv4 ip to allocate a dual-stack host's ip6 in an IPv6 subnet", sn.Name))
	default:
		h.IP = ip
	}
	if err := t.checkHost(h.Name, &h); err != nil {
		return nil, err
	}
	t.putHost(h)
	return h, nil
}

// PutRecord creates an API-owned record.
type PutRecord struct {
	Stamp
	Record site.Record `json:"record"`
}

func (c PutRecord) apply(t *txn) (any, error) {
	r := c.Record
	r.Owner = site.OwnerAPI
	if t.m.shape.Domain == "" {
		return nil, invalid("", "no site file has been loaded, so there is no zone to hold records")
	}
	if old, exists := t.m.Record(r.ID()); exists {
		return nil, &Error{Kind: ErrConflict, Field: "name", Msg: recordTitle(old) + " exists already"}
	}
	if err := t.checkRecord("", &r); err != nil {
		return nil, err
	}
	return r, t.putRecord(r)
}

// DeleteRecord removes an API-owned record.
type DeleteRecord struct {
	Stamp
	ID string `json:"id"`
}

func (c DeleteRecord) apply(t *txn) (any, error) {
	r, ok := t.m.Record(c.ID)
	if err := t.changeable("record", c.ID, ok, r.Owner); err != nil {
		return nil, err
	}
	t.deleteRecord(c.ID)
	return nil, nil
}

func recordTitle(r site.Record) string {
	return fmt.Sprintf("record %s %s %s (id %s)", r.Name, r.Type, r.Value, r.ID())
}

// mayPut refuses to create an object that exists, and to replace one the API may not
// change.
func (t *txn) mayPut(noun, key string, create, exists bool, owner site.Owner) error {
	if create && exists {
		return &Error{Kind: ErrConflict, Field: "name", Msg: fmt.Sprintf("%s %q exists already", noun, key)}
	}
	if !create {
		return t.changeable(noun, key, exists, owner)
	}
	return nil
}

// changeable says whether the API may change the object key of a kind: it must exist
// and be the API's.
func (t *txn) changeable(noun, key string, exists bool, owner site.Owner) error {
	if !exists {
		return notFound(fmt.Sprintf("%s %q", noun, key))
	}
	if owner == site.OwnerFile {
		return &Error{Kind: ErrOwnedByFile, Msg: fmt.Sprintf("%s %q is owned by the site file (%s): change it there and reload", noun, key, t.m.shape.Source)}
	}
	return nil
}

// replaceSubnet puts sn in place of the subnet called name (nil: removes it).
func (t *txn) replaceSubnet(name string, sn *site.Subnet) {
	sh := *t.m.shape
	sh.Subnets = slices.DeleteFunc(slices.Clone(sh.Subnets), func(s site.Subnet) bool { return s.Name == name })
	if sn != nil {
		sh.Subnets = append(sh.Subnets, *sn)
	}
	t.setShape(&sh)
}

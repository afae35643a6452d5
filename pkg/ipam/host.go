package ipam

import (
	"fmt"
	"net/netip"

	"github.com/infrad/infrad/pkg/store"
)

// Hosts returns every host, by name.
func (m *IPAM) Hosts() ([]Host, error) { return list(m, hostKind) }

// Host returns the named host.
func (m *IPAM) Host(name string) (Host, error) { return get(m, hostKind, name) }

// CreateHost adds a host owned by the API.
func (m *IPAM) CreateHost(spec HostSpec) (Host, error) {
	h, errs := spec.Parse()
	if err := fieldError(errs); err != nil {
		return Host{}, err
	}
	h.Owner = OwnerAPI
	return h, create(m, hostKind, h)
}

// UpdateHost replaces the API-owned host name.
func (m *IPAM) UpdateHost(name string, spec HostSpec) (Host, error) {
	if spec.Name == "" {
		spec.Name = name
	}
	h, errs := spec.Parse()
	if err := fieldError(errs); err != nil {
		return Host{}, err
	}
	h.Owner = OwnerAPI
	return h, update(m, hostKind, name, h)
}

// DeleteHost removes the API-owned host name.
func (m *IPAM) DeleteHost(name string) error { return remove(m, hostKind, name, nil) }

// Allocate creates an API-owned host at the lowest free address of the named subnet:
// not its network, broadcast or gateway address, not in a range, not a host's and not
// leased. The search and the write are one transaction, so concurrent calls never get
// the same address.
func (m *IPAM) Allocate(subnet string, spec HostSpec) (Host, error) {
	if spec.IP != "" {
		return Host{}, invalid("ip", "allocate picks the address: leave ip out, or create the host with POST /api/v1/hosts")
	}
	var h Host
	err := m.store.Update(func(tx *store.Tx) error {
		set, err := m.load(tx)
		if err != nil {
			return err
		}
		sn, ok := find(subnetKind, &set, subnet)
		if !ok {
			return notFound(subnetKind.describe(subnet))
		}
		if sn.Purpose != PurposeNodes {
			return invalid("", fmt.Sprintf("subnet %q is for %s: hosts belong in nodes subnets", sn.Name, sn.Purpose))
		}
		leases, err := store.All[Lease](tx, store.BucketLeases)
		if err != nil {
			return err
		}
		ip, ok := lowestFree(sn, set.Hosts, leases)
		if !ok {
			return &Error{Kind: ErrConflict, Msg: fmt.Sprintf("subnet %q (%s) has no free address outside its ranges", sn.Name, sn.CIDR)}
		}
		spec.IP = ip.String()
		var errs []FieldError
		if h, errs = spec.Parse(); len(errs) > 0 {
			return fieldError(errs)
		}
		h.Owner = OwnerAPI
		if _, exists := find(hostKind, &set, h.Name); exists {
			return &Error{Kind: ErrConflict, Field: "name", Msg: hostKind.title(h) + " exists already"}
		}
		return replace(tx, set, hostKind, "", &h)
	})
	return h, err
}

// maxScan bounds the search for a free address in very large (IPv6) subnets.
const maxScan = 1 << 20

func lowestFree(sn Subnet, hosts []Host, leases []Lease) (netip.Addr, bool) {
	taken := map[netip.Addr]bool{}
	for _, h := range hosts {
		taken[h.IP] = true
	}
	for _, l := range leases {
		taken[l.IP] = true
	}
	a := sn.CIDR.Addr()
	for range maxScan {
		if !sn.CIDR.Contains(a) {
			break
		}
		if !taken[a] && addressName(sn, a) == "" && !inRange(sn, a) && !(a.Is6() && a == sn.CIDR.Addr()) {
			return a, true
		}
		a = a.Next()
	}
	return netip.Addr{}, false
}

func inRange(sn Subnet, a netip.Addr) bool {
	for _, r := range sn.Ranges {
		if r.Contains(a) {
			return true
		}
	}
	return false
}

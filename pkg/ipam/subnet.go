package ipam

import (
	"fmt"

	"github.com/infrad/infrad/pkg/store"
)

// Subnets returns every subnet, by name.
func (m *IPAM) Subnets() ([]Subnet, error) { return list(m, subnetKind) }

// Subnet returns the named subnet.
func (m *IPAM) Subnet(name string) (Subnet, error) { return get(m, subnetKind, name) }

// CreateSubnet adds a subnet owned by the API.
func (m *IPAM) CreateSubnet(spec SubnetSpec) (Subnet, error) {
	sn, errs := spec.Parse()
	if err := fieldError(errs); err != nil {
		return Subnet{}, err
	}
	sn.Owner = OwnerAPI
	return sn, create(m, subnetKind, sn)
}

// UpdateSubnet replaces the API-owned subnet name.
func (m *IPAM) UpdateSubnet(name string, spec SubnetSpec) (Subnet, error) {
	if spec.Name == "" {
		spec.Name = name
	}
	sn, errs := spec.Parse()
	if err := fieldError(errs); err != nil {
		return Subnet{}, err
	}
	sn.Owner = OwnerAPI
	return sn, update(m, subnetKind, name, sn)
}

// DeleteSubnet removes the API-owned subnet name, which must hold no host and no lease.
func (m *IPAM) DeleteSubnet(name string) error {
	return remove(m, subnetKind, name, func(tx *store.Tx, set Set, sn Subnet) error {
		return subnetInUse(tx, set, sn)
	})
}

// subnetInUse refuses to let sn go while a host or a lease has an address in it.
func subnetInUse(tx *store.Tx, set Set, sn Subnet) error {
	for _, h := range set.Hosts {
		if sn.CIDR.Contains(h.IP) {
			return &Error{Kind: ErrConflict, Msg: fmt.Sprintf("subnet %q still holds host %q (%s): delete or move its hosts first", sn.Name, h.Name, h.IP)}
		}
	}
	leases, err := store.All[Lease](tx, store.BucketLeases)
	if err != nil {
		return err
	}
	for _, l := range leases {
		if sn.CIDR.Contains(l.IP) {
			return &Error{Kind: ErrConflict, Msg: fmt.Sprintf("subnet %q still holds the DHCP lease of %s (%s): release it first", sn.Name, l.IP, l.MAC)}
		}
	}
	return nil
}

package ipam

import (
	"context"
	"fmt"
)

// Subnets returns every subnet, by name.
func (m *IPAM) Subnets() ([]Subnet, error) { return append([]Subnet{}, m.Model().Subnets()...), nil }

// Subnet returns the named subnet.
func (m *IPAM) Subnet(name string) (Subnet, error) {
	sn, ok := m.Model().Subnet(name)
	if !ok {
		return Subnet{}, notFound(fmt.Sprintf("subnet %q", name))
	}
	return sn, nil
}

// CreateSubnet adds a subnet owned by the API.
func (m *IPAM) CreateSubnet(ctx context.Context, spec SubnetSpec) (Subnet, error) {
	sn, errs := spec.Parse()
	if err := fieldError(errs); err != nil {
		return Subnet{}, err
	}
	return result[Subnet](m.Apply(ctx, PutSubnet{Stamp: m.stampFor(ctx), Subnet: sn, Create: true}))
}

// UpdateSubnet replaces the API-owned subnet name.
func (m *IPAM) UpdateSubnet(ctx context.Context, name string, spec SubnetSpec) (Subnet, error) {
	if spec.Name == "" {
		spec.Name = name
	}
	sn, errs := spec.Parse()
	if err := fieldError(errs); err != nil {
		return Subnet{}, err
	}
	if sn.Name != name {
		return Subnet{}, renamed(sn.Name, name)
	}
	return result[Subnet](m.Apply(ctx, PutSubnet{Stamp: m.stampFor(ctx), Subnet: sn}))
}

// DeleteSubnet removes the API-owned subnet name, which must hold no host and no lease.
func (m *IPAM) DeleteSubnet(ctx context.Context, name string) error {
	_, err := m.Apply(ctx, DeleteSubnet{Stamp: m.stampFor(ctx), Name: name})
	return err
}

package ipam

import (
	"context"
	"fmt"

	"github.com/infrad/infrad/pkg/site"
)

// Subnets returns every subnet, by name.
func (m *IPAM) Subnets() ([]site.Subnet, error) {
	return append([]site.Subnet{}, m.Model().Subnets()...), nil
}

// Subnet returns the named subnet.
func (m *IPAM) Subnet(name string) (site.Subnet, error) {
	sn, ok := m.Model().Subnet(name)
	if !ok {
		return site.Subnet{}, notFound(fmt.Sprintf("subnet %q", name))
	}
	return sn, nil
}

// CreateSubnet adds a subnet owned by the API.
func (m *IPAM) CreateSubnet(ctx context.Context, spec site.SubnetSpec) (site.Subnet, error) {
	sn, errs := spec.Parse()
	if err := fieldError(errs); err != nil {
		return site.Subnet{}, err
	}
	return result[site.Subnet](m.Apply(ctx, PutSubnet{Stamp: m.stampFor(ctx), Subnet: sn, Create: true}))
}

// UpdateSubnet replaces the API-owned subnet name.
func (m *IPAM) UpdateSubnet(ctx context.Context, name string, spec site.SubnetSpec) (site.Subnet, error) {
	if spec.Name == "" {
		spec.Name = name
	}
	sn, errs := spec.Parse()
	if err := fieldError(errs); err != nil {
		return site.Subnet{}, err
	}
	if sn.Name != name {
		return site.Subnet{}, renamed(sn.Name, name)
	}
	return result[site.Subnet](m.Apply(ctx, PutSubnet{Stamp: m.stampFor(ctx), Subnet: sn}))
}

// DeleteSubnet removes the API-owned subnet name, which must hold no host and no lease.
func (m *IPAM) DeleteSubnet(ctx context.Context, name string) error {
	_, err := m.Apply(ctx, DeleteSubnet{Stamp: m.stampFor(ctx), Name: name})
	return err
}

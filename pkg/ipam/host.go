package ipam

import (
	"context"
	"fmt"
)

// Hosts returns every host, by name.
func (m *IPAM) Hosts() ([]Host, error) { return m.Model().Hosts(), nil }

// Host returns the named host.
func (m *IPAM) Host(name string) (Host, error) {
	h, ok := m.Model().Host(name)
	if !ok {
		return Host{}, notFound(fmt.Sprintf("host %q", name))
	}
	return h, nil
}

// CreateHost adds a host owned by the API.
func (m *IPAM) CreateHost(spec HostSpec) (Host, error) {
	h, errs := spec.Parse()
	if err := fieldError(errs); err != nil {
		return Host{}, err
	}
	return result[Host](m.Apply(context.Background(), PutHost{Stamp: m.stamp(), Host: h, Create: true}))
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
	if h.Name != name {
		return Host{}, renamed(h.Name, name)
	}
	return result[Host](m.Apply(context.Background(), PutHost{Stamp: m.stamp(), Host: h}))
}

// DeleteHost removes the API-owned host name.
func (m *IPAM) DeleteHost(name string) error {
	_, err := m.Apply(context.Background(), DeleteHost{Stamp: m.stamp(), Name: name})
	return err
}

// Allocate creates an API-owned host at the lowest free address of the named subnet
// (see AllocateHost). The search and the write are one transaction, so concurrent
// calls never get the same address.
func (m *IPAM) Allocate(subnet string, spec HostSpec) (Host, error) {
	if spec.IP != "" {
		return Host{}, invalid("ip", "allocate picks the address: leave ip out, or create the host with POST /api/v1/hosts")
	}
	spec.IP = "0.0.0.0" // a placeholder for Parse; the command picks the address
	h, errs := spec.Parse()
	if err := fieldError(errs); err != nil {
		return Host{}, err
	}
	return result[Host](m.Apply(context.Background(), AllocateHost{Stamp: m.stamp(), Subnet: subnet, Host: h}))
}

func (m *IPAM) stamp() Stamp { return Stamp{At: m.now()} }

// result types what Apply returned.
func result[T any](v any, err error) (T, error) {
	if err != nil {
		var zero T
		return zero, err
	}
	return v.(T), nil
}

func renamed(body, url string) error {
	return invalid("name", fmt.Sprintf("the body names %q, the URL %q: an object cannot be renamed; create the new one and delete the old", body, url))
}

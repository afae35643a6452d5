package ipam

import (
	"context"
	"fmt"

	"github.com/infrad/infrad/pkg/site"
)

// Hosts returns every host, by name.
func (m *IPAM) Hosts() ([]site.Host, error) { return m.Model().Hosts(), nil }

// Host returns the named host.
func (m *IPAM) Host(name string) (site.Host, error) {
	h, ok := m.Model().Host(name)
	if !ok {
		return site.Host{}, notFound(fmt.Sprintf("host %q", name))
	}
	return h, nil
}

// CreateHost adds a host owned by the API.
func (m *IPAM) CreateHost(ctx context.Context, spec site.HostSpec) (site.Host, error) {
	h, errs := spec.Parse()
	if err := fieldError(errs); err != nil {
		return site.Host{}, err
	}
	return result[site.Host](m.Apply(ctx, PutHost{Stamp: m.stampFor(ctx), Host: h, Create: true}))
}

// UpdateHost replaces the API-owned host name; a spec with another name renames it.
func (m *IPAM) UpdateHost(ctx context.Context, name string, spec site.HostSpec) (site.Host, error) {
	if spec.Name == "" {
		spec.Name = name
	}
	h, errs := spec.Parse()
	if err := fieldError(errs); err != nil {
		return site.Host{}, err
	}
	return result[site.Host](m.Apply(ctx, PutHost{Stamp: m.stampFor(ctx), Host: h, Renames: name}))
}

// DeleteHost removes the API-owned host name.
func (m *IPAM) DeleteHost(ctx context.Context, name string) error {
	_, err := m.Apply(ctx, DeleteHost{Stamp: m.stampFor(ctx), Name: name})
	return err
}

// Rearm has a host that boots once boot from its profile again (BootHost): the
// machine is to be installed anew.
func (m *IPAM) Rearm(ctx context.Context, name string) (site.Host, error) {
	res, err := m.Apply(ctx, BootHost{Stamp: m.stampFor(ctx), Name: name})
	if err != nil {
		return site.Host{}, err
	}
	return res.(site.Host), nil
}

// Allocate creates an API-owned host at the lowest free address of the named subnet
// (see AllocateHost). The search and the write are one transaction, so concurrent
// calls never get the same address.
func (m *IPAM) Allocate(ctx context.Context, subnet string, spec site.HostSpec) (site.Host, error) {
	if spec.IP6 != "" {
		return site.Host{}, invalid("ip6", "allocate picks the address: leave ip6 out, or create the host with POST /api/v1/hosts")
	}
	if spec.IP == "" {
		spec.IP = "0.0.0.0" // a placeholder for Parse; the command picks the address
	}
	h, errs := spec.Parse()
	if err := fieldError(errs); err != nil {
		return site.Host{}, err
	}
	return result[site.Host](m.Apply(ctx, AllocateHost{Stamp: m.stampFor(ctx), Subnet: subnet, Host: h}))
}

// stampFor stamps a command made for ctx: now, by ctx's source (WithSource).
func (m *IPAM) stampFor(ctx context.Context) Stamp { return Stamp{At: m.now(), By: SourceOf(ctx)} }

type sourceKey struct{}

// WithSource is ctx for commands made by by: the change log's source ("token alice",
// "rfc2136 key ddns.").
func WithSource(ctx context.Context, by string) context.Context {
	return context.WithValue(ctx, sourceKey{}, by)
}

// SourceOf is the source WithSource gave ctx ("" for none).
func SourceOf(ctx context.Context) string {
	by, _ := ctx.Value(sourceKey{}).(string)
	return by
}

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

package ipam

import (
	"context"
	"fmt"

	"github.com/infrad/infrad/pkg/site"
)

// Records returns every record IPAM holds (not the ones hosts imply), by ID.
func (m *IPAM) Records() ([]site.Record, error) { return m.Model().Records(), nil }

// Record returns the record with the given ID.
func (m *IPAM) Record(id string) (site.Record, error) {
	r, ok := m.Model().Record(id)
	if !ok {
		return site.Record{}, notFound(fmt.Sprintf("record %q", id))
	}
	return r, nil
}

// CreateRecord adds a record owned by the API; its name is relative to the domain
// unless it ends with a dot.
func (m *IPAM) CreateRecord(ctx context.Context, spec site.RecordSpec) (site.Record, error) {
	domain := m.Model().Domain()
	if domain == "" {
		return site.Record{}, invalid("", "no site file has been loaded, so there is no zone to hold records")
	}
	r, errs := spec.Parse(domain)
	if err := fieldError(errs); err != nil {
		return site.Record{}, err
	}
	return result[site.Record](m.Apply(ctx, PutRecord{Stamp: m.stampFor(ctx), Record: r}))
}

// DeleteRecord removes the API-owned record id.
func (m *IPAM) DeleteRecord(ctx context.Context, id string) error {
	_, err := m.Apply(ctx, DeleteRecord{Stamp: m.stampFor(ctx), ID: id})
	return err
}

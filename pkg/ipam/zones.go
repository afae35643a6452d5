package ipam

import (
	"slices"

	"github.com/infrad/infrad/pkg/site"
)

// Zones are the site's zones, longest first.
func (m *Model) Zones() []string { return m.shape.zones }

// IsZone reports whether z (lower case, fully qualified) is one of the site's zones.
func (m *Model) IsZone(z string) bool { return slices.Contains(m.shape.zones, z) }

// ZoneOf returns the longest of the site's zones that holds name, or "".
func (m *Model) ZoneOf(name string) string {
	for _, z := range m.shape.zones {
		if site.InZone(z, name) {
			return z
		}
	}
	return ""
}

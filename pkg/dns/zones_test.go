package dns

import (
	"net/netip"
	"slices"
	"testing"
)

func TestReverseZones(t *testing.T) {
	tests := []struct {
		prefix string
		want   []string
	}{
		{"10.0.40.0/24", []string{"40.0.10.in-addr.arpa."}},
		{"10.0.0.0/16", []string{"0.10.in-addr.arpa."}},
		{"10.0.40.128/25", []string{"40.0.10.in-addr.arpa."}},
		{"10.0.32.0/22", []string{"32.0.10.in-addr.arpa.", "33.0.10.in-addr.arpa.", "34.0.10.in-addr.arpa.", "35.0.10.in-addr.arpa."}},
		{"10.0.255.0/23", []string{"254.0.10.in-addr.arpa.", "255.0.10.in-addr.arpa."}},
		{"fd00:40::/64", []string{"0.0.0.0.0.0.0.0.0.4.0.0.0.0.d.f.ip6.arpa."}},
		{"fd00:40::/62", []string{"0.0.0.0.0.0.0.0.0.4.0.0.0.0.d.f.ip6.arpa.", "1.0.0.0.0.0.0.0.0.4.0.0.0.0.d.f.ip6.arpa.", "2.0.0.0.0.0.0.0.0.4.0.0.0.0.d.f.ip6.arpa.", "3.0.0.0.0.0.0.0.0.4.0.0.0.0.d.f.ip6.arpa."}},
	}
	for _, tc := range tests {
		got := reverseZones(netip.MustParsePrefix(tc.prefix))
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.prefix, got, tc.want)
		}
	}
	if got := reverseZones(netip.MustParsePrefix("10.0.32.0/20")); len(got) != 16 || got[15] != "47.0.10.in-addr.arpa." {
		t.Errorf("/20: got %v, want 16 zones ending with 47.0.10.in-addr.arpa.", got)
	}
}

package site

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/miekg/dns"
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

// TestInZone: InZone says what dns.IsSubDomain says, for names of every shape.
func TestInZone(t *testing.T) {
	zones := []string{".", "example.com.", "k8s.example.com.", "40.0.10.in-addr.arpa.", "com."}
	names := []string{".", "com.", "example.com.", "EXAMPLE.Com.", "a.example.com.", "aexample.com.", "xk8s.example.com.",
		"k8s.example.com.", "a.b.k8s.example.com.", "example.org.", "10.40.0.10.in-addr.arpa.", "140.0.10.in-addr.arpa.",
		`a\.example.com.`, `k8s\.example.com.`, `a\046k8s.example.com.`, "*.apps.k8s.example.com."}
	for _, z := range zones {
		for _, n := range names {
			if got, want := InZone(z, n), dns.IsSubDomain(z, n); got != want {
				t.Errorf("InZone(%q, %q) = %v, dns.IsSubDomain says %v", z, n, got, want)
			}
		}
	}
}

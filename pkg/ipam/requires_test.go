package ipam

import (
	"net/netip"
	"testing"

	"github.com/infrad/infrad/pkg/site"
)

// TestRequires: a command carrying what an earlier build would drop names the
// command type every node must apply first; one that carries nothing new names none.
func TestRequires(t *testing.T) {
	ring := func(value string) Command {
		return TableWrite{Ops: []TableOp{{Op: "swap", Table: keyringTable, Key: []byte("dnssec"), Value: []byte(value)}}}
	}
	for _, tc := range []struct {
		name string
		cmd  Command
		want string
	}{
		{"a plain host", PutHost{Host: site.Host{Name: "a"}}, ""},
		{"a host that boots", PutHost{Host: site.Host{Name: "a", Boot: "debian"}}, "BootHost"},
		{"a host with SSH principals", PutHost{Host: site.Host{Name: "a", SSH: &site.HostSSH{Principals: []string{"a-bmc"}}}}, "IssueSSHCert"},
		{"a token with SSH principals", PutToken{Token: Token{Name: "alice", SSHPrincipals: []string{"root"}}}, "IssueSSHCert"},
		{"a plain token", PutToken{Token: Token{Name: "alice"}}, ""},
		{"a dual-stack host", PutHost{Host: site.Host{Name: "a", IP6: netip.MustParseAddr("fd00::a")}}, "IssueSSHCert"},
		{"the DNSSEC ring", ring(`{"keys":[{"ksk":true}]}`), ""},
		{"the DNSSEC ring in a KSK roll", ring(`{"keys":[{"ksk":true,"ds_ready":"2026-01-01T00:00:00Z"}]}`), "IssueSSHCert"},
		{"the DNSSEC ring withdrawn", ring(`{"keys":[],"withdraw":{"started":"2026-01-01T00:00:00Z"}}`), "IssueSSHCert"},
		{"a site file with a host with SSH principals", Reconcile{File: site.Set{Hosts: []site.Host{{Name: "a", SSH: &site.HostSSH{}}}}}, "IssueSSHCert"},
		{"a dual-stack host's ip6 allocated", AllocateHost{Host: site.Host{Name: "a", IP: netip.MustParseAddr("10.0.0.1")}}, "CommitLease6"},
		{"a host allocated with SSH principals", AllocateHost{Host: site.Host{Name: "a", SSH: &site.HostSSH{}}}, "IssueSSHCert"},
		{"a host reserved by DUID", PutHost{Host: site.Host{Name: "a", IP6: netip.MustParseAddr("fd00::a"), DUID: "000400"}}, "CommitLease6"},
		{"a subnet that delegates prefixes", PutSubnet{Subnet: site.Subnet{Name: "a", DHCP6: site.DHCP6Stateful, Delegate: &site.Delegation{}}}, "CommitLease6"},
		{"a site file with one", Reconcile{File: site.Set{Subnets: []site.Subnet{{Name: "a", DHCP6: site.DHCP6Stateful, Delegate: &site.Delegation{}}}}}, "CommitLease6"},
	} {
		if got := Requires(tc.cmd); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

package dns

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/infrad/infrad/internal/testenv"
)

// zonesSite serves the site's domain below an extra zone (example.com), an unrelated
// extra zone, and forward and reverse zones of both address families.
const zonesSite = `domain: k8s.example.com
dns:
  listen: ["127.0.0.1:%d"]
  zones: [example.com, example.org]
  transfer_from: [127.0.0.0/8]
  records:
    - {name: www.example.com., type: A, value: 10.0.40.5}
    - {name: api, type: A, value: 10.0.40.100}
    - {name: _etcd-server-ssl._tcp, type: SRV, value: "0 10 2380 cp01"}
subnets:
  - {name: vm, cidr: 10.0.40.0/24}
  - {name: v6, cidr: "fd00:40::/64"}
hosts:
  - {name: cp01, ip: 10.0.40.10}
  - {name: cp6, ip: "fd00:40::10"}
`

// TestZonesLoadInBINDAndKnot: every zone infrad serves, transferred with dig, is
// accepted by BIND's named-checkzone and Knot's kzonecheck: forward and reverse, and
// the parent zone of the site's domain, which holds the domain's delegation and its
// name server's glue.
func TestZonesLoadInBINDAndKnot(t *testing.T) {
	testenv.Need(t, "dig", "named-checkzone", "kzonecheck")
	s := startSite(t, func(port int) string { return fmt.Sprintf(zonesSite, port) })
	for _, zone := range []string{"example.com.", "k8s.example.com.", "example.org.", "40.0.10.in-addr.arpa.", "0.0.0.0.0.0.0.0.0.4.0.0.0.0.d.f.ip6.arpa."} {
		out := s.dig(t, zone, "AXFR", "+nocmd", "+nostats", "+nocomments")
		if !strings.Contains(out, "SOA") || strings.Contains(out, "Transfer failed") {
			t.Errorf("AXFR %s:\n%s", zone, out)
			continue
		}
		file := filepath.Join(t.TempDir(), "zone")
		os.WriteFile(file, []byte(out), 0o644)
		if res, err := exec.Command("named-checkzone", "-k", "fail", "-n", "fail", zone, file).CombinedOutput(); err != nil {
			t.Errorf("named-checkzone %s: %v\n%s\nthe zone:\n%s", zone, err, res, out)
		}
		if res, err := exec.Command("kzonecheck", "-o", zone, file).CombinedOutput(); err != nil {
			t.Errorf("kzonecheck %s: %v\n%s\nthe zone:\n%s", zone, err, res, out)
		}
		if zone == "example.com." && !strings.Contains(out, "k8s.example.com.\t300\tIN\tNS\tns.k8s.example.com.") {
			t.Errorf("example.com does not delegate k8s.example.com:\n%s", out)
		}
	}
}

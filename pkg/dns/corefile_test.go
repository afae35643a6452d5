package dns

import (
	"testing"

	"github.com/infrad/infrad/internal/testenv"
	"github.com/infrad/infrad/pkg/config"
)

// TestCorefile compares the Corefile of a site with every DNS setting to its golden file.
func TestCorefile(t *testing.T) {
	site, err := config.Parse("site.yaml", []byte(`domain: k8s.example.com
dns:
  listen: ["10.0.40.2:53", "127.0.0.1:53", "127.0.0.1:5353"]
  forwarders: ["192.0.2.53", "192.0.2.54:5353"]
  secondaries: ["10.0.40.3", "10.0.40.4:5300"]
  tsig_keys:
    - {name: external-dns, algorithm: hmac-sha256, secret: "c2VjcmV0"}
    - {name: cert-manager, algorithm: hmac-sha512, secret: "c2VjcmV0Mg=="}
`))
	if err != nil {
		t.Fatal(err)
	}
	got := corefile("ID", site.DNS)
	testenv.Golden(t, "Corefile.golden", got)
}

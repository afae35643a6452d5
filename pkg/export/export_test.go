package export

import (
	"slices"
	"strings"
	"testing"

	"github.com/infrad/infrad/internal/testenv"
	"github.com/infrad/infrad/pkg/config"
)

func site(t *testing.T) Site {
	t.Helper()
	s, err := config.Load("../../deploy/examples/bastion.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return Site{Domain: strings.TrimSuffix(string(s.Domain), "."), Subnets: s.Subnets, Records: s.DNS.Records,
		Directory: "https://ca.k8s.corp.example/acme/acme/directory", Server: "10.0.40.2",
		RootPEM: "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"}
}

// TestGolden renders every export of the bastion example against its golden file.
func TestGolden(t *testing.T) {
	kinds := make([]string, 0, len(Kinds))
	for k := range Kinds {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			got, err := Render(kind, site(t))
			if err != nil {
				t.Fatal(err)
			}
			testenv.Golden(t, kind+".golden", got)
		})
	}
}

func TestRefusals(t *testing.T) {
	s := site(t)
	s.Records = nil
	if _, err := Render("kubeadm", s); err == nil || !strings.Contains(err.Error(), "api.k8s.corp.example") {
		t.Errorf("kubeadm without an api record: got %v", err)
	}
	s.Subnets[0].Ranges = nil
	if _, err := Render("metallb", s); err == nil {
		t.Errorf("metallb without a metallb range: got no error")
	}
	if _, err := Render("helm", s); err == nil || !strings.Contains(err.Error(), "kubeadm") {
		t.Errorf("an unknown kind: got %v, want the list of kinds", err)
	}
}

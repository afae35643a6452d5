package dns

import (
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/infrad/infrad/internal/testenv"
	"github.com/infrad/infrad/pkg/ipam"
)

// nsupdate runs nsupdate with the commands given, signed with key when it is not "".
func (s *server) nsupdate(t *testing.T, key string, commands ...string) (string, error) {
	t.Helper()
	args := []string{"-t", "3"}
	if key != "" {
		args = append(args, "-y", key)
	}
	script := fmt.Sprintf("server 127.0.0.1 %d\nzone k8s.example.com\n%s\nsend\n", s.port, strings.Join(commands, "\n"))
	cmd := exec.Command("nsupdate", args...)
	cmd.Stdin = strings.NewReader(script)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

const goodKey = "hmac-sha256:external-dns:" + tsigSecret

func TestUpdateWithTSIG(t *testing.T) {
	testenv.Need(t, "nsupdate", "dig")
	s := start(t, "")
	if out, err := s.nsupdate(t, goodKey,
		"update add acme.k8s.example.com 120 TXT \"token-1\"",
		"update add lb.k8s.example.com 300 A 10.0.40.110"); err != nil {
		t.Fatalf("signed update: %v\n%s", err, out)
	}
	testenv.WaitFor(t, "the updated names", func() bool {
		return slices.Equal(s.answers(t, "acme.k8s.example.com", "TXT"), []string{`"token-1"`}) &&
			slices.Equal(s.answers(t, "lb.k8s.example.com"), []string{"10.0.40.110"})
	})
	records, _ := s.ipam.Records()
	var got []string
	for _, r := range records {
		if r.Owner == ipam.OwnerAPI {
			got = append(got, fmt.Sprintf("%s %s %s %d", r.Name, r.Type, r.Value, r.TTL))
		}
	}
	slices.Sort(got)
	want := []string{`acme.k8s.example.com. TXT "token-1" 120`, "lb.k8s.example.com. A 10.0.40.110 300"}
	if !slices.Equal(got, want) {
		t.Errorf("records in IPAM: got %v, want %v", got, want)
	}

	if out, err := s.nsupdate(t, goodKey, "update delete acme.k8s.example.com TXT"); err != nil {
		t.Fatalf("signed delete: %v\n%s", err, out)
	}
	testenv.WaitFor(t, "the TXT gone", func() bool { return status(s.dig(t, "acme.k8s.example.com", "TXT")) == "NXDOMAIN" })

	t.Run("prerequisite not met", func(t *testing.T) {
		out, err := s.nsupdate(t, goodKey, "prereq nxdomain lb.k8s.example.com", "update add lb.k8s.example.com 300 A 10.0.40.111")
		if err == nil || !strings.Contains(out, "YXDOMAIN") {
			t.Errorf("got %v %q, want YXDOMAIN", err, out)
		}
	})
}

func TestUpdateRefusals(t *testing.T) {
	testenv.Need(t, "nsupdate", "dig")
	s := start(t, "")
	tests := []struct {
		name, key, command, want string
	}{
		{"unsigned", "", "update add evil.k8s.example.com 300 A 10.0.40.66", "REFUSED"},
		{"wrong secret", "hmac-sha256:external-dns:d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldA==", "update add evil.k8s.example.com 300 A 10.0.40.66", "NOTAUTH"},
		{"unknown key", "hmac-sha256:nobody:" + tsigSecret, "update add evil.k8s.example.com 300 A 10.0.40.66", "NOTAUTH"},
		{"a host's name", goodKey, "update add cp01.k8s.example.com 300 TXT \"mine\"", "REFUSED"},
		{"deleting a host", goodKey, "update delete cp01.k8s.example.com A", "REFUSED"},
		{"a site-file record", goodKey, "update delete api.k8s.example.com A", "REFUSED"},
		{"an NS record", goodKey, "update add k8s.example.com 300 NS evil.example.net.", "REFUSED"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := s.nsupdate(t, tc.key, tc.command)
			if err == nil || !strings.Contains(out, tc.want) {
				t.Errorf("got %v %q, want %s", err, out, tc.want)
			}
		})
	}
	if got := status(s.dig(t, "evil.k8s.example.com")); got != "NXDOMAIN" {
		t.Errorf("a refused update left a name: got %s", got)
	}
	if got := s.answers(t, "api.k8s.example.com"); !slices.Equal(got, []string{"10.0.40.100"}) {
		t.Errorf("a refused delete changed api: got %v", got)
	}
}

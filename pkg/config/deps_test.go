package config

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoStoreInTheVocabulary keeps the site file and the exports free of the store:
// they read pkg/site, never the write path (which brings bbolt and Raft).
func TestNoStoreInTheVocabulary(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".", "../export").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"go.etcd.io/bbolt", "github.com/hashicorp/raft", "infrad/pkg/ipam", "infrad/pkg/store"} {
			if strings.HasPrefix(dep, banned) || strings.HasSuffix(dep, banned) {
				t.Errorf("config or export depends on %s", dep)
			}
		}
	}
}

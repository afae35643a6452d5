package cluster

import (
	"testing"
	"time"
)

// TestPromisesOutliveTheProcess: what a node renewed without the quorum is kept in
// its data directory before the client is answered, so that a node started again
// vouches for no more than it had when it renewed, while the renewal lasts; a later
// promise lowers the index and stretches the end, never the other way.
func TestPromisesOutliveTheProcess(t *testing.T) {
	dir := t.TempDir()
	until := time.Now().Add(time.Hour).Truncate(time.Second)
	n := &Node{dataDir: dir}
	for _, p := range []struct {
		index uint64
		until time.Time
	}{{40, until.Add(-time.Minute)}, {45, until}, {38, until.Add(-2 * time.Minute)}} {
		if err := n.Promised(p.index, p.until); err != nil {
			t.Fatal(err)
		}
	}
	again := &Node{dataDir: dir}
	if err := again.readPromises(); err != nil {
		t.Fatal(err)
	}
	if again.promises.Index != 38 || !again.promises.Until.Equal(until) {
		t.Errorf("after a restart the node vouches through %d until %s, want 38 until %s", again.promises.Index, again.promises.Until, until)
	}
	if err := (&Node{dataDir: t.TempDir()}).readPromises(); err != nil {
		t.Errorf("a node that never renewed without the quorum: %v", err)
	}
}

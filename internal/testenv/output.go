package testenv

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// Output collects a process's output while the test reads it.
type Output struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Output) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *Output) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Start starts cmd with its output collected, and ends it when t ends, showing the
// output when t failed.
func Start(t testing.TB, cmd *exec.Cmd) *Output {
	t.Helper()
	out := &Output{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("%s:\n%s", filepath.Base(cmd.Path), out.String())
		}
	})
	return out
}

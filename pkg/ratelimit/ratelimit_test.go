package ratelimit

import (
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	l := New[string](2)
	got := 0
	for range 10 {
		if l.Allow("a", now) {
			got++
		}
	}
	if got != 4 {
		t.Errorf("a burst: got %d allowed, want 4", got)
	}
	if !l.Allow("b", now) {
		t.Errorf("another key is limited by the first")
	}
	if !l.Allow("a", now.Add(600*time.Millisecond)) || l.Allow("a", now.Add(600*time.Millisecond)) {
		t.Errorf("after 0.6 s at 2/s, want exactly one more")
	}
	if off := New[string](0); !off.Allow("a", now) {
		t.Errorf("a zero rate limits")
	}
}

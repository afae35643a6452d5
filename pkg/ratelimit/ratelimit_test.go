package ratelimit

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestLimiter(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	l := New[string](2, nil)
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
	if off := New[string](0, nil); !off.Allow("a", now) {
		t.Errorf("a zero rate limits")
	}
}

// A full table forgets the client seen least recently, counts it, and keeps the
// buckets of those it still holds: a client out of tokens stays limited however many
// others pass by.
func TestLimiterForgetsTheLeastRecentlySeen(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	evicted := Evictions("test")
	l := newSized[string](1, 3, evicted)
	for range 2 {
		l.Allow("greedy", now)
	}
	if l.Allow("greedy", now) {
		t.Fatal("greedy has a third token at 1/s")
	}
	for i := range 10 {
		l.Allow(fmt.Sprint("passer-by ", i), now)
		if l.Allow("greedy", now) {
			t.Fatalf("greedy got a token back after %d other clients", i+1)
		}
	}
	if n := l.Len(); n != 3 {
		t.Errorf("the table holds %d clients, want its size, 3", n)
	}
	if got := testutil.ToFloat64(evicted); got != 8 {
		t.Errorf("%v evictions counted, want 8 (10 passers-by, 2 places for them)", got)
	}
}

// Clients idle for a minute go without a sweep: each request forgets a few of them.
func TestLimiterForgetsTheIdle(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	evicted := Evictions("test")
	l := newSized[netip.Addr](5, 100, evicted)
	for i := range 50 {
		l.Allow(netip.AddrFrom4([4]byte{127, 0, 0, byte(i)}), now)
	}
	later := now.Add(idle + time.Second)
	for range 25 {
		l.Allow(netip.MustParseAddr("127.0.1.1"), later)
	}
	if n := l.Len(); n != 1 {
		t.Errorf("%d clients left after a minute idle and 25 requests, want 1", n)
	}
	if got := testutil.ToFloat64(evicted); got != 0 {
		t.Errorf("forgetting idle clients counted %v evictions, want 0", got)
	}
}

// BenchmarkLimiterFlood is a flood from a new source every request: the table full,
// one client forgotten each time.
func BenchmarkLimiterFlood(b *testing.B) {
	l := New[netip.Addr](10, nil)
	now := time.Now()
	b.ReportAllocs()
	for i := range b.N {
		l.Allow(netip.AddrFrom4([4]byte{127, byte(i >> 16), byte(i >> 8), byte(i)}), now)
	}
}

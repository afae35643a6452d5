package service

import (
	"net"
	"net/http"
	"testing"
	"time"
)

// Held counts an HTTP listener's open connections, idle kept-alive ones included,
// and forgets each once it is closed.
func TestHeldTracksConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	held := &Held{}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {})}
	held.Track(srv)
	go srv.Serve(ln)
	defer srv.Close()

	var conns []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")) // answered, then idle
	}
	waitFor(t, held, 3)
	for _, c := range conns {
		c.Close()
	}
	waitFor(t, held, 0)
	var none *Held
	none.Add(1)
	if none.Count() != 0 {
		t.Error("a nil Held counts")
	}
}

func waitFor(t *testing.T, h *Held, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for h.Count() != want {
		if time.Now().After(deadline) {
			t.Fatalf("Held counts %d connections, want %d", h.Count(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

package api

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/infrad/infrad/internal/testenv"
	"github.com/infrad/infrad/pkg/service"
)

// TestTimeouts: a client that trickles a body, or keeps a connection idle, is cut off
// (short bounds here; the defaults are service.DefaultHTTPTimeouts).
func TestTimeouts(t *testing.T) {
	port := testenv.FreePort(t)
	s := newServerWith(t, func(o *Options) {
		o.Listen = netip.MustParseAddrPort(fmt.Sprintf("127.0.0.1:%d", port))
		o.Timeouts = service.HTTPTimeouts{Read: 300 * time.Millisecond, Idle: 300 * time.Millisecond}
	})
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(context.Background()) })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	dial := func() net.Conn {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		return conn
	}
	answer := testenv.Trickle(t, dial(), addr, "/api/v1/hosts", testToken, 10*time.Second)
	if code := testenv.Status(answer); code != http.StatusRequestTimeout || !strings.Contains(answer, "request_timeout") {
		t.Errorf("the trickled request: %q, want 408 request_timeout", answer)
	}
	if !testenv.IdleClosed(t, dial(), addr, "/healthz", 10*time.Second) {
		t.Errorf("an idle connection stayed open")
	}
}

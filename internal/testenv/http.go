package testenv

import (
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// Trickle sends conn a request whose body comes a byte at a time, 20 a second, and
// returns what the server answered (empty if it just closed the connection) once it
// gave up on the body. It fails the test if the server still waited after limit: a
// server without a read timeout lets a client hold a connection as long as it likes.
func Trickle(t testing.TB, conn net.Conn, host, path, token string, limit time.Duration) string {
	t.Helper()
	defer conn.Close()
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{", path, host, token)
	answer := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(conn)
		answer <- string(b)
	}()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(limit)
	for {
		select {
		case a := <-answer:
			return a
		case <-tick.C:
			conn.Write([]byte(" "))
		case <-deadline:
			t.Fatalf("the server still reads a trickled body after %s", limit)
			return ""
		}
	}
}

// Status is the status code of an HTTP/1.1 answer, or 0.
func Status(answer string) int {
	var code int
	if line, _, _ := strings.Cut(answer, "\r\n"); strings.HasPrefix(line, "HTTP/1.1 ") {
		fmt.Sscanf(line, "HTTP/1.1 %d", &code)
	}
	return code
}

// IdleClosed reports whether the server closes conn, idle after one answered request,
// within limit.
func IdleClosed(t testing.TB, conn net.Conn, host, path string, limit time.Duration) bool {
	t.Helper()
	defer conn.Close()
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, host)
	conn.SetReadDeadline(time.Now().Add(limit))
	_, err := io.ReadAll(conn) // the answer, then EOF when the server closes the idle connection
	return err == nil
}

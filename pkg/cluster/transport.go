package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/infrad/infrad/pkg/pki"
)

// The cluster port carries two things over mutual TLS: Raft's stream (ALPN
// protoRaft) and the nodes' own HTTP requests (forwarded writes, state, joining).
// One listener accepts both and hands each connection to its server by the protocol
// the TLS handshake settled.

const (
	protoRaft = "infrad-raft/1"
	protoHTTP = "http/1.1"
)

// handshakeTimeout bounds a TLS handshake on the cluster port.
const handshakeTimeout = 5 * time.Second

// tlsConfigs are the cluster port's TLS settings, server and client, for one node.
type tlsConfigs struct {
	id *pki.NodeIdentity
}

// verify accepts a peer only with a node's certificate from the site's root.
func (c tlsConfigs) verify(rawCerts [][]byte, _ [][]*x509.Certificate) error {
	_, err := pki.VerifyNode(c.id.Root, rawCerts)
	return err
}

func (c tlsConfigs) server() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS13,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return c.id.Certificate() },
		// A joining node has no certificate yet: the join handler asks for its
		// token instead; every other handler and Raft's stream need a node's.
		ClientAuth: tls.RequestClientCert,
		VerifyPeerCertificate: func(raw [][]byte, chains [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return nil
			}
			return c.verify(raw, chains)
		},
		NextProtos: []string{protoRaft, protoHTTP},
	}
}

func (c tlsConfigs) client(proto string) *tls.Config {
	return &tls.Config{
		MinVersion:            tls.VersionTLS13,
		GetClientCertificate:  func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return c.id.Certificate() },
		InsecureSkipVerify:    true, // the peer is checked by verify: a node's certificate from the site's root
		VerifyPeerCertificate: c.verify,
		NextProtos:            []string{proto},
	}
}

// isNode says whether the TLS peer showed a node's certificate (the handshake checked it).
func isNode(cs *tls.ConnectionState) bool { return cs != nil && len(cs.PeerCertificates) > 0 }

// portMux accepts the cluster port's connections, completes their handshakes, and
// queues each for Raft or for HTTP.
type portMux struct {
	ln   net.Listener
	cfg  *tls.Config
	raft *connQueue
	http *connQueue
}

func newPortMux(ln net.Listener, cfg *tls.Config) *portMux {
	m := &portMux{ln: ln, cfg: cfg, raft: newConnQueue(ln.Addr()), http: newConnQueue(ln.Addr())}
	go m.serve()
	return m
}

func (m *portMux) serve() {
	for {
		c, err := m.ln.Accept()
		if err != nil {
			m.raft.Close()
			m.http.Close()
			return
		}
		go m.sort(c)
	}
}

func (m *portMux) sort(c net.Conn) {
	tc := tls.Server(c, m.cfg)
	_ = tc.SetDeadline(time.Now().Add(handshakeTimeout))
	if err := tc.Handshake(); err != nil {
		c.Close()
		return
	}
	_ = tc.SetDeadline(time.Time{})
	cs := tc.ConnectionState()
	q := m.http
	if cs.NegotiatedProtocol == protoRaft {
		if !isNode(&cs) {
			c.Close()
			return
		}
		q = m.raft
	}
	if !q.put(tc) {
		c.Close()
	}
}

func (m *portMux) Close() error { return m.ln.Close() }

// connQueue is a net.Listener fed by portMux.
type connQueue struct {
	addr  net.Addr
	conns chan net.Conn
	once  sync.Once
	done  chan struct{}
}

func newConnQueue(addr net.Addr) *connQueue {
	return &connQueue{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

func (q *connQueue) put(c net.Conn) bool {
	select {
	case q.conns <- c:
		return true
	case <-q.done:
		return false
	}
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.conns:
		return c, nil
	case <-q.done:
		return nil, net.ErrClosed
	}
}

func (q *connQueue) Close() error {
	q.once.Do(func() { close(q.done) })
	return nil
}

func (q *connQueue) Addr() net.Addr { return q.addr }

// streamLayer is Raft's network stream over the cluster port's TLS.
type streamLayer struct {
	*connQueue
	advertise net.Addr
	client    *tls.Config
}

var _ raft.StreamLayer = (*streamLayer)(nil)

func (s *streamLayer) Addr() net.Addr { return s.advertise }

func (s *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	c, err := tls.DialWithDialer(d, "tcp", string(address), s.client)
	if err != nil {
		return nil, err
	}
	if c.ConnectionState().NegotiatedProtocol != protoRaft {
		c.Close()
		return nil, errors.New("the peer does not speak infrad's Raft")
	}
	return c, nil
}

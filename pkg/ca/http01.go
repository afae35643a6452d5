package ca

import (
	"fmt"
	"sync"

	"github.com/smallstep/certificates/acme"
)

// step-ca fetches http-01 challenges on the port in acme.InsecurePortHTTP01, the
// library's package state, which it reads unsynchronized while it validates. So it is
// set once per process, here alone, by the first CA that starts; a later start that
// asks for another port (a reload that changed ca.http01_port) is refused, naming the
// setting, rather than changing it under a validation in flight.
var http01 struct {
	once sync.Once
	port int
}

func useHTTP01Port(port int) error {
	http01.once.Do(func() {
		http01.port = port
		acme.InsecurePortHTTP01 = port
	})
	if http01.port != port {
		return fmt.Errorf("ca.http01_port changed from %d to %d: restart infrad to apply it (0: port 80)", http01.port, port)
	}
	return nil
}

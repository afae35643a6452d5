package boot

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"time"

	"github.com/pin/tftp/v3"
)

// TFTP's bounds: a client that stops acknowledging is given up after its retries; a
// block is at most what one Ethernet frame carries, whatever blksize the client asks
// (RFC 2348); and transfers at once are bounded, in all and per client, so that a
// flood of read requests holds neither sockets nor memory.
const (
	tftpTimeout  = 3 * time.Second
	tftpRetries  = 5
	tftpMaxBlock = 1468
	maxTransfers = 64
	maxPerClient = 4
)

// readFile serves one TFTP read request: a Raspberry Pi's file (tftpFile), a file
// below the boot root, or one of the box's iPXE binaries. Nothing is written: the
// server has no write handler.
func (s *Service) readFile(name string, rf io.ReaderFrom) error {
	ot, ok := rf.(tftp.OutgoingTransfer)
	if !ok {
		return errors.New("not a read transfer")
	}
	ra := ot.RemoteAddr()
	client := ra.AddrPort().Addr().Unmap()
	if !s.admit(client) {
		s.metrics.tftp.WithLabelValues("refused").Inc()
		s.log.Debug("tftp request refused: too many transfers", "client", client, "file", name)
		return errors.New("too many transfers at once: try again")
	}
	defer s.release(client)
	var local netip.Addr
	if info, ok := rf.(tftp.RequestPacketInfo); ok {
		local, _ = netip.AddrFromSlice(info.LocalIP())
		local = local.Unmap()
	}
	f, size, err := s.tftpFile(name, client, local)
	if err != nil {
		s.metrics.tftp.WithLabelValues("not_found").Inc()
		s.log.Debug("tftp file not found", "client", client, "file", name, "err", err)
		return fmt.Errorf("%s: no such file", name)
	}
	defer f.Close()
	ot.SetSize(size) // the tsize option (RFC 2349), when the client asked
	n, err := rf.ReadFrom(f)
	if err != nil {
		s.metrics.tftp.WithLabelValues("failed").Inc()
		s.log.Debug("tftp transfer failed", "client", client, "file", name, "err", err)
		return nil // the transfer has ended: nothing more to send
	}
	s.metrics.tftp.WithLabelValues("sent").Inc()
	s.metrics.tftpBytes.Add(float64(n))
	s.note(Event{Step: "tftp", Client: client, File: name})
	return nil
}

// tftpFile is what a TFTP read of name gets: a Pi's file, else a file below the
// root or one of the box's iPXE binaries.
func (s *Service) tftpFile(name string, client, local netip.Addr) (io.ReadCloser, int64, error) {
	if rc, size, ok, err := s.piFile(name, client, local); ok {
		if err != nil {
			return nil, 0, fmt.Errorf("%s: %w", name, err)
		}
		return rc, size, nil
	}
	f, err := s.open(name)
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, errors.Join(err, fs.ErrNotExist)
	}
	return f, fi.Size(), nil
}

// admit takes a transfer slot for client, when one is free.
func (s *Service) admit(client netip.Addr) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running >= maxTransfers || s.clients[client] >= maxPerClient {
		return false
	}
	s.running++
	s.clients[client]++
	return true
}

func (s *Service) release(client netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.running--
	if s.clients[client]--; s.clients[client] <= 0 {
		delete(s.clients, client)
	}
}

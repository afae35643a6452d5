package api

import (
	"fmt"
	"net/http"
	"time"
)

// backup streams a hot, consistent copy of the store: a bbolt file that infrad opens
// as it is (see the README for restoring one).
func (s *Server) backup(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="infrad-%s.db"`, time.Now().UTC().Format("20060102-150405")))
	if _, err := s.opts.Backup(w); err != nil {
		s.log.Error("backup failed part-way", "err", err) // the status is sent: the client sees a short file
	}
	return nil
}

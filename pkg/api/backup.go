package api

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/infrad/infrad/pkg/config"
	"github.com/infrad/infrad/pkg/ipam"
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

// planBody is what POST /api/v1/plan answers.
type planBody struct {
	Changes []ipam.Change `json:"changes"`
	Deletes int           `json:"deletes"`
}

// plan takes a site file (YAML, at most maxBody) and answers what reloading it would
// change, changing nothing; a file with mistakes is 422 with every mistake.
func (s *Server) plan(w http.ResponseWriter, r *http.Request) error {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return errorf(http.StatusRequestEntityTooLarge, "too_large", "the site file is larger than %d bytes", maxBody)
	}
	if err != nil {
		return err
	}
	changes, err := s.opts.Plan("site.yaml", data)
	var mistakes config.Errors
	if errors.As(err, &mistakes) {
		return errorf(http.StatusUnprocessableEntity, "invalid", "%s", mistakes.Error())
	}
	if err != nil {
		return err
	}
	body := planBody{Changes: changes}
	if body.Changes == nil {
		body.Changes = []ipam.Change{}
	}
	for _, c := range changes {
		if c.Op == "-" {
			body.Deletes++
		}
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}

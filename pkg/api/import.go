package api

import (
	"net/http"

	"github.com/infrad/infrad/pkg/ipam"
)

// maxImport bounds an import's body: a site moving in with tens of thousands of hosts.
const maxImport = 16 << 20

// importSite applies what `infrad import` translated, all of it or none, or with
// dry_run says what it would change and what it would break, changing nothing.
func (s *Server) importSite(w http.ResponseWriter, r *http.Request) error {
	var spec ipam.ImportSpec
	if err := decodeUpTo(w, r, &spec, maxImport); err != nil {
		return err
	}
	plan, err := s.opts.IPAM.Import(r.Context(), spec)
	if plan.Changes == nil {
		plan.Changes = []ipam.Change{}
	}
	if plan.Problems == nil {
		plan.Problems = []ipam.ImportProblem{}
	}
	status := http.StatusOK
	if plan.Imported != nil {
		status = http.StatusCreated
	}
	return reply(w, status, plan, err)
}

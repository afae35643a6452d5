package api

import (
	"context"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/infrad/infrad/pkg/cluster"
)

// Cluster is the node this infrad is of its cluster (one box: a cluster of one).
type Cluster interface {
	Status() cluster.Status
	Remove(ctx context.Context, name string) error
}

// clusterStatus is the cluster's nodes, roles, leader, last contact and lag.
func (s *Server) clusterStatus(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, s.opts.Cluster.Status())
	return nil
}

// removeNode takes a node out of the cluster's voters.
func (s *Server) removeNode(w http.ResponseWriter, r *http.Request) error {
	name := chi.URLParam(r, "name")
	st := s.opts.Cluster.Status()
	found := false
	for _, n := range st.Nodes {
		found = found || n.Name == name
	}
	switch {
	case !found:
		return errorf(http.StatusNotFound, "not_found", "node %q is not one of the cluster's nodes", name)
	case name == st.Node:
		return errorf(http.StatusConflict, "conflict", "node %q is the one answering: ask another node to remove it", name)
	}
	if err := s.opts.Cluster.Remove(r.Context(), name); err != nil {
		return errorf(http.StatusServiceUnavailable, "no_quorum", "%v", err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

package access

import (
	"fmt"
	"strings"

	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/types"
)

// ResourceScope is the restriction a certificate issued with resource access requests
// carries: besides what its roles allow, a Kubernetes request must fall inside one of
// the requested resources.
//   - a kube_cluster resource allows everything in that cluster;
//   - a namespace allows requests in that namespace and a get of the namespace itself,
//     and a cluster-wide list or watch is filtered to the namespace's items;
//   - a pod allows that pod and its subresources (exec, logs, …), and a list or watch
//     of pods in its namespace or across namespaces is filtered to it.
//
// Requests that are not about resources (discovery, /version, OpenAPI) are allowed, so
// that kubectl works. Everything else is refused: deny by default.
type ResourceScope struct {
	ids []types.ResourceID
}

// NewResourceScope parses a certificate's allowed resources; it returns nil (no
// restriction) when there are none.
func NewResourceScope(ids []string) (*ResourceScope, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	s := &ResourceScope{}
	for _, v := range ids {
		id, err := types.ParseResourceID(v)
		if err != nil {
			return nil, fmt.Errorf("certificate's allowed resources: %w", err)
		}
		s.ids = append(s.ids, id)
	}
	return s, nil
}

// String lists the scope's resources, for messages.
func (s *ResourceScope) String() string {
	parts := make([]string, len(s.ids))
	for i, id := range s.ids {
		parts[i] = id.String()
	}
	return strings.Join(parts, ", ")
}

// Covers reports whether some resource of the scope is in kube cluster cluster: the
// cluster part of the decision, which `tsh kube ls` shows.
func (s *ResourceScope) Covers(cluster string) bool {
	for _, id := range s.ids {
		if id.KubeCluster == cluster {
			return true
		}
	}
	return false
}

// Authorize decides req on kube cluster cluster. A nil filter with a nil error allows
// the request whole; a non-nil filter allows it with each listed or watched item
// checked.
func (s *ResourceScope) Authorize(cluster string, req ResourceRequest) (func(ns, name string) bool, error) {
	var filters []types.ResourceID
	inCluster := false
	for _, id := range s.ids {
		if id.KubeCluster != cluster {
			continue
		}
		inCluster = true
		switch id.Kind {
		case types.ResourceKubeCluster:
			return nil, nil
		case types.ResourceNamespace:
			switch {
			case !req.IsResourceRequest, req.Namespace == id.Namespace,
				req.APIGroup == "" && req.Resource == "namespaces" && req.Name == id.Namespace && req.Subresource == "":
				return nil, nil
			case req.Namespace == "" && isCollection(req.Verb):
				filters = append(filters, id)
			}
		case types.ResourcePod:
			isPods := req.APIGroup == "" && req.Resource == "pods"
			switch {
			case !req.IsResourceRequest,
				isPods && req.Namespace == id.Namespace && req.Name == id.Name:
				return nil, nil
			case isPods && isCollection(req.Verb) && req.Name == "" && (req.Namespace == "" || req.Namespace == id.Namespace):
				filters = append(filters, id)
			}
		}
	}
	if !inCluster {
		return nil, errs.AccessDeniedf("access denied: this certificate's access requests grant only %s, not kube cluster %q", s, cluster)
	}
	if len(filters) == 0 {
		return nil, errs.AccessDeniedf("access denied: this certificate's access requests grant only %s, which does not cover this request", s)
	}
	return func(ns, name string) bool {
		for _, id := range filters {
			if ns == id.Namespace && (id.Kind == types.ResourceNamespace || name == id.Name) {
				return true
			}
		}
		return false
	}, nil
}

func isCollection(verb string) bool { return verb == "list" || verb == "watch" }

package auth

import (
	"github.com/keyport/keyport/internal/tlsca"
	"github.com/keyport/keyport/internal/types"
)

// CanReachKubeCluster reports whether id's roles grant kc by labels, for `kube ls`. The
// full decision (groups, users, resources) belongs to the proxy's access package; this
// answers only "is the cluster listed as reachable".
func (s *Server) CanReachKubeCluster(id *tlsca.Identity, kc *types.KubeCluster) bool {
	if id == nil || id.SystemRole != "" {
		return id != nil && id.SystemRole == SystemAdmin
	}
	if id.KubeCluster != "" && id.KubeCluster != kc.GetName() {
		return false
	}
	allowed := false
	for _, r := range s.cache.Roles(id.Roles) {
		if labelsMatch(r.Spec.Deny.KubernetesLabels, kc.Metadata.Labels) {
			return false
		}
		if labelsMatch(r.Spec.Allow.KubernetesLabels, kc.Metadata.Labels) {
			allowed = true
		}
	}
	return allowed
}

// labelsMatch is the label-selector rule of SPEC section 6 at its simplest: every key of
// the selector must match. '*': '*' matches everything.
func labelsMatch(sel types.Labels, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, vals := range sel {
		if k == types.Wildcard {
			if matchAny(vals, types.Wildcard) {
				continue
			}
			return false
		}
		v, ok := labels[k]
		if !ok || !matchAny(vals, v) {
			return false
		}
	}
	return true
}

func matchAny(patterns []string, v string) bool {
	for _, p := range patterns {
		if p == types.Wildcard || p == v {
			return true
		}
	}
	return false
}

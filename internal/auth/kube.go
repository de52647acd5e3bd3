package auth

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/keyport/keyport/internal/access"
	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/tlsca"
	"github.com/keyport/keyport/internal/types"
)

// kube.go holds the kube clusters as the Auth Service sees them: the heartbeats that
// register them and the listing of which of them a caller may reach.

// HeartbeatKubeClusters records the clusters a Kubernetes Service serves, expiring unless
// renewed. A Kubernetes Service (system role kube) speaks only for itself: the cluster is
// registered under its own name whatever the request says, because the proxy's tunnel
// routing trusts the registration's service name, and it may not take over a cluster that
// another, live service registered.
func (s *Server) HeartbeatKubeClusters(ctx context.Context, actor Actor, clusters []*types.KubeCluster, ttl time.Duration) error {
	if ttl <= 0 {
		ttl = time.Minute
	}
	now := s.cfg.Clock.Now()
	id := actor.Identity
	for _, kc := range clusters {
		if kc.Spec.Service == "" || (id != nil && id.SystemRole == SystemKube) {
			kc.Spec.Service = actor.Name()
		}
		if id != nil && id.SystemRole == SystemKube {
			if r, err := s.cache.Get(types.KindKubeCluster, kc.GetName()); err == nil {
				if cur := r.(*types.KubeCluster); cur.Spec.Service != kc.Spec.Service && !expired(cur, now) {
					return errs.AlreadyExistsf("kube cluster %q is served by %q; a second Kubernetes Service may not take it over", kc.GetName(), cur.Spec.Service)
				}
			}
		}
	}
	exp := now.Add(ttl).UTC()
	for _, kc := range clusters {
		kc.Metadata.Expires = &exp
		if err := kc.CheckAndSetDefaults(); err != nil {
			return err
		}
		it, err := itemFor(kc)
		if err != nil {
			return err
		}
		if _, err := s.cfg.Backend.Put(ctx, it); err != nil {
			return err
		}
	}
	return nil
}

func expired(r types.Resource, now time.Time) bool {
	exp := r.GetMetadata().Expires
	return exp != nil && !now.Before(*exp)
}

// KubeClusters lists the registered clusters, sorted by name.
func (s *Server) KubeClusters() []*types.KubeCluster {
	var out []*types.KubeCluster
	for _, r := range s.cache.List(types.KindKubeCluster) {
		out = append(out, r.(*types.KubeCluster))
	}
	slices.SortFunc(out, func(a, b *types.KubeCluster) int { return strings.Compare(a.GetName(), b.GetName()) })
	return out
}

// KubeClusterView is one registered cluster and whether the caller may reach it.
type KubeClusterView struct {
	Cluster   *types.KubeCluster
	Reachable bool
}

// KubeClustersFor lists the registered clusters with, for each, whether id may reach it
// (`tctl kube ls`, `tsh kube ls`, `tsh kube login`). The answer is package access's
// cluster decision, the one the proxy makes on every request, so that a cluster listed as
// reachable is one the proxy serves and the reverse. Keyport's own services reach no
// cluster through the proxy; the local admin identity sees every cluster as reachable
// (its tctl needs no Kubernetes access, but it may sign a certificate that has it).
func (s *Server) KubeClustersFor(id *tlsca.Identity) ([]KubeClusterView, error) {
	clusters := s.KubeClusters()
	out := make([]KubeClusterView, len(clusters))
	for i, kc := range clusters {
		out[i].Cluster = kc
	}
	if id == nil || id.SystemRole != "" {
		if id != nil && id.SystemRole == SystemAdmin {
			for i := range out {
				out[i].Reachable = true
			}
		}
		return out, nil
	}
	checker, err := access.NewChecker(s.cache.Roles(id.Roles), id.Traits)
	if err != nil {
		return nil, err
	}
	// A certificate issued with resource access requests reaches only their clusters.
	scope, err := access.NewResourceScope(id.AllowedResources)
	if err != nil {
		return nil, err
	}
	for i, kc := range clusters {
		out[i].Reachable = canReach(checker, scope, id, kc)
	}
	return out, nil
}

// canReach is the cluster part of an access decision: whether id, whose roles checker
// holds, may reach kc. A certificate routed to one cluster reaches only that one, and one
// issued with resource access requests only the clusters of its resources.
func canReach(checker *access.Checker, scope *access.ResourceScope, id *tlsca.Identity, kc *types.KubeCluster) bool {
	if id.KubeCluster != "" && id.KubeCluster != kc.GetName() {
		return false
	}
	if scope != nil && !scope.Covers(kc.GetName()) {
		return false
	}
	_, err := checker.CheckCluster(kc.GetName(), kc.Metadata.Labels)
	return err == nil
}

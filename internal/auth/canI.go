package auth

import (
	"context"
	"strings"

	"github.com/keyport/keyport/internal/access"
	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/types"
)

// ResourceAttributes is what a SubjectAccessReview asks about.
type ResourceAttributes struct {
	Verb, Group, Resource, Subresource, Namespace, Name string
}

// KubeReviewer asks a kube cluster's own RBAC (the Kubernetes Service does it with its
// credentials).
type KubeReviewer interface {
	SubjectAccessReview(ctx context.Context, cluster, user string, groups []string, attrs ResourceAttributes) (allowed bool, reason string, err error)
	// ResolveResource reads a resource name as kubectl does (short names, plural or
	// group-qualified) from the cluster's discovery, as user and groups.
	ResolveResource(ctx context.Context, cluster, user string, groups []string, resource string) (group, plural string, err error)
}

// SetKubeReviewer lets `kube can-i` consult the clusters of a Kubernetes Service in the
// same process.
func (s *Server) SetKubeReviewer(r KubeReviewer) { s.kubeReviewer = r }

// CanIResult is the answer of KubeCanI.
type CanIResult struct {
	Allowed  bool
	DeniedBy string // "keyport" or "kubernetes"
	Reason   string
	User     string
	Groups   []string
}

// KubeCanI combines Keyport's decision for a user or bot with the cluster's own. attrs.
// Resource is the resource as a person types it to kubectl (`deploy`, `pods/log`,
// `deployments.apps`); the cluster's discovery resolves it to a group and plural name
// before either decision, and attrs.Group is ignored.
func (s *Server) KubeCanI(ctx context.Context, userName, botName, cluster string, attrs ResourceAttributes) (*CanIResult, error) {
	var (
		username string
		roles    []string
		traits   map[string][]string
	)
	switch {
	case userName != "" && botName != "":
		return nil, errs.BadParameterf("give --user or --bot, not both")
	case botName != "":
		r, err := s.GetResource(ctx, types.KindBot, botName)
		if err != nil {
			return nil, err
		}
		bot := r.(*types.Bot)
		user, role := types.BotResourceNames(botName)
		username, roles, traits = user, append([]string{role}, bot.Spec.Roles...), bot.Spec.Traits
	case userName != "":
		r, err := s.GetResource(ctx, types.KindUser, userName)
		if err != nil {
			return nil, err
		}
		u := r.(*types.User)
		username, roles, traits = userName, u.Spec.Roles, u.Spec.Traits
	default:
		return nil, errs.BadParameterf("give --user or --bot")
	}
	r, err := s.cache.Get(types.KindKubeCluster, cluster)
	if err != nil {
		return nil, errs.NotFoundf("kube cluster %q is not registered (see tctl kube ls)", cluster)
	}
	kc := r.(*types.KubeCluster)
	no := func(by string, err error) *CanIResult { return &CanIResult{DeniedBy: by, Reason: err.Error()} }
	checker, err := access.NewChecker(s.cache.Roles(roles), traits)
	if err != nil {
		return nil, err
	}
	ca, err := checker.CheckCluster(cluster, kc.Metadata.Labels)
	if err != nil {
		return no("keyport", err), nil
	}
	user, groups, err := ca.Impersonation(username, "", nil)
	if err != nil {
		return no("keyport", err), nil
	}
	if s.kubeReviewer == nil {
		return nil, errs.BadParameterf("this auth process runs no Kubernetes Service; ask the one that serves %q", cluster)
	}
	name, sub, _ := strings.Cut(attrs.Resource, "/")
	if attrs.Group, attrs.Resource, err = s.kubeReviewer.ResolveResource(ctx, cluster, user, groups, name); err != nil {
		return nil, err
	}
	attrs.Subresource = sub
	req := access.ResourceRequest{IsResourceRequest: true, Verb: attrs.Verb, APIGroup: attrs.Group, Resource: attrs.Resource,
		Subresource: attrs.Subresource, Namespace: attrs.Namespace, Name: attrs.Name}
	if err := ca.CheckResource(req); err != nil {
		return no("keyport", err), nil
	}
	allowed, reason, err := s.kubeReviewer.SubjectAccessReview(ctx, cluster, user, groups, attrs)
	if err != nil {
		return nil, err
	}
	res := &CanIResult{Allowed: allowed, User: user, Groups: groups}
	if !allowed {
		res.DeniedBy = "kubernetes"
		res.Reason = reason
		if res.Reason == "" {
			res.Reason = "no RBAC rule of the cluster allows " + user + " (groups " + strings.Join(groups, ", ") + ") to " + attrs.Verb + " " + attrs.Resource
		}
	}
	return res, nil
}

package proxy

import (
	"slices"
	"sync"

	"k8s.io/apiserver/pkg/endpoints/request"

	"github.com/keyport/keyport/internal/access"
	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/tlsca"
	"github.com/keyport/keyport/internal/types"
)

// RoleSource returns roles by name (the watch-fed cache), so that role edits apply to
// live certificates within moments.
type RoleSource interface {
	Roles(names []string) []*types.Role
}

// maxCheckers bounds the decider's cache of compiled checkers; past it the cache starts
// over.
const maxCheckers = 4096

// AccessDecider decides with package access from the identity's current roles.
type AccessDecider struct {
	roles RoleSource

	mu       sync.Mutex
	checkers map[*tlsca.Identity]cachedChecker
}

// cachedChecker is a Checker and the role objects it was compiled from.
type cachedChecker struct {
	roles   []*types.Role
	checker *access.Checker
}

// NewAccessDecider returns a Decider over roles.
func NewAccessDecider(roles RoleSource) *AccessDecider {
	return &AccessDecider{roles: roles, checkers: map[*tlsca.Identity]cachedChecker{}}
}

// checker returns id's Checker, compiling one only when id is new or one of its roles
// changed. Compiling costs about 30 times the decision itself and, in a fresh handler
// goroutine, a stack growth. The role source replaces a role object when the role changes
// and never modifies one, so the same pointers mean the same roles and a changed or
// deleted role misses the cache on the very next request; traits come from id, which is
// immutable. (Authenticators that return a new *Identity per request only miss.)
func (d *AccessDecider) checker(id *tlsca.Identity) (*access.Checker, error) {
	roles := d.roles.Roles(id.Roles)
	d.mu.Lock()
	c, ok := d.checkers[id]
	d.mu.Unlock()
	if ok && slices.Equal(c.roles, roles) {
		return c.checker, nil
	}
	checker, err := access.NewChecker(roles, id.Traits)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	if len(d.checkers) >= maxCheckers {
		clear(d.checkers)
	}
	d.checkers[id] = cachedChecker{roles: roles, checker: checker}
	d.mu.Unlock()
	return checker, nil
}

// Decide implements Decider.
func (d *AccessDecider) Decide(id *tlsca.Identity, kc *types.KubeCluster, info *request.RequestInfo, reqUser string, reqGroups []string) (Decision, error) {
	checker, err := d.checker(id)
	if err != nil {
		return Decision{}, err
	}
	ca, err := checker.CheckCluster(kc.GetName(), kc.Metadata.Labels)
	if err != nil {
		return Decision{}, err
	}
	user, groups, err := ca.Impersonation(id.Username, reqUser, reqGroups)
	if err != nil {
		return Decision{}, err
	}
	req := ResourceRequestOf(info)
	filter, err := ca.Authorize(req)
	if err != nil {
		return Decision{}, err
	}
	// A certificate issued with resource access requests reaches only those resources.
	scope, err := access.NewResourceScope(id.AllowedResources)
	if err != nil {
		return Decision{}, errs.AccessDeniedf("%v", err)
	}
	var inScope func(ns, name string) bool
	if scope != nil {
		if inScope, err = scope.Authorize(kc.GetName(), req); err != nil {
			return Decision{}, err
		}
	}
	dec := Decision{User: user, Groups: groups}
	if isRecorded(info) {
		dec.Recording = types.RecordBestEffort
		for _, r := range d.roles.Roles(id.Roles) {
			if r.Spec.Options.RecordSession.Kubernetes == types.RecordStrict {
				dec.Recording = types.RecordStrict
			}
		}
	}
	switch {
	case filter && inScope != nil:
		dec.Allow = func(ns, name string) bool { return inScope(ns, name) && ca.ItemAllowed(req, ns, name) }
	case filter:
		dec.Allow = func(ns, name string) bool { return ca.ItemAllowed(req, ns, name) }
	case inScope != nil:
		dec.Allow = inScope
	}
	return dec, nil
}

// ResourceRequestOf maps the API server's parse of a request to access's terms.
func ResourceRequestOf(info *request.RequestInfo) access.ResourceRequest {
	return access.ResourceRequest{
		IsResourceRequest: info.IsResourceRequest,
		Verb:              info.Verb,
		APIGroup:          info.APIGroup,
		Resource:          info.Resource,
		Subresource:       info.Subresource,
		Namespace:         info.Namespace,
		Name:              info.Name,
	}
}

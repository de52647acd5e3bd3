package auth

import (
	"slices"

	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/tlsca"
	"github.com/keyport/keyport/internal/types"
)

// Rule verbs (SPEC section 6, `rules`).
const (
	VerbList   = "list"
	VerbRead   = "read"
	VerbCreate = "create"
	VerbUpdate = "update"
	VerbDelete = "delete"
)

// Actor is who is calling: the verified identity of the caller's certificate, and the
// address it came from.
type Actor struct {
	Identity *tlsca.Identity
	Addr     string
}

// Name is the actor's user name for audit events.
func (a Actor) Name() string {
	if a.Identity == nil {
		return ""
	}
	return a.Identity.Username
}

// Authorize checks that the actor's roles allow verb on resources of kind: some role's
// allow rule matches and no role's deny rule does. Keyport's own services and the local
// admin identity are allowed what their system role needs. Locks are not its business:
// the Auth API's edge (package authapi) checks them for every call that its table says
// a locked caller may not make.
func (s *Server) Authorize(a Actor, kind, verb string) error {
	id := a.Identity
	if id == nil {
		return errs.NotAuthenticatedf("this call needs a client certificate")
	}
	switch id.SystemRole {
	case SystemAdmin, SystemAuth:
		return nil
	case SystemProxy, SystemKube:
		if verb == VerbRead || verb == VerbList {
			return nil
		}
		if kind == types.KindKubeCluster && id.SystemRole == SystemKube {
			return nil
		}
		return errs.AccessDeniedf("access denied: %s service may not %s %s", id.SystemRole, verb, kind)
	}
	roles := s.cache.Roles(id.Roles)
	allowed := false
	for _, r := range roles {
		if ruleMatches(r.Spec.Deny.Rules, kind, verb) {
			return errs.AccessDeniedf("access denied to %s %s: role %s denies it", verb, kind, r.GetName())
		}
		if ruleMatches(r.Spec.Allow.Rules, kind, verb) {
			allowed = true
		}
	}
	if !allowed {
		return errs.AccessDeniedf("access denied to %s %s: no role of %s has a rule allowing it", verb, kind, id.Username)
	}
	return nil
}

func ruleMatches(rules []types.Rule, kind, verb string) bool {
	for _, r := range rules {
		if (slices.Contains(r.Resources, types.Wildcard) || slices.Contains(r.Resources, kind)) &&
			(slices.Contains(r.Verbs, types.Wildcard) || slices.Contains(r.Verbs, verb)) {
			return true
		}
	}
	return false
}

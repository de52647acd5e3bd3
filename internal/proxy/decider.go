package proxy

import (
	"k8s.io/apiserver/pkg/endpoints/request"

	"github.com/keyport/keyport/internal/access"
	"github.com/keyport/keyport/internal/tlsca"
	"github.com/keyport/keyport/internal/types"
)

// RoleSource returns roles by name (the watch-fed cache), so that role edits apply to
// live certificates within moments.
type RoleSource interface {
	Roles(names []string) []*types.Role
}

// AccessDecider decides with package access from the identity's current roles.
type AccessDecider struct {
	roles RoleSource
}

// NewAccessDecider returns a Decider over roles.
func NewAccessDecider(roles RoleSource) *AccessDecider { return &AccessDecider{roles: roles} }

// Decide implements Decider.
func (d *AccessDecider) Decide(id *tlsca.Identity, kc *types.KubeCluster, info *request.RequestInfo, reqUser string, reqGroups []string) (Decision, error) {
	checker, err := access.NewChecker(d.roles.Roles(id.Roles), id.Traits)
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
	dec := Decision{User: user, Groups: groups}
	if filter {
		dec.Allow = func(ns, name string) bool { return ca.ItemAllowed(req, ns, name) }
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

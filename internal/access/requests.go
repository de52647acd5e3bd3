package access

import (
	"fmt"
	"slices"
	"strings"

	"github.com/keyport/keyport/internal/types"
)

// This file is the access-request policy of roles: which roles a person may request
// (allow.request.roles, less deny.request.roles), which roles a resource request grants
// (allow.request.search_as_roles), how many reviews resolve a request, and whose requests
// a reviewer may review (allow.review_requests.roles, less deny.review_requests.roles).

// matchAny reports whether some pattern of patterns matches v.
func matchAny(patterns []string, v string) bool {
	for _, s := range patterns {
		p, err := compilePattern(s)
		if err == nil && p.match(v) {
			return true
		}
	}
	return false
}

// CheckRequestable returns nil when holders of roles may request every role of want,
// and otherwise an error naming the first that they may not.
func CheckRequestable(roles []*types.Role, want []string) error {
	for _, w := range want {
		allowed := false
		for _, r := range roles {
			if rq := r.Spec.Deny.Request; rq != nil && matchAny(rq.Roles, w) {
				return fmt.Errorf("role %q may not be requested: your role %s denies requesting it", w, r.GetName())
			}
			if rq := r.Spec.Allow.Request; rq != nil && matchAny(rq.Roles, w) {
				allowed = true
			}
		}
		if !allowed {
			return fmt.Errorf("role %q is not requestable: none of your roles (%s) lists it in allow.request.roles", w, roleNames(roles))
		}
	}
	return nil
}

// SearchAsRoles returns the roles a resource request by holders of roles grants:
// every allow.request.search_as_roles entry that names a role of all (globs match
// against all), less those a deny.request.search_as_roles names.
func SearchAsRoles(roles []*types.Role, all []string) []string {
	var out []string
	for _, name := range all {
		allowed, denied := false, false
		for _, r := range roles {
			if rq := r.Spec.Deny.Request; rq != nil && matchAny(rq.SearchAsRoles, name) {
				denied = true
			}
			if rq := r.Spec.Allow.Request; rq != nil && matchAny(rq.SearchAsRoles, name) {
				allowed = true
			}
		}
		if allowed && !denied && !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out
}

// Thresholds returns how many approvals grant, and how many denials deny, a request by
// holders of roles: the largest of their allow.request.thresholds, one of each by
// default.
func Thresholds(roles []*types.Role) (approve, deny int) {
	approve, deny = 1, 1
	for _, r := range roles {
		if rq := r.Spec.Allow.Request; rq != nil {
			for _, t := range rq.Thresholds {
				approve, deny = max(approve, t.Approve), max(deny, t.Deny)
			}
		}
	}
	return approve, deny
}

// CheckReviewable returns nil when holders of roles may review a request for requested
// roles: every requested role is covered by some allow.review_requests.roles and by no
// deny.review_requests.roles.
func CheckReviewable(roles []*types.Role, requested []string) error {
	for _, w := range requested {
		allowed := false
		for _, r := range roles {
			if rv := r.Spec.Deny.ReviewRequests; rv != nil && matchAny(rv.Roles, w) {
				return fmt.Errorf("you may not review requests for role %q: your role %s denies it", w, r.GetName())
			}
			if rv := r.Spec.Allow.ReviewRequests; rv != nil && matchAny(rv.Roles, w) {
				allowed = true
			}
		}
		if !allowed {
			return fmt.Errorf("you may not review requests for role %q: none of your roles lists it in allow.review_requests.roles", w)
		}
	}
	return nil
}

func roleNames(roles []*types.Role) string {
	names := make([]string, len(roles))
	for i, r := range roles {
		names[i] = r.GetName()
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// MatchPattern reports whether a role-style pattern (a literal, a '*' glob or a ^regex$)
// matches v; a malformed pattern matches nothing.
func MatchPattern(pattern, v string) bool { return matchAny([]string{pattern}, v) }

package access

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/keyport/keyport/internal/errs"
)

// SystemAuthenticated is the group every impersonation carries, as the API server gives
// it to every authenticated user: RBAC bindings (discovery, self-subject reviews) rely on it.
const SystemAuthenticated = "system:authenticated"

// ErrNoGroupsOrUsers is the cause of the refusal of a cluster whose granting roles give
// neither kubernetes_groups nor kubernetes_users.
var ErrNoGroupsOrUsers = errors.New("has no kubernetes_groups and no kubernetes_users")

const noGroupsHint = "add kubernetes_groups or kubernetes_users to one of its roles, or give the user the traits its templates expand (such as kubernetes_groups)"

// Impersonation decides whom a request acts as on a cluster (SPEC section 6), from the
// cluster's allowed Kubernetes users and groups (ClusterAccess.Users and Groups), what
// the client asked for with Impersonate-User/Impersonate-Group (kubectl --as and
// --as-group; "" and nil for nothing) and the identity's Keyport user name.
//
//   - No kubernetes_groups and no kubernetes_users at all: refused, with a message that
//     says exactly that. The Keyport-user-name fallback below does not rescue this
//     case: a role set that names no group and no user has granted the cluster but
//     nothing to do on it, and acting as a bare user name with only
//     system:authenticated would turn a configuration mistake into confusing 403s from
//     the API server instead of one clear 403 from Keyport.
//   - The user: the one requested, if it is among the allowed users; otherwise the
//     single allowed user. With no kubernetes_users (but some groups) the allowed users
//     are just the Keyport user name. Several allowed users and no request: refused,
//     asking the client to choose with --as.
//   - The groups: the requested ones, each of which must be allowed; otherwise every
//     allowed group. SystemAuthenticated is always added (and may always be requested).
//
// Refusals name what was refused and are of category access denied.
func Impersonation(allowedUsers, allowedGroups []string, requestedUser string, requestedGroups []string, keyportUser string) (user string, groups []string, err error) {
	if len(allowedUsers) == 0 && len(allowedGroups) == 0 {
		return "", nil, errs.New(errs.AccessDenied, "the role set that grants this cluster %w; %s", ErrNoGroupsOrUsers, noGroupsHint)
	}
	users := allowedUsers
	if len(users) == 0 {
		if keyportUser == "" {
			return "", nil, errs.BadParameterf("access: no Keyport user name to act as")
		}
		users = []string{keyportUser}
	}
	switch {
	case requestedUser != "":
		if !slices.Contains(users, requestedUser) {
			return "", nil, errs.AccessDeniedf("impersonating kubernetes user %q is not allowed (allowed: %s)", requestedUser, strings.Join(users, ", "))
		}
		user = requestedUser
	case len(users) == 1:
		user = users[0]
	default:
		return "", nil, errs.AccessDeniedf("several kubernetes users are allowed (%s); choose one with kubectl --as=USER (or Impersonate-User)", strings.Join(users, ", "))
	}
	if len(requestedGroups) == 0 {
		groups = make([]string, 0, len(allowedGroups)+1)
		groups = append(groups, allowedGroups...)
	} else {
		var refused []string
		for _, g := range requestedGroups {
			if g != SystemAuthenticated && !slices.Contains(allowedGroups, g) {
				refused = append(refused, g)
				continue
			}
			if !slices.Contains(groups, g) {
				groups = append(groups, g)
			}
		}
		if len(refused) > 0 {
			allowed := "none"
			if len(allowedGroups) > 0 {
				allowed = strings.Join(allowedGroups, ", ")
			}
			return "", nil, errs.AccessDeniedf("impersonating kubernetes %s %s is not allowed (allowed: %s)", plural(len(refused), "group", "groups"), quoteAll(refused), allowed)
		}
	}
	if !slices.Contains(groups, SystemAuthenticated) {
		groups = append(groups, SystemAuthenticated)
	}
	return user, groups, nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func quoteAll(s []string) string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = fmt.Sprintf("%q", v)
	}
	return strings.Join(q, ", ")
}

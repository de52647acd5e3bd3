package access

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/types"
)

// Checker holds one identity's roles compiled against its traits: label selectors,
// expanded kubernetes_groups/users and kubernetes_resources patterns are built once, in
// NewChecker, and never on a request. It is immutable apart from an internal cache and
// safe for concurrent use. Build a new one when the roles or traits change.
type Checker struct {
	roles []compiledRole
	names []string // every role's name, for messages
	// Deny applies from every role, whichever roles grant the cluster.
	deny       []rule
	denyGroups []namedPattern
	denyUsers  []namedPattern
	// grants caches the per-cluster part by the set of granting roles (a bit mask, so
	// only for up to 64 roles). Clusters with the same granting roles share one grant.
	grants sync.Map // uint64 → *grant
}

type compiledRole struct {
	name                    string
	allowLabels, denyLabels selector
	groups, users           []string // allow kubernetes_groups/users, templates expanded
	allow                   []rule
	// podsOnly marks a v5/v6 role: its kubernetes_resources restrict pods only and leave
	// every other resource unrestricted. A v5/v6 role with a kind '*' entry is not
	// podsOnly: '*' has its v7 meaning, "every kind", and that meaning is only real if the
	// role restricts every kind, as a v7 role does. (Teleport never accepted '*' before
	// v7, so no existing role changes meaning; the guide's v6 role, '*' everywhere,
	// grants everything either way.)
	podsOnly bool
	// noResources: the role has no allow kubernetes_resources at all, for the hint in a
	// "v6 grants no pods" refusal.
	noResources bool
	version     string
}

type namedPattern struct {
	role string
	pattern
}

// NewChecker compiles roles for an identity with the given traits. It fails on a role
// that validation should have refused (an unsupported version, a pattern that does not
// compile, a template it cannot expand), naming the role and the field: refusing access
// is better than guessing at a role's meaning.
func NewChecker(roles []*types.Role, traits map[string][]string) (*Checker, error) {
	c := &Checker{}
	for _, r := range roles {
		if r == nil {
			return nil, errs.BadParameterf("access: nil role")
		}
		cr, err := c.compileRole(r, traits)
		if err != nil {
			return nil, errs.BadParameterf("role %q: %v", r.GetName(), err)
		}
		c.roles = append(c.roles, cr)
		c.names = append(c.names, r.GetName())
	}
	return c, nil
}

func (c *Checker) compileRole(r *types.Role, traits map[string][]string) (compiledRole, error) {
	switch r.Version {
	case types.V5, types.V6, types.V7, types.V8:
	default:
		return compiledRole{}, fmt.Errorf("unsupported role version %q", r.Version)
	}
	cr := compiledRole{name: r.GetName(), version: r.Version}
	allow, deny := &r.Spec.Allow, &r.Spec.Deny
	var err error
	if cr.allowLabels, err = compileSelector(allow.KubernetesLabels, traits); err != nil {
		return cr, fmt.Errorf("allow.%w", err)
	}
	if cr.denyLabels, err = compileSelector(deny.KubernetesLabels, traits); err != nil {
		return cr, fmt.Errorf("deny.%w", err)
	}
	if cr.groups, err = expandAll(allow.KubernetesGroups, traits, "allow.kubernetes_groups"); err != nil {
		return cr, err
	}
	if cr.users, err = expandAll(allow.KubernetesUsers, traits, "allow.kubernetes_users"); err != nil {
		return cr, err
	}
	for _, f := range []struct {
		values []string
		path   string
		dst    *[]namedPattern
	}{
		{deny.KubernetesGroups, "deny.kubernetes_groups", &c.denyGroups},
		{deny.KubernetesUsers, "deny.kubernetes_users", &c.denyUsers},
	} {
		vals, err := expandAll(f.values, traits, f.path)
		if err != nil {
			return cr, err
		}
		for _, v := range vals {
			p, err := compilePattern(v)
			if err != nil {
				return cr, fmt.Errorf("%s: %w", f.path, err)
			}
			*f.dst = append(*f.dst, namedPattern{role: cr.name, pattern: p})
		}
	}
	cr.podsOnly = r.Version == types.V5 || r.Version == types.V6
	cr.noResources = len(allow.KubernetesResources) == 0
	for i, e := range allow.KubernetesResources {
		rl, err := compileRule(r, "allow", i, e)
		if err != nil {
			return cr, fmt.Errorf("allow.kubernetes_resources[%d]: %w", i, err)
		}
		if e.Kind == types.Wildcard {
			cr.podsOnly = false
		}
		cr.allow = append(cr.allow, rl)
	}
	for i, e := range deny.KubernetesResources {
		rl, err := compileRule(r, "deny", i, e)
		if err != nil {
			return cr, fmt.Errorf("deny.kubernetes_resources[%d]: %w", i, err)
		}
		c.deny = append(c.deny, rl)
	}
	return cr, nil
}

// expandAll expands the templates of a list of values, dropping those that expand to
// nothing, and removes duplicates.
func expandAll(values []string, traits map[string][]string, path string) ([]string, error) {
	var out []string
	for i, v := range values {
		vals, err := expand(v, traits)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", path, i, err)
		}
		for _, e := range vals {
			if !slices.Contains(out, e) {
				out = append(out, e)
			}
		}
	}
	return out, nil
}

// ClusterAccess is what an identity may do on one kube cluster: the Kubernetes users and
// groups it may act as and the kubernetes_resources of the roles that grant the
// cluster. It is immutable and safe for concurrent use.
type ClusterAccess struct {
	cluster string
	*grant
}

// grant is the cluster-independent part of ClusterAccess, shared between clusters with
// the same granting roles.
type grant struct {
	c             *Checker
	roles         []string // the roles that grant the cluster
	groups, users []string // sorted, deny removed
	allow         []rule
	podsOnlyRoles []string // granting v5/v6 roles: every non-pod resource is allowed
	podsHint      string   // why a v5/v6 role grants no pods, if one has no kubernetes_resources
}

// CheckCluster decides access to the kube cluster with the given name and labels (SPEC
// section 6): some role's allow kubernetes_labels must match and no role's deny
// kubernetes_labels may. The result carries the users, groups and resource rules of the
// granting roles only; deny rules come from every role.
func (c *Checker) CheckCluster(name string, labels map[string]string) (*ClusterAccess, error) {
	for i := range c.roles {
		if c.roles[i].denyLabels.match(labels) {
			return nil, errs.AccessDeniedf("access to kube cluster %q is denied by role %q: its deny kubernetes_labels match the cluster's labels (%s)",
				name, c.roles[i].name, formatLabels(labels))
		}
	}
	if len(c.roles) > 64 {
		var granted []int
		for i := range c.roles {
			if c.roles[i].allowLabels.match(labels) {
				granted = append(granted, i)
			}
		}
		if len(granted) == 0 {
			return nil, c.noGrant(name, labels)
		}
		return &ClusterAccess{cluster: name, grant: c.newGrant(granted)}, nil
	}
	var mask uint64
	for i := range c.roles {
		if c.roles[i].allowLabels.match(labels) {
			mask |= 1 << i
		}
	}
	if mask == 0 {
		return nil, c.noGrant(name, labels)
	}
	if g, ok := c.grants.Load(mask); ok {
		return &ClusterAccess{cluster: name, grant: g.(*grant)}, nil
	}
	var granted []int
	for i := range c.roles {
		if mask&(1<<i) != 0 {
			granted = append(granted, i)
		}
	}
	g, _ := c.grants.LoadOrStore(mask, c.newGrant(granted))
	return &ClusterAccess{cluster: name, grant: g.(*grant)}, nil
}

func (c *Checker) noGrant(name string, labels map[string]string) error {
	roles := "the identity has no roles"
	if len(c.names) > 0 {
		roles = "roles checked: " + strings.Join(c.names, ", ")
	}
	return errs.AccessDeniedf("no role grants access to kube cluster %q (labels %s); %s", name, formatLabels(labels), roles)
}

func (c *Checker) newGrant(granted []int) *grant {
	g := &grant{c: c}
	for _, i := range granted {
		r := &c.roles[i]
		g.roles = append(g.roles, r.name)
		g.groups = appendNew(g.groups, r.groups, c.denyGroups)
		g.users = appendNew(g.users, r.users, c.denyUsers)
		g.allow = append(g.allow, r.allow...)
		if r.podsOnly {
			g.podsOnlyRoles = append(g.podsOnlyRoles, r.name)
			if r.noResources && g.podsHint == "" {
				g.podsHint = fmt.Sprintf("; role %q is %s with no kubernetes_resources, which grants no pods in %s (add {kind: pod, namespace: '*', name: '*'}, or use role v7)", r.name, r.version, r.version)
			}
		}
	}
	slices.Sort(g.groups)
	slices.Sort(g.users)
	return g
}

// appendNew adds the values not yet in dst and not matched by any deny pattern.
func appendNew(dst, values []string, deny []namedPattern) []string {
	for _, v := range values {
		if slices.Contains(dst, v) || deniedBy(v, deny) != nil {
			continue
		}
		dst = append(dst, v)
	}
	return dst
}

func deniedBy(v string, deny []namedPattern) *namedPattern {
	for i := range deny {
		if deny[i].match(v) {
			return &deny[i]
		}
	}
	return nil
}

// Cluster returns the kube cluster's name.
func (a *ClusterAccess) Cluster() string { return a.cluster }

// Roles returns the names of the roles that grant the cluster, for the audit log.
func (a *ClusterAccess) Roles() []string { return slices.Clone(a.roles) }

// Groups returns the Kubernetes groups the identity may act as on the cluster: the union
// of the granting roles' kubernetes_groups, templates expanded, less every value any
// role's deny kubernetes_groups matches. system:authenticated is not included; the
// impersonation adds it.
func (a *ClusterAccess) Groups() []string { return slices.Clone(a.groups) }

// Users returns the Kubernetes users the identity may act as, built like Groups. Empty
// means "the Keyport user name" (see Impersonation).
func (a *ClusterAccess) Users() []string { return slices.Clone(a.users) }

// Impersonation decides the Impersonate-User and Impersonate-Group headers of a request
// to the cluster, given the identity's Keyport user name and what the client asked for
// with its own Impersonate-User/Impersonate-Group headers (kubectl --as/--as-group; ""
// and nil when it asked for nothing). See the package function Impersonation for the
// rules. Errors are access denied and name the cluster.
//
// One more rule applies here: when no role sets kubernetes_users, the Keyport user name
// stands in, and it too is subject to every role's deny kubernetes_users.
func (a *ClusterAccess) Impersonation(keyportUser, requestedUser string, requestedGroups []string) (string, []string, error) {
	if len(a.users) == 0 && len(a.groups) == 0 {
		return "", nil, errs.New(errs.AccessDenied, "kube cluster %q: the role set that grants it (roles %s) %w; %s",
			a.cluster, strings.Join(a.roles, ", "), ErrNoGroupsOrUsers, noGroupsHint)
	}
	if len(a.users) == 0 {
		if d := deniedBy(keyportUser, a.c.denyUsers); d != nil {
			return "", nil, errs.AccessDeniedf("kube cluster %q: no role sets kubernetes_users, so Keyport would act as your user name %q, but role %q denies kubernetes user %q",
				a.cluster, keyportUser, d.role, d.src)
		}
	}
	user, groups, err := Impersonation(a.users, a.groups, requestedUser, requestedGroups, keyportUser)
	if err != nil {
		return "", nil, errs.New(errs.KindOf(err), "kube cluster %q: %w", a.cluster, err)
	}
	return user, groups, nil
}

// CheckResource decides a request on the cluster by kubernetes_resources (SPEC section
// 6). A nil error means the request may go to the API server; for a list or watch,
// NeedsFiltering then says whether the response must be filtered with ItemAllowed.
func (a *ClusterAccess) CheckResource(req ResourceRequest) error {
	_, err := a.Authorize(req)
	return err
}

// NeedsFiltering reports whether an allowed list or watch must have its items (list
// responses) or events (watches) filtered with ItemAllowed, because the roles allow
// only part of the collection or deny part of it. It is false for a refused request.
func (a *ClusterAccess) NeedsFiltering(req ResourceRequest) bool {
	filter, err := a.Authorize(req)
	return err == nil && filter
}

// ItemAllowed reports whether one object of a filtered list or watch (req is the list
// or watch request) may be shown: namespace and name are the object's metadata.namespace
// and metadata.name ("" namespace for cluster-scoped objects). Drop the objects for which
// it is false, and the watch events that carry them.
func (a *ClusterAccess) ItemAllowed(req ResourceRequest, namespace, name string) bool {
	if !req.IsResourceRequest {
		return true
	}
	t := newTarget(req)
	for i := range a.c.deny {
		if a.c.deny[i].matchesObject(&t, namespace, name) {
			return false
		}
	}
	return a.allowsObject(&t, namespace, name)
}

// Authorize is CheckResource and NeedsFiltering in one pass, for the proxy's hot path.
//
// How a request is decided, deny first (deny beats allow):
//   - A request for one named object (get, update, patch, delete, exec, portforward, and
//     create with a name) is refused if any deny entry matches it, else allowed if an
//     allow entry of a granting role matches it.
//   - A request for a collection (list, watch, deletecollection; create without a name)
//     is refused if a deny entry covers all of it, or if no allow entry could match any
//     of it. A list or watch that deny touches in part, or that allow covers only in
//     part (other namespaces, other names), proceeds with needsFiltering set. Other
//     collection verbs cannot be filtered, so they need a full allow and no deny overlap.
//   - Granting v5/v6 roles without a kind '*' entry allow every resource except pods.
//   - get/list/watch of a namespace object is also allowed if the namespace matches an
//     allow entry's namespace with that verb (Teleport's read-only namespace rule).
//   - Non-resource requests are always allowed.
func (a *ClusterAccess) Authorize(req ResourceRequest) (needsFiltering bool, err error) {
	if !req.IsResourceRequest {
		return false, nil
	}
	t := newTarget(req)
	deny := a.c.deny
	if !t.collection {
		for i := range deny {
			if deny[i].matchesObject(&t, t.ns, t.name) {
				return false, a.deniedErr(req, &t, &deny[i])
			}
		}
		if a.allowsObject(&t, t.ns, t.name) {
			return false, nil
		}
		return false, a.notAllowedErr(req, &t)
	}
	var partialDeny *rule
	for i := range deny {
		if deny[i].coversCollection(&t) {
			return false, a.deniedErr(req, &t, &deny[i])
		}
		if partialDeny == nil && deny[i].mayMatchCollection(&t) {
			partialDeny = &deny[i]
		}
	}
	covered := a.allowsAllOf(&t)
	if !covered && !a.mayAllow(&t) {
		return false, a.notAllowedErr(req, &t)
	}
	needsFiltering = partialDeny != nil || !covered
	if needsFiltering && !t.filterable {
		if partialDeny != nil {
			return false, errs.AccessDeniedf("kube cluster %q: %s is refused: it could touch objects that %s denies, and Keyport cannot check %s objects one by one; name the objects instead",
				a.cluster, t.describe(req), partialDeny.desc, t.verbName)
		}
		return false, errs.AccessDeniedf("kube cluster %q: %s is refused: roles %s allow only some of the objects it could touch, and Keyport cannot check %s objects one by one; name the objects instead",
			a.cluster, t.describe(req), strings.Join(a.roles, ", "), t.verbName)
	}
	return needsFiltering, nil
}

func (g *grant) podsUnrestricted(t *target) bool {
	return len(g.podsOnlyRoles) > 0 && (t.group != "" || t.resource != "pods")
}

func (g *grant) allowsObject(t *target, ns, name string) bool {
	if g.podsUnrestricted(t) {
		return true
	}
	for i := range g.allow {
		if g.allow[i].matchesObject(t, ns, name) || g.allow[i].showsNamespace(t, name) {
			return true
		}
	}
	return false
}

func (g *grant) allowsAllOf(t *target) bool {
	if g.podsUnrestricted(t) {
		return true
	}
	for i := range g.allow {
		if g.allow[i].coversCollection(t) {
			return true
		}
	}
	return false
}

func (g *grant) mayAllow(t *target) bool {
	for i := range g.allow {
		if g.allow[i].mayMatchCollection(t) || g.allow[i].mayShowNamespaces(t) {
			return true
		}
	}
	return false
}

func (a *ClusterAccess) deniedErr(req ResourceRequest, t *target, r *rule) error {
	return errs.AccessDeniedf("kube cluster %q: %s is denied by %s", a.cluster, t.describe(req), r.desc)
}

func (a *ClusterAccess) notAllowedErr(req ResourceRequest, t *target) error {
	hint := ""
	if t.group == "" && t.resource == "pods" {
		hint = a.podsHint
	}
	return errs.AccessDeniedf("kube cluster %q: %s is not allowed: no kubernetes_resources entry of roles %s matches it%s",
		a.cluster, t.describe(req), strings.Join(a.roles, ", "), hint)
}

package access

import (
	"fmt"
	"strings"

	"github.com/keyport/keyport/internal/types"
)

// ResourceRequest is a Kubernetes API request as k8s.io/apiserver's RequestInfoFactory
// parses it. Pass its fields unchanged: the mapping to role verbs (exec, portforward)
// happens here, in RoleVerb, so that the proxy and the audit log cannot disagree on it.
type ResourceRequest struct {
	// IsResourceRequest is false for non-resource URLs (/api, /apis, /version, /openapi/…,
	// /healthz). Keyport lets those through: they carry no object, and the API server's
	// own RBAC, applied to the impersonated user and groups, decides them.
	IsResourceRequest bool
	// Verb is RequestInfo's verb: get, list, watch, create, update, patch, delete,
	// deletecollection (or proxy, for the legacy proxy paths).
	Verb        string
	APIGroup    string // "" for the core group
	Resource    string // plural: pods, deployments
	Subresource string // exec, log, status, …
	Namespace   string // "" for cluster-scoped objects and for requests across all namespaces
	// Name is the object's name; "" for list, watch, deletecollection and for create,
	// where the name is in the body. For create, a caller that reads metadata.name from
	// the body should put it here: with Name empty, only entries whose name is "*" allow
	// the request, and any deny entry that could match the new object refuses it.
	Name string
}

// The verbs of kubernetes_resources, as a bit set so that a rule's verbs are one AND.
type verbMask uint16

const (
	verbGet verbMask = 1 << iota
	verbList
	verbWatch
	verbCreate
	verbUpdate
	verbPatch
	verbDelete
	verbDeleteCollection
	verbExec
	verbPortForward
	verbOther // a request verb roles cannot name (e.g. the legacy "proxy"): only "*" allows it

	verbAll = verbOther<<1 - 1
)

var verbBits = map[string]verbMask{
	"get": verbGet, "list": verbList, "watch": verbWatch, "create": verbCreate,
	"update": verbUpdate, "patch": verbPatch, "delete": verbDelete,
	"deletecollection": verbDeleteCollection, "exec": verbExec, "portforward": verbPortForward,
}

// verbBit is a switch rather than a map lookup: it runs on every request and every item.
func verbBit(v string) verbMask {
	switch v {
	case "get":
		return verbGet
	case "list":
		return verbList
	case "watch":
		return verbWatch
	case "create":
		return verbCreate
	case "update":
		return verbUpdate
	case "patch":
		return verbPatch
	case "delete":
		return verbDelete
	case "deletecollection":
		return verbDeleteCollection
	case "exec":
		return verbExec
	case "portforward":
		return verbPortForward
	default:
		return verbOther
	}
}

// RoleVerb returns the verb a request is checked against in kubernetes_resources.
// Subresources are checked as their parent object, with these verbs:
//
//	pods/exec, pods/attach                 exec        (whatever the HTTP method; as in Teleport)
//	pods/portforward                       portforward
//	pods/ephemeralcontainers update/patch  exec        (kubectl debug starts a shell in the pod)
//	pods/eviction create                   delete      (an eviction deletes the pod)
//	pods/log                               the request's verb, get: reading logs is reading the pod
//	pods/proxy, services/proxy, nodes/proxy the request's verb (get, create, …) on the parent
//	everything else (status, scale, …)     the request's verb
//
// Keyport's rules only narrow what Kubernetes RBAC grants to the impersonated user and
// groups; the API server still checks pods/log, pods/proxy and the rest on its own.
func RoleVerb(req ResourceRequest) string {
	// pods/proxy, services/proxy and nodes/proxy reach into the workload (any HTTP
	// endpoint of it), as exec does: they need the exec verb, not just get.
	if req.APIGroup == "" && req.Subresource == "proxy" {
		return "exec"
	}
	if req.APIGroup == "" && req.Resource == "pods" {
		switch req.Subresource {
		case "exec", "attach":
			return "exec"
		case "portforward":
			return "portforward"
		case "ephemeralcontainers":
			if req.Verb == "update" || req.Verb == "patch" {
				return "exec"
			}
		case "eviction":
			if req.Verb == "create" {
				return "delete"
			}
		}
	}
	return req.Verb
}

// rule is one compiled kubernetes_resources entry.
type rule struct {
	desc  string // `role "x" deny kubernetes_resources[0] (kind pod, namespace "*", name "*", verbs [*])`
	role  string
	verbs verbMask
	// What it selects. nsKind is v7's kind namespace: its name selects namespaces, and it
	// covers the namespace object and everything in it. Otherwise anyResource or resource
	// selects the plural resource, and group the API group.
	nsKind      bool
	anyResource bool
	resource    string
	group       pattern
	// clusterWide marks a v7 cluster-wide kind (kube_node, clusterrole, …): Teleport
	// ignores the namespace of such entries, and so does Keyport.
	clusterWide bool
	ns, name    pattern
}

// compileRule compiles entry i of a role's allow or deny kubernetes_resources.
func compileRule(role *types.Role, side string, i int, e types.KubernetesResource) (rule, error) {
	r := rule{role: role.GetName()}
	verbs := e.Verbs
	if len(verbs) == 0 {
		// Validation lets v7/v8 entries leave verbs out. Read the gap the restrictive way
		// on both sides: an allow entry without verbs allows nothing (as in Teleport), a
		// deny entry without verbs denies every verb.
		if side == "deny" {
			r.verbs = verbAll
		}
	}
	for _, v := range verbs {
		if v == types.Wildcard {
			r.verbs = verbAll
			continue
		}
		bit, ok := verbBits[v]
		if !ok {
			return rule{}, fmt.Errorf("unknown verb %q", v)
		}
		r.verbs |= bit
	}
	var err error
	if r.ns, err = compilePattern(e.Namespace); err != nil {
		return rule{}, fmt.Errorf("namespace: %w", err)
	}
	if r.name, err = compilePattern(e.Name); err != nil {
		return rule{}, fmt.Errorf("name: %w", err)
	}
	switch role.Version {
	case types.V5, types.V6, types.V7:
		switch e.Kind {
		case types.Wildcard:
			r.anyResource, r.group = true, mustPattern(types.Wildcard)
		case "namespace":
			r.nsKind = true
		default:
			k, ok := types.KubeKindV7(e.Kind)
			if !ok || (role.Version != types.V7 && e.Kind != "pod") {
				return rule{}, fmt.Errorf("kind %q is not a role %s kind", e.Kind, role.Version)
			}
			// The table's groups are literals; "" is the core group.
			r.resource, r.group, r.clusterWide = k.Resource, mustPattern(k.APIGroup), k.ClusterWide
		}
	case types.V8:
		if e.Kind == types.Wildcard {
			r.anyResource = true
		} else {
			r.resource = e.Kind
		}
		if r.group, err = compilePattern(e.APIGroup); err != nil {
			return rule{}, fmt.Errorf("api_group: %w", err)
		}
	default:
		return rule{}, fmt.Errorf("unsupported role version %q", role.Version)
	}
	r.desc = fmt.Sprintf("role %q %s kubernetes_resources[%d] (%s)", r.role, side, i, describeEntry(role.Version, e))
	return r, nil
}

func describeEntry(version string, e types.KubernetesResource) string {
	var b strings.Builder
	fmt.Fprintf(&b, "kind %s", e.Kind)
	if version == types.V8 {
		fmt.Fprintf(&b, ", api_group %q", e.APIGroup)
	}
	if e.Namespace != "" {
		fmt.Fprintf(&b, ", namespace %s", e.Namespace)
	}
	fmt.Fprintf(&b, ", name %s, verbs [%s]", e.Name, strings.Join(e.Verbs, ", "))
	return b.String()
}

// target is a request reduced to what rules look at.
type target struct {
	verb       verbMask
	verbName   string
	group      string
	resource   string
	ns, name   string
	collection bool // list, watch, deletecollection, or a create whose name is unknown
	filterable bool // list and watch: the response can be filtered item by item
	scope      scope
}

func newTarget(req ResourceRequest) target {
	v := RoleVerb(req)
	t := target{
		verb: verbBit(v), verbName: v,
		group: req.APIGroup, resource: req.Resource, ns: req.Namespace, name: req.Name,
	}
	// RequestInfo sets Namespace to the name for /api/v1/namespaces/NAME; the namespace
	// object itself is cluster-scoped, and rules must see it that way.
	if t.group == "" && t.resource == "namespaces" {
		t.ns = ""
	}
	switch t.verb {
	case verbList, verbWatch:
		t.collection, t.filterable = true, true
	case verbDeleteCollection:
		t.collection = true
	default:
		t.collection = t.name == ""
	}
	if t.collection {
		// Only collections need the scope; skipping the lookup keeps per-item checks cheap.
		t.scope = scopeOf(t.group, t.resource)
	}
	return t
}

func (t *target) isNamespaceObject() bool { return t.group == "" && t.resource == "namespaces" }

// scope says what Keyport knows about where a resource lives; it matters only for
// requests across all namespaces, which cannot tell on their own.
type scope uint8

const (
	scopeUnknown scope = iota
	scopeNamespaced
	scopeCluster
)

// v7KindNames are the kinds of the role v7 table (SPEC section 6); their scope comes from
// types.KubeKindV7, which a test keeps in step with this list.
var v7KindNames = []string{
	"pod", "secret", "configmap", "namespace", "service", "serviceaccount", "kube_node",
	"persistentvolume", "persistentvolumeclaim", "deployment", "replicaset", "statefulset",
	"daemonset", "clusterrole", "kube_role", "clusterrolebinding", "rolebinding", "cronjob",
	"job", "certificatesigningrequest", "ingress",
}

// knownScopes holds the v7 kinds plus common built-in resources. A resource missing here
// (a CRD) is scopeUnknown, which is always safe: it only turns a would-be 403 on a list
// across namespaces into a filtered, possibly empty, list.
var knownScopes = func() map[[2]string]scope {
	m := map[[2]string]scope{}
	for _, n := range v7KindNames {
		if k, ok := types.KubeKindV7(n); ok {
			s := scopeNamespaced
			if k.ClusterWide {
				s = scopeCluster
			}
			m[[2]string{k.APIGroup, k.Resource}] = s
		}
	}
	for _, r := range []string{"endpoints", "events", "limitranges", "podtemplates", "replicationcontrollers", "resourcequotas"} {
		m[[2]string{"", r}] = scopeNamespaced
	}
	for _, gr := range [][2]string{
		{"", "componentstatuses"},
		{"storage.k8s.io", "storageclasses"}, {"storage.k8s.io", "csidrivers"},
		{"storage.k8s.io", "csinodes"}, {"storage.k8s.io", "volumeattachments"},
		{"apiextensions.k8s.io", "customresourcedefinitions"},
		{"apiregistration.k8s.io", "apiservices"},
		{"admissionregistration.k8s.io", "mutatingwebhookconfigurations"},
		{"admissionregistration.k8s.io", "validatingwebhookconfigurations"},
		{"scheduling.k8s.io", "priorityclasses"}, {"node.k8s.io", "runtimeclasses"},
		{"networking.k8s.io", "ingressclasses"},
	} {
		m[gr] = scopeCluster
	}
	return m
}()

func scopeOf(group, resource string) scope { return knownScopes[[2]string{group, resource}] }

// selects reports whether the rule's kind and API group select the resource.
func (r *rule) selects(t *target) bool {
	return (r.anyResource || r.resource == t.resource) && r.group.match(t.group)
}

// matchesObject reports whether the rule matches one object, named by namespace and
// name ("" name: only "*"-like name patterns match).
func (r *rule) matchesObject(t *target, ns, name string) bool {
	if r.verbs&t.verb == 0 {
		return false
	}
	if r.nsKind {
		if ns != "" {
			return r.name.match(ns)
		}
		return t.isNamespaceObject() && r.name.match(name)
	}
	if !r.selects(t) {
		return false
	}
	if !r.clusterWide && !r.ns.match(ns) {
		return false
	}
	return r.name.match(name)
}

// showsNamespace is Teleport's read-only namespace rule, allow side only: whoever may
// get, list or watch something in a namespace may get, list and watch that namespace
// object, so that `kubectl get namespaces` and UIs such as Lens show where they can go.
func (r *rule) showsNamespace(t *target, name string) bool {
	return t.isNamespaceObject() && t.verb&(verbGet|verbList|verbWatch) != 0 &&
		r.verbs&t.verb != 0 && !r.nsKind && !r.clusterWide && !r.ns.onlyEmpty() && r.ns.match(name)
}

// nameCovers: every name the collection can hold matches.
func (r *rule) nameCovers(t *target) bool {
	if t.name != "" {
		return r.name.match(t.name)
	}
	return r.name.universal()
}

// coversCollection reports whether every object the collection request can touch is
// matched, so that the request needs no filtering.
func (r *rule) coversCollection(t *target) bool {
	if r.verbs&t.verb == 0 {
		return false
	}
	if r.nsKind {
		switch {
		case t.isNamespaceObject():
			return r.nameCovers(t)
		case t.ns != "":
			return r.name.match(t.ns)
		default:
			// Across all namespaces: every object is in some namespace only if the
			// resource is known to be namespaced.
			return t.scope == scopeNamespaced && r.name.universal()
		}
	}
	if !r.selects(t) {
		return false
	}
	if !r.clusterWide {
		switch {
		case t.ns != "":
			if !r.ns.match(t.ns) {
				return false
			}
		case t.scope == scopeCluster:
			if !r.ns.match("") {
				return false
			}
		default:
			if !r.ns.universal() {
				return false
			}
		}
	}
	return r.nameCovers(t)
}

// mayMatchCollection reports whether some object the collection request can touch could
// be matched.
func (r *rule) mayMatchCollection(t *target) bool {
	if r.verbs&t.verb == 0 {
		return false
	}
	nameMay := t.name == "" || r.name.match(t.name)
	if r.nsKind {
		switch {
		case t.isNamespaceObject():
			return nameMay
		case t.ns != "":
			return r.name.match(t.ns)
		default:
			return t.scope != scopeCluster
		}
	}
	if !r.selects(t) {
		return false
	}
	if !r.clusterWide {
		switch {
		case t.ns != "":
			if !r.ns.match(t.ns) {
				return false
			}
		case t.scope == scopeCluster:
			if !r.ns.match("") {
				return false
			}
		case t.scope == scopeNamespaced:
			if r.ns.onlyEmpty() {
				return false
			}
		}
	}
	return nameMay
}

// mayShowNamespaces is showsNamespace for a list or watch of namespaces.
func (r *rule) mayShowNamespaces(t *target) bool {
	if t.name != "" {
		return r.showsNamespace(t, t.name)
	}
	return t.isNamespaceObject() && t.verb&(verbList|verbWatch) != 0 &&
		r.verbs&t.verb != 0 && !r.nsKind && !r.clusterWide && !r.ns.onlyEmpty()
}

// describe renders a request for messages: `get pods "web" in namespace "dev"`.
func (t *target) describe(req ResourceRequest) string {
	var b strings.Builder
	b.WriteString(t.verbName)
	b.WriteByte(' ')
	b.WriteString(t.resource)
	if req.Subresource != "" {
		b.WriteByte('/')
		b.WriteString(req.Subresource)
	}
	if t.group != "" {
		b.WriteByte('.')
		b.WriteString(t.group)
	}
	if t.name != "" {
		fmt.Fprintf(&b, " %q", t.name)
	}
	switch {
	case t.ns != "":
		fmt.Fprintf(&b, " in namespace %q", t.ns)
	case t.collection && t.scope != scopeCluster && !t.isNamespaceObject():
		b.WriteString(" in all namespaces")
	}
	return b.String()
}

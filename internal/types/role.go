package types

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Role grants and denies access to kube clusters, to resources inside them and to
// Keyport's own API.
type Role struct {
	Header `yaml:",inline"`
	Spec   RoleSpec `yaml:"spec" json:"spec"`
}

// RoleSpec is the body of a role.
type RoleSpec struct {
	Options RoleOptions    `yaml:"options,omitempty" json:"options,omitzero"`
	Allow   RoleConditions `yaml:"allow,omitempty" json:"allow,omitzero"`
	Deny    RoleConditions `yaml:"deny,omitempty" json:"deny,omitzero"`
}

// RoleOptions are the role's settings that are not allow/deny conditions.
type RoleOptions struct {
	// MaxSessionTTL caps the lifetime of certificates issued to holders of the role.
	MaxSessionTTL Duration `yaml:"max_session_ttl,omitempty" json:"max_session_ttl,omitzero"`
	// RecordSession sets how Kubernetes exec and attach sessions are recorded.
	RecordSession RecordSession `yaml:"record_session,omitempty" json:"record_session,omitzero"`
}

// RecordSession is the role option record_session.
type RecordSession struct {
	// Kubernetes is best_effort (the default: a session whose recording fails goes on,
	// and the gap is recorded) or strict (a session that cannot be recorded does not
	// start, and one whose recording fails ends). Strict wins when roles differ.
	Kubernetes string `yaml:"kubernetes,omitempty" json:"kubernetes,omitempty"`
}

// Session recording modes.
const (
	RecordBestEffort = "best_effort"
	RecordStrict     = "strict"
)

// RoleConditions is one side (allow or deny) of a role.
type RoleConditions struct {
	KubernetesLabels    Labels               `yaml:"kubernetes_labels,omitempty" json:"kubernetes_labels,omitempty"`
	KubernetesGroups    []string             `yaml:"kubernetes_groups,omitempty" json:"kubernetes_groups,omitempty"`
	KubernetesUsers     []string             `yaml:"kubernetes_users,omitempty" json:"kubernetes_users,omitempty"`
	KubernetesResources []KubernetesResource `yaml:"kubernetes_resources,omitempty" json:"kubernetes_resources,omitempty"`
	Rules               []Rule               `yaml:"rules,omitempty" json:"rules,omitempty"`
	// JoinSessions lets the holder watch the live sessions of others (allow only).
	JoinSessions []SessionJoinPolicy `yaml:"join_sessions,omitempty" json:"join_sessions,omitempty"`
	// Request lists the roles the holder may request (access requests); under deny, the
	// roles they may not.
	Request *AccessRequestConditions `yaml:"request,omitempty" json:"request,omitempty"`
	// ReviewRequests lists the roles whose requests the holder may approve or deny.
	ReviewRequests *AccessReviewConditions `yaml:"review_requests,omitempty" json:"review_requests,omitempty"`
}

// AccessRequestConditions is a role's allow.request (or deny.request).
type AccessRequestConditions struct {
	// Roles the holder may request, whole ('*' globs).
	Roles []string `yaml:"roles,omitempty" json:"roles,omitempty"`
	// SearchAsRoles are the roles a resource request grants, restricted to the requested
	// resources (a kube cluster, a namespace or a pod of it).
	SearchAsRoles []string `yaml:"search_as_roles,omitempty" json:"search_as_roles,omitempty"`
	// Thresholds say how many approvals grant a request and how many denials deny it;
	// the default is one of each. With several, the largest counts apply.
	Thresholds []AccessReviewThreshold `yaml:"thresholds,omitempty" json:"thresholds,omitempty"`
}

// AccessReviewThreshold is one entry of allow.request.thresholds.
type AccessReviewThreshold struct {
	Name    string `yaml:"name,omitempty" json:"name,omitempty"`
	Approve int    `yaml:"approve,omitempty" json:"approve,omitempty"`
	Deny    int    `yaml:"deny,omitempty" json:"deny,omitempty"`
}

// AccessReviewConditions is a role's allow.review_requests (or deny.review_requests).
type AccessReviewConditions struct {
	// Roles whose requests the holder may review ('*' globs). A request is reviewable
	// when every role it asks for is covered.
	Roles []string `yaml:"roles,omitempty" json:"roles,omitempty"`
}

// SessionJoinPolicy is one entry of allow.join_sessions, as in Teleport: the holder may
// join, in one of Modes, the live sessions of Kinds started by a user who holds one of
// Roles.
type SessionJoinPolicy struct {
	Name string `yaml:"name,omitempty" json:"name,omitempty"`
	// Roles are the session owner's roles this entry covers ('*' globs).
	Roles []string `yaml:"roles" json:"roles"`
	// Kinds: k8s (Kubernetes exec and attach sessions) or '*'.
	Kinds []string `yaml:"kinds" json:"kinds"`
	// Modes: observer (read-only) or '*'. Keyport has no peer or moderator mode yet.
	Modes []string `yaml:"modes" json:"modes"`
}

// Session join kinds and modes.
const (
	SessionKindKube  = "k8s"
	SessionModeWatch = "observer"
)

// KubernetesResource selects objects inside a kube cluster. Its meaning depends on the
// role version: v5–v7 use the singular kinds of the v7 table (see KubeKindV7), v8 uses
// plural API resource names qualified by APIGroup.
type KubernetesResource struct {
	Kind      string   `yaml:"kind,omitempty" json:"kind,omitempty"`
	APIGroup  string   `yaml:"api_group,omitempty" json:"api_group,omitempty"`
	Namespace string   `yaml:"namespace,omitempty" json:"namespace,omitempty"`
	Name      string   `yaml:"name,omitempty" json:"name,omitempty"`
	Verbs     []string `yaml:"verbs,omitempty" json:"verbs,omitempty"`
}

// Rule grants verbs on Keyport's own resources (what tctl manages).
type Rule struct {
	Resources []string `yaml:"resources,omitempty" json:"resources,omitempty"`
	Verbs     []string `yaml:"verbs,omitempty" json:"verbs,omitempty"`
}

// Verbs of Rule.
const (
	VerbList   = "list"
	VerbRead   = "read"
	VerbCreate = "create"
	VerbUpdate = "update"
	VerbDelete = "delete"
)

// DefaultMaxSessionTTL is what a role's options.max_session_ttl becomes when unset, as
// in Teleport. Setting it explicitly (rather than treating zero as "no cap") keeps the
// cap computation a plain minimum and shows the effective value in `tctl get`.
const DefaultMaxSessionTTL = 30 * time.Hour

var (
	// ruleVerbs are the verbs of Keyport's API rules.
	ruleVerbs = []string{VerbList, VerbRead, VerbCreate, VerbUpdate, VerbDelete}
	// ruleResources are the kinds a rule may name. It is the kinds tctl manages plus
	// cert_authority (for `tctl status` and future rotation), bot_instance (`tctl bots
	// instances`), event (the audit log, read by `tctl audit ls`) and session (session
	// recordings). Plurals are not accepted, to keep one spelling in stored roles.
	ruleResources = []string{
		KindRole, KindUser, KindBot, KindBotInstance, KindToken, KindKubeCluster,
		KindLock, KindCertAuthority, KindEvent, KindSession, KindAccessRequest, KindOIDC, KindGithub,
	}
	// kubeVerbs are the Kubernetes verbs a kubernetes_resources entry may name; exec and
	// portforward are Teleport's names for the pods/exec and pods/portforward subresources.
	kubeVerbs = []string{
		"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection",
		"exec", "portforward",
	}
)

// KubeKind describes a kind of the role v7 table.
type KubeKind struct {
	APIGroup    string // the API group, "" for the core group
	Resource    string // the plural resource name, as in role v8 and the API path
	ClusterWide bool   // not namespaced; such entries need no namespace
}

// v7Kinds is the role v7 kind table (SPEC section 6), with the API group and plural
// resource each kind stands for. kube_node and kube_role carry a prefix because Teleport
// has its own "node" and "role" kinds.
var v7Kinds = map[string]KubeKind{
	"pod":                       {"", "pods", false},
	"secret":                    {"", "secrets", false},
	"configmap":                 {"", "configmaps", false},
	"namespace":                 {"", "namespaces", true},
	"service":                   {"", "services", false},
	"serviceaccount":            {"", "serviceaccounts", false},
	"kube_node":                 {"", "nodes", true},
	"persistentvolume":          {"", "persistentvolumes", true},
	"persistentvolumeclaim":     {"", "persistentvolumeclaims", false},
	"deployment":                {"apps", "deployments", false},
	"replicaset":                {"apps", "replicasets", false},
	"statefulset":               {"apps", "statefulsets", false},
	"daemonset":                 {"apps", "daemonsets", false},
	"clusterrole":               {"rbac.authorization.k8s.io", "clusterroles", true},
	"kube_role":                 {"rbac.authorization.k8s.io", "roles", false},
	"clusterrolebinding":        {"rbac.authorization.k8s.io", "clusterrolebindings", true},
	"rolebinding":               {"rbac.authorization.k8s.io", "rolebindings", false},
	"cronjob":                   {"batch", "cronjobs", false},
	"job":                       {"batch", "jobs", false},
	"certificatesigningrequest": {"certificates.k8s.io", "certificatesigningrequests", true},
	"ingress":                   {"networking.k8s.io", "ingresses", false},
}

// KubeKindV7 looks up a kind of the role v5–v7 table.
func KubeKindV7(kind string) (KubeKind, bool) {
	k, ok := v7Kinds[kind]
	return k, ok
}

// v8CoreResources are the core-group resources, the only ones a v8 entry may name with an
// empty api_group (as in Teleport: an empty group elsewhere is almost always a mistake).
// The value says whether the resource is namespaced.
var v8CoreResources = map[string]bool{
	"pods": true, "secrets": true, "configmaps": true, "services": true,
	"serviceaccounts": true, "persistentvolumeclaims": true, "endpoints": true,
	"events": true, "limitranges": true, "podtemplates": true,
	"replicationcontrollers": true, "resourcequotas": true, "bindings": true,
	"namespaces": false, "nodes": false, "persistentvolumes": false,
	"componentstatuses": false,
}

var (
	// A v8 kind is a plural resource name: a DNS label.
	v8KindRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	// An API group is a DNS subdomain, possibly with "*" globs.
	apiGroupRE = regexp.MustCompile(`^[a-z0-9*]([-a-z0-9.*]*[a-z0-9*])?$`)
)

// NewRole returns a role with the given name, version and spec. Call
// CheckAndSetDefaults before use.
func NewRole(name, version string, spec RoleSpec) *Role {
	return &Role{Header: Header{Kind: KindRole, Version: version, Metadata: Metadata{Name: name}}, Spec: spec}
}

// CheckAndSetDefaults validates the role and applies the defaults of its version, as
// Teleport does:
//   - options.max_session_ttl defaults to 30h.
//   - allow.kubernetes_resources, when empty in a role whose allow.kubernetes_labels is
//     not, becomes [{kind: pod, namespace: '*', name: '*'}] in v5 (so a v5 role restricts
//     pods only, exactly as before kubernetes_resources existed), stays empty in v6 (a v6
//     role with labels but no resources grants no pods), and becomes full access in v7 and
//     v8. A role without kubernetes_labels grants no cluster, so it gets no default.
//   - in v5 and v6, entries without verbs get verbs ['*'], and ['*'] is the only verb list
//     accepted, as in Teleport; so `tctl get` shows verbs: ['*'] and the output reads back.
func (r *Role) CheckAndSetDefaults() error {
	if err := r.Header.check(KindRole); err != nil {
		return err
	}
	if r.Spec.Options.MaxSessionTTL < 0 {
		return fieldErrorf("spec.options.max_session_ttl", "must not be negative")
	}
	if r.Spec.Options.MaxSessionTTL == 0 {
		r.Spec.Options.MaxSessionTTL = Duration(DefaultMaxSessionTTL)
	}
	switch r.Spec.Options.RecordSession.Kubernetes {
	case "", RecordBestEffort, RecordStrict:
	default:
		return fieldErrorf("spec.options.record_session.kubernetes", "must be %s or %s, not %q",
			RecordBestEffort, RecordStrict, r.Spec.Options.RecordSession.Kubernetes)
	}
	allow := &r.Spec.Allow
	if len(allow.KubernetesResources) == 0 && len(allow.KubernetesLabels) > 0 {
		switch r.Version {
		case V5:
			allow.KubernetesResources = []KubernetesResource{{Kind: "pod", Namespace: Wildcard, Name: Wildcard}}
		case V7:
			allow.KubernetesResources = []KubernetesResource{{Kind: Wildcard, Namespace: Wildcard, Name: Wildcard, Verbs: []string{Wildcard}}}
		case V8:
			allow.KubernetesResources = []KubernetesResource{{Kind: Wildcard, APIGroup: Wildcard, Namespace: Wildcard, Name: Wildcard, Verbs: []string{Wildcard}}}
		}
	}
	if err := allow.check(r.Version, "spec.allow"); err != nil {
		return err
	}
	return r.Spec.Deny.check(r.Version, "spec.deny")
}

func (c *RoleConditions) check(version, path string) error {
	if err := checkLabelSelector(path+".kubernetes_labels", c.KubernetesLabels); err != nil {
		return err
	}
	for _, f := range []struct {
		name   string
		values []string
	}{{"kubernetes_groups", c.KubernetesGroups}, {"kubernetes_users", c.KubernetesUsers}} {
		for i, v := range f.values {
			if err := checkTemplate(indexPath(path+"."+f.name, i), v); err != nil {
				return err
			}
		}
	}
	for i := range c.KubernetesResources {
		if err := c.KubernetesResources[i].check(version, indexPath(path+".kubernetes_resources", i)); err != nil {
			return err
		}
	}
	for i, rule := range c.Rules {
		if err := rule.check(indexPath(path+".rules", i)); err != nil {
			return err
		}
	}
	if rq := c.Request; rq != nil {
		for _, f := range []struct {
			name   string
			values []string
		}{{"roles", rq.Roles}, {"search_as_roles", rq.SearchAsRoles}} {
			for i, v := range f.values {
				if err := checkPattern(indexPath(path+".request."+f.name, i), v); err != nil {
					return err
				}
			}
		}
		if len(rq.Thresholds) > 0 && strings.HasSuffix(path, "deny") {
			return fieldErrorf(path+".request.thresholds", "thresholds are only allowed under allow")
		}
		for i, t := range rq.Thresholds {
			p := indexPath(path+".request.thresholds", i)
			if t.Approve < 0 || t.Deny < 0 {
				return fieldErrorf(p, "approve and deny must not be negative")
			}
		}
	}
	if rv := c.ReviewRequests; rv != nil {
		for i, v := range rv.Roles {
			if err := checkPattern(indexPath(path+".review_requests.roles", i), v); err != nil {
				return err
			}
		}
	}
	for i, j := range c.JoinSessions {
		p := indexPath(path+".join_sessions", i)
		if strings.HasSuffix(path, "deny") {
			return fieldErrorf(p, "join_sessions is only allowed under allow")
		}
		if len(j.Roles) == 0 {
			return fieldErrorf(p+".roles", "needs at least one role (or '*')")
		}
		for k, r := range j.Roles {
			if err := checkPattern(indexPath(p+".roles", k), r); err != nil {
				return err
			}
		}
		for _, f := range []struct {
			name   string
			values []string
			known  string
		}{{"kinds", j.Kinds, SessionKindKube}, {"modes", j.Modes, SessionModeWatch}} {
			if len(f.values) == 0 {
				return fieldErrorf(p+"."+f.name, "needs at least one of %s or '*'", f.known)
			}
			for k, v := range f.values {
				if v != f.known && v != Wildcard {
					return fieldErrorf(indexPath(p+"."+f.name, k), "%q is not supported: Keyport has %s sessions (or '*')", v, f.known)
				}
			}
		}
	}
	return nil
}

func checkLabelSelector(path string, labels Labels) error {
	for k, values := range labels {
		p := keyPath(path, k)
		if k == "" {
			return fieldErrorf(p, "label key must not be empty")
		}
		if len(values) == 0 {
			return fieldErrorf(p, "needs at least one value")
		}
		// Teleport rejects a wildcard key with a specific value: "any label whose value
		// is prod" is almost always a mistake for "env: prod".
		if k == Wildcard && (len(values) != 1 || values[0] != Wildcard) {
			return fieldErrorf(p, `a "*" key only takes the value "*"`)
		}
		for i, v := range values {
			vp := p
			if len(values) > 1 {
				vp = indexPath(p, i)
			}
			if err := checkPattern(vp, v); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkPattern accepts a literal, a "*" glob or a ^regex$ that compiles.
func checkPattern(path, v string) error {
	if v == "" {
		return fieldErrorf(path, "must not be empty")
	}
	if strings.HasPrefix(v, "^") && strings.HasSuffix(v, "$") {
		if _, err := regexp.Compile(v); err != nil {
			return fieldErrorf(path, "invalid regular expression %q: %v", v, regexpReason(err))
		}
	}
	return nil
}

// regexpReason drops the package prefix from regexp's errors.
func regexpReason(err error) string {
	return strings.TrimPrefix(err.Error(), "error parsing regexp: ")
}

// checkTemplate accepts a literal or one {{namespace.name}} expression (with optional
// text around it and Teleport's functions inside). Expansion is the access layer's job;
// this only catches braces that can never expand.
func checkTemplate(path, v string) error {
	if v == "" {
		return fieldErrorf(path, "must not be empty")
	}
	opens, closes := strings.Count(v, "{{"), strings.Count(v, "}}")
	if opens == 0 && closes == 0 {
		return nil
	}
	start, end := strings.Index(v, "{{"), strings.Index(v, "}}")
	if opens != 1 || closes != 1 || end < start || strings.TrimSpace(v[start+2:end]) == "" {
		return fieldErrorf(path, "malformed template %q: want one {{internal.NAME}} or {{external.NAME}}", v)
	}
	return nil
}

func (k *KubernetesResource) check(version, path string) error {
	switch version {
	case V5, V6:
		// Keyport accepts "*" in v5/v6 (SPEC section 6) so that the guide's v6 role works.
		if k.Kind != "pod" && k.Kind != Wildcard {
			if k.Kind == "" {
				return fieldErrorf(path+".kind", "is required")
			}
			return fieldErrorf(path+".kind", "kind %q is not supported in role %s (only \"pod\" and \"*\"); use role v7 or v8", k.Kind, version)
		}
		if len(k.Verbs) == 0 {
			k.Verbs = []string{Wildcard}
		}
		if len(k.Verbs) != 1 || k.Verbs[0] != Wildcard {
			return fieldErrorf(path+".verbs", "not supported in role %s (only ['*'] is accepted); use role v7 or v8", version)
		}
	case V7:
		if k.Kind == "" {
			return fieldErrorf(path+".kind", "is required")
		}
		if _, ok := v7Kinds[k.Kind]; !ok && k.Kind != Wildcard {
			return fieldErrorf(path+".kind", "unknown kind %q in role v7 (want \"*\" or one of %s)", k.Kind, strings.Join(sortedKeys(v7Kinds), ", "))
		}
	case V8:
		if k.Kind == "" {
			return fieldErrorf(path+".kind", "is required")
		}
		if k.Kind != Wildcard && !v8KindRE.MatchString(k.Kind) {
			return fieldErrorf(path+".kind", "invalid kind %q: role v8 takes \"*\" or a plural resource name such as \"pods\"", k.Kind)
		}
	}
	if version != V8 && k.APIGroup != "" {
		return fieldErrorf(path+".api_group", "not supported in role %s; use role v8", version)
	}
	if version == V8 {
		if err := checkV8Group(path, k); err != nil {
			return err
		}
	}
	if k.Namespace == "" && k.needsNamespace(version) {
		return fieldErrorf(path+".namespace", "is required for kind %q", k.Kind)
	}
	if k.Namespace != "" {
		if err := checkPattern(path+".namespace", k.Namespace); err != nil {
			return err
		}
	}
	if err := checkPattern(path+".name", k.Name); err != nil {
		if k.Name == "" {
			return fieldErrorf(path+".name", "is required")
		}
		return err
	}
	return checkWords(path+".verbs", k.Verbs, kubeVerbs, "verb")
}

func checkV8Group(path string, k *KubernetesResource) error {
	// A v7 singular kind with "*" or its own v7 group is a role migrated without
	// pluralising the kinds; Teleport rejects it rather than match nothing silently.
	if v7, ok := v7Kinds[k.Kind]; ok && (k.APIGroup == Wildcard || k.APIGroup == v7.APIGroup) {
		return fieldErrorf(path+".kind", "kind %q is a role v7 kind; role v8 uses plural resource names such as %q", k.Kind, v7.Resource)
	}
	if k.APIGroup == "" {
		if _, core := v8CoreResources[k.Kind]; !core {
			return fieldErrorf(path+".api_group", "is required for kind %q (only core resources such as pods may leave it empty)", k.Kind)
		}
		return nil
	}
	if strings.HasPrefix(k.APIGroup, "^") && strings.HasSuffix(k.APIGroup, "$") {
		return checkPattern(path+".api_group", k.APIGroup)
	}
	if !apiGroupRE.MatchString(k.APIGroup) {
		return fieldErrorf(path+".api_group", "invalid API group %q", k.APIGroup)
	}
	return nil
}

// needsNamespace says whether an entry without a namespace is a mistake: for namespaced
// kinds it would match nothing. For v8 this is best effort, known resources only.
func (k *KubernetesResource) needsNamespace(version string) bool {
	if version == V8 {
		if k.APIGroup == "" {
			return v8CoreResources[k.Kind]
		}
		for _, v7 := range v7Kinds {
			if v7.Resource == k.Kind && v7.APIGroup == k.APIGroup {
				return !v7.ClusterWide
			}
		}
		return false
	}
	v7, ok := v7Kinds[k.Kind]
	return !ok || !v7.ClusterWide
}

func (r *Rule) check(path string) error {
	if len(r.Resources) == 0 {
		return fieldErrorf(path+".resources", "is required")
	}
	if err := checkWords(path+".resources", r.Resources, ruleResources, "resource"); err != nil {
		return err
	}
	if len(r.Verbs) == 0 {
		return fieldErrorf(path+".verbs", "is required")
	}
	return checkWords(path+".verbs", r.Verbs, ruleVerbs, "verb")
}

// checkWords checks a list of which every item is in known, or which is ["*"]. The
// message names only the bad word: the accepted ones are in the docs, and a long list
// would bury the line that matters.
func checkWords(path string, words, known []string, what string) error {
	for i, w := range words {
		if w == Wildcard {
			if len(words) > 1 {
				return fieldErrorf(indexPath(path, i), `"*" must be the only %s`, what)
			}
			continue
		}
		if !slices.Contains(known, w) {
			return fieldErrorf(indexPath(path, i), "unknown %s %q", what, w)
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Built-in roles, created at first start (SPEC section 4).
const (
	RoleEditor  = "editor"
	RoleAccess  = "access"
	RoleAuditor = "auditor"
)

// NewEditorRole returns the built-in editor role: every verb on every Keyport resource.
func NewEditorRole() *Role {
	r := NewRole(RoleEditor, V7, RoleSpec{Allow: RoleConditions{
		Rules: []Rule{{Resources: []string{Wildcard}, Verbs: []string{Wildcard}}},
	}})
	r.Metadata.Description = "Edit cluster configuration"
	mustCheck(r)
	return r
}

// NewAccessRole returns the built-in access role: every kube cluster, as the kube groups
// and users in the holder's traits, with v7's default of every resource.
func NewAccessRole() *Role {
	r := NewRole(RoleAccess, V7, RoleSpec{Allow: RoleConditions{
		KubernetesLabels: Labels{Wildcard: {Wildcard}},
		KubernetesGroups: []string{"{{internal.kubernetes_groups}}"},
		KubernetesUsers:  []string{"{{internal.kubernetes_users}}"},
	}})
	r.Metadata.Description = "Access cluster resources"
	mustCheck(r)
	return r
}

// NewAuditorRole returns the built-in auditor role: reading the audit log and playing
// session recordings.
func NewAuditorRole() *Role {
	r := NewRole(RoleAuditor, V7, RoleSpec{Allow: RoleConditions{
		Rules: []Rule{{Resources: []string{KindEvent, KindSession}, Verbs: []string{VerbList, VerbRead}}},
	}})
	r.Metadata.Description = "Review cluster events"
	mustCheck(r)
	return r
}

// mustCheck applies defaults to a built-in resource; a failure is a bug in this package.
func mustCheck(r Resource) {
	if err := r.CheckAndSetDefaults(); err != nil {
		panic(fmt.Sprintf("types: built-in %s %q is invalid: %v", r.GetKind(), r.GetName(), err))
	}
}

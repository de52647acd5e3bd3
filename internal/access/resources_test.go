package access

import (
	"strings"
	"testing"

	"github.com/keyport/keyport/internal/types"
)

// kube returns a role of the given version that grants every cluster with group g. rest
// is more of the allow side (kubernetes_resources: …) or, starting with "deny:", the
// deny side.
func kube(t testing.TB, version, name, rest string) *types.Role {
	spec := `allow: {kubernetes_labels: {'*': '*'}, kubernetes_groups: [g]`
	switch {
	case strings.HasPrefix(rest, "deny:"):
		spec += "}, " + rest
	case rest != "":
		spec += ", " + rest + "}"
	default:
		spec += "}"
	}
	return role(t, version, name, spec)
}

// TestCheckResource pins kubernetes_resources decisions version by version (SPEC section
// 6). want is "" for allowed, else |-separated parts of the 403's message.
func TestCheckResource(t *testing.T) {
	nonResource := ResourceRequest{Verb: "get"}
	tests := []struct {
		name   string
		roles  []*types.Role
		req    ResourceRequest
		want   string
		filter bool
	}{
		// v5: pods only, default every pod.
		{name: "v5 default allows every pod",
			roles: []*types.Role{kube(t, "v5", "r", "")}, req: req("get", "pods", "dev", "web")},
		{name: "v5 pod entry restricts pods to its namespace",
			roles: []*types.Role{kube(t, "v5", "r", `kubernetes_resources: [{kind: pod, namespace: dev, name: '*'}]`)},
			req:   req("get", "pods", "prod", "web"),
			want:  `kube cluster "dev": get pods "web" in namespace "prod" is not allowed: no kubernetes_resources entry of roles r matches it`},
		{name: "v5 pod entry allows pods in its namespace",
			roles: []*types.Role{kube(t, "v5", "r", `kubernetes_resources: [{kind: pod, namespace: dev, name: '*'}]`)},
			req:   req("delete", "pods", "dev", "web")},
		{name: "v5 pod entry leaves secrets unrestricted",
			roles: []*types.Role{kube(t, "v5", "r", `kubernetes_resources: [{kind: pod, namespace: dev, name: '*'}]`)},
			req:   req("get", "secrets", "prod", "db")},
		{name: "v5 pod entry leaves custom resources unrestricted",
			roles: []*types.Role{kube(t, "v5", "r", `kubernetes_resources: [{kind: pod, namespace: dev, name: '*'}]`)},
			req:   req("list", "widgets.example.com", "", "")},
		{name: "v5 pod entry filters a list of pods across namespaces",
			roles: []*types.Role{kube(t, "v5", "r", `kubernetes_resources: [{kind: pod, namespace: dev, name: '*'}]`)},
			req:   req("list", "pods", "", ""), filter: true},
		{name: "v5 pod entry refuses exec in another namespace",
			roles: []*types.Role{kube(t, "v5", "r", `kubernetes_resources: [{kind: pod, namespace: dev, name: '*'}]`)},
			req:   req("create", "pods/exec", "prod", "web"), want: `exec pods/exec "web" in namespace "prod" is not allowed`},

		// v6: default [] grants no pods, everything else unrestricted.
		{name: "v6 without kubernetes_resources grants no pods",
			roles: []*types.Role{kube(t, "v6", "r", "")}, req: req("get", "pods", "dev", "web"),
			want: `role "r" is v6 with no kubernetes_resources, which grants no pods in v6`},
		{name: "v6 without kubernetes_resources refuses listing pods",
			roles: []*types.Role{kube(t, "v6", "r", "")}, req: req("list", "pods", "", ""),
			want: `list pods in all namespaces is not allowed`},
		{name: "v6 without kubernetes_resources leaves deployments unrestricted",
			roles: []*types.Role{kube(t, "v6", "r", "")}, req: req("patch", "deployments.apps", "dev", "web")},
		{name: "v6 pod entry with a regex name allows a matching pod",
			roles: []*types.Role{kube(t, "v6", "r", `kubernetes_resources: [{kind: pod, namespace: '*', name: '^web-[0-9]+$'}]`)},
			req:   req("get", "pods", "dev", "web-12")},
		{name: "v6 pod entry with a regex name refuses another pod",
			roles: []*types.Role{kube(t, "v6", "r", `kubernetes_resources: [{kind: pod, namespace: '*', name: '^web-[0-9]+$'}]`)},
			req:   req("get", "pods", "dev", "web-1x"), want: "is not allowed"},
		{name: "v6 kind '*' in one namespace restricts every kind, as in v7",
			roles: []*types.Role{kube(t, "v6", "r", `kubernetes_resources: [{kind: '*', namespace: dev, name: '*'}]`)},
			req:   req("get", "secrets", "prod", "db"), want: "is not allowed"},
		{name: "v6 kind '*' in one namespace allows every kind there",
			roles: []*types.Role{kube(t, "v6", "r", `kubernetes_resources: [{kind: '*', namespace: dev, name: '*'}]`)},
			req:   req("get", "secrets", "dev", "db")},
		{name: "v6 kind '*' in one namespace does not reach nodes",
			roles: []*types.Role{kube(t, "v6", "r", `kubernetes_resources: [{kind: '*', namespace: dev, name: '*'}]`)},
			req:   req("get", "nodes", "", "n1"), want: `get nodes "n1" is not allowed`},
		{name: "v6 guide role kind '*' everywhere allows cluster-scoped objects",
			roles: []*types.Role{kube(t, "v6", "r", `kubernetes_resources: [{kind: '*', namespace: '*', name: '*'}]`)},
			req:   req("delete", "clusterroles.rbac.authorization.k8s.io", "", "admin")},

		// v7: every kind restricted.
		{name: "v7 default allows everything",
			roles: []*types.Role{kube(t, "v7", "r", "")}, req: req("watch", "widgets.example.com", "", "")},
		{name: "v7 namespace kind covers everything in the namespace",
			roles: []*types.Role{kube(t, "v7", "r", `kubernetes_resources: [{kind: namespace, name: dev, verbs: ['*']}]`)},
			req:   req("get", "secrets", "dev", "db")},
		{name: "v7 namespace kind covers custom resources in the namespace without filtering",
			roles: []*types.Role{kube(t, "v7", "r", `kubernetes_resources: [{kind: namespace, name: dev, verbs: ['*']}]`)},
			req:   req("list", "widgets.example.com", "dev", "")},
		{name: "v7 namespace kind refuses other namespaces",
			roles: []*types.Role{kube(t, "v7", "r", `kubernetes_resources: [{kind: namespace, name: dev, verbs: ['*']}]`)},
			req:   req("get", "secrets", "prod", "db"), want: `get secrets "db" in namespace "prod" is not allowed`},
		{name: "v7 namespace kind covers the namespace object",
			roles: []*types.Role{kube(t, "v7", "r", `kubernetes_resources: [{kind: namespace, name: dev, verbs: ['*']}]`)},
			req:   req("delete", "namespaces", "dev", "dev")},
		{name: "v7 namespace kind refuses another namespace object",
			roles: []*types.Role{kube(t, "v7", "r", `kubernetes_resources: [{kind: namespace, name: dev, verbs: ['*']}]`)},
			req:   req("delete", "namespaces", "prod", "prod"), want: `delete namespaces "prod" is not allowed`},
		{name: "v7 namespace kind does not reach cluster-scoped objects",
			roles: []*types.Role{kube(t, "v7", "r", `kubernetes_resources: [{kind: namespace, name: dev, verbs: ['*']}]`)},
			req:   req("get", "nodes", "", "n1"), want: "is not allowed"},
		{name: "v7 namespace kind filters lists across namespaces",
			roles: []*types.Role{kube(t, "v7", "r", `kubernetes_resources: [{kind: namespace, name: dev, verbs: ['*']}]`)},
			req:   req("list", "pods", "", ""), filter: true},
		{name: "v7 namespace kind '*' covers namespaced lists across namespaces",
			roles: []*types.Role{kube(t, "v7", "r", `kubernetes_resources: [{kind: namespace, name: '*', verbs: ['*']}]`)},
			req:   req("list", "pods", "", "")},
		{name: "v7 namespace kind refuses lists of cluster-scoped resources",
			roles: []*types.Role{kube(t, "v7", "r", `kubernetes_resources: [{kind: namespace, name: '*', verbs: ['*']}]`)},
			req:   req("list", "nodes", "", ""), want: "list nodes is not allowed"},
		{name: "v7 deployment kind is the apps group",
			roles: []*types.Role{kube(t, "v7", "r", `kubernetes_resources: [{kind: deployment, namespace: dev, name: '*', verbs: [get, list]}]`)},
			req:   req("get", "deployments.apps", "dev", "web")},
		{name: "v7 deployment kind is not another group's deployments",
			roles: []*types.Role{kube(t, "v7", "r", `kubernetes_resources: [{kind: deployment, namespace: dev, name: '*', verbs: [get, list]}]`)},
			req:   req("get", "deployments.example.com", "dev", "web"), want: `get deployments.example.com "web" in namespace "dev" is not allowed`},
		{name: "v7 deployment kind is not replicasets",
			roles: []*types.Role{kube(t, "v7", "r", `kubernetes_resources: [{kind: deployment, namespace: dev, name: '*', verbs: [get, list]}]`)},
			req:   req("get", "replicasets.apps", "dev", "web-1"), want: "is not allowed"},
		{name: "v7 verbs: a verb outside the list is refused",
			roles: []*types.Role{kube(t, "v7", "r", `kubernetes_resources: [{kind: deployment, namespace: dev, name: '*', verbs: [get, list]}]`)},
			req:   req("patch", "deployments.apps", "dev", "web"), want: `patch deployments.apps "web" in namespace "dev" is not allowed`},
		{name: "v7 verbs: list does not allow watch",
			roles: []*types.Role{kube(t, "v7", "r", `kubernetes_resources: [{kind: deployment, namespace: dev, name: '*', verbs: [get, list]}]`)},
			req:   req("watch", "deployments.apps", "dev", ""), want: "watch deployments.apps in namespace \"dev\" is not allowed"},
		{name: "v7 kinds outside the table need kind '*'",
			roles: []*types.Role{kube(t, "v7", "r", `kubernetes_resources: [{kind: pod, namespace: '*', name: '*', verbs: ['*']}]`)},
			req:   req("get", "events", "dev", "e1"), want: "is not allowed"},
		{name: "v7 cluster-wide kind ignores the namespace",
			roles: []*types.Role{kube(t, "v7", "r", `kubernetes_resources: [{kind: kube_node, namespace: dev, name: 'worker-*', verbs: [get, list]}]`)},
			req:   req("get", "nodes", "", "worker-1")},
		{name: "v7 cluster-wide kind checks the name",
			roles: []*types.Role{kube(t, "v7", "r", `kubernetes_resources: [{kind: kube_node, name: 'worker-*', verbs: [get, list]}]`)},
			req:   req("get", "nodes", "", "master"), want: "is not allowed"},
		{name: "v7 cluster-wide kind with a name pattern filters lists",
			roles: []*types.Role{kube(t, "v7", "r", `kubernetes_resources: [{kind: kube_node, name: 'worker-*', verbs: [get, list]}]`)},
			req:   req("list", "nodes", "", ""), filter: true},
		{name: "v7 kind '*' in one namespace refuses lists of cluster-scoped kinds",
			roles: []*types.Role{kube(t, "v7", "r", `kubernetes_resources: [{kind: '*', namespace: dev, name: '*', verbs: ['*']}]`)},
			req:   req("list", "clusterroles.rbac.authorization.k8s.io", "", ""), want: "is not allowed"},
		{name: "v7 kind '*' in one namespace filters lists of unknown resources",
			roles: []*types.Role{kube(t, "v7", "r", `kubernetes_resources: [{kind: '*', namespace: dev, name: '*', verbs: ['*']}]`)},
			req:   req("list", "widgets.example.com", "", ""), filter: true},
		{name: "v7 name pattern filters a list in an allowed namespace",
			roles: []*types.Role{kube(t, "v7", "r", `kubernetes_resources: [{kind: pod, namespace: dev, name: 'web-*', verbs: [list]}]`)},
			req:   req("list", "pods", "dev", ""), filter: true},
		{name: "v7 list with a field-selected name is checked by that name",
			roles: []*types.Role{kube(t, "v7", "r", `kubernetes_resources: [{kind: pod, namespace: dev, name: 'web-*', verbs: [list]}]`)},
			req:   req("list", "pods", "dev", "web-1")},

		// Deny beats allow.
		{name: "deny overrides allow on one object",
			roles: []*types.Role{kube(t, "v7", "r", `deny: {kubernetes_resources: [{kind: secret, namespace: kube-system, name: '*', verbs: ['*']}]}`)},
			req:   req("get", "secrets", "kube-system", "token"),
			want:  `kube cluster "dev": get secrets "token" in namespace "kube-system" is denied by role "r" deny kubernetes_resources[0] (kind secret, namespace kube-system, name *, verbs [*])`},
		{name: "deny leaves objects it does not match",
			roles: []*types.Role{kube(t, "v7", "r", `deny: {kubernetes_resources: [{kind: secret, namespace: kube-system, name: '*', verbs: ['*']}]}`)},
			req:   req("get", "secrets", "default", "token")},
		{name: "deny covering a whole list refuses it",
			roles: []*types.Role{kube(t, "v7", "r", `deny: {kubernetes_resources: [{kind: secret, namespace: kube-system, name: '*', verbs: ['*']}]}`)},
			req:   req("list", "secrets", "kube-system", ""), want: "is denied by role"},
		{name: "deny covering part of a list filters it",
			roles: []*types.Role{kube(t, "v7", "r", `deny: {kubernetes_resources: [{kind: secret, namespace: kube-system, name: '*', verbs: ['*']}]}`)},
			req:   req("list", "secrets", "", ""), filter: true},
		{name: "deny in every namespace refuses lists across namespaces",
			roles: []*types.Role{kube(t, "v7", "r", `deny: {kubernetes_resources: [{kind: secret, namespace: '*', name: '*', verbs: [list]}]}`)},
			req:   req("list", "secrets", "", ""), want: "list secrets in all namespaces is denied by role"},
		{name: "deny of another verb does not apply",
			roles: []*types.Role{kube(t, "v7", "r", `deny: {kubernetes_resources: [{kind: secret, namespace: '*', name: '*', verbs: [delete]}]}`)},
			req:   req("get", "secrets", "dev", "db")},
		{name: "deny without verbs denies every verb",
			roles: []*types.Role{kube(t, "v7", "r", `deny: {kubernetes_resources: [{kind: secret, namespace: '*', name: '*'}]}`)},
			req:   req("get", "secrets", "dev", "db"), want: "is denied by role"},
		{name: "allow without verbs allows nothing",
			roles: []*types.Role{kube(t, "v7", "r", `kubernetes_resources: [{kind: secret, namespace: '*', name: '*'}]`)},
			req:   req("get", "secrets", "dev", "db"), want: "is not allowed"},
		{name: "deny with a regex name",
			roles: []*types.Role{kube(t, "v7", "r", `deny: {kubernetes_resources: [{kind: secret, namespace: '*', name: '^admin-.+$', verbs: ['*']}]}`)},
			req:   req("get", "secrets", "dev", "admin-x"), want: "is denied by role"},
		{name: "deny namespace kind refuses everything in the namespace",
			roles: []*types.Role{kube(t, "v7", "r", `deny: {kubernetes_resources: [{kind: namespace, name: kube-system, verbs: ['*']}]}`)},
			req:   req("get", "configmaps", "kube-system", "x"), want: "is denied by role"},
		{name: "deny overlapping part of a deletecollection refuses it",
			roles: []*types.Role{kube(t, "v7", "r", `deny: {kubernetes_resources: [{kind: secret, namespace: '*', name: 'admin-*', verbs: ['*']}]}`)},
			req:   req("deletecollection", "secrets", "dev", ""),
			want:  `deletecollection secrets in namespace "dev" is refused: it could touch objects that role "r" deny kubernetes_resources[0]`},
		{name: "allow covering part of a deletecollection refuses it",
			roles: []*types.Role{kube(t, "v7", "r", `kubernetes_resources: [{kind: secret, namespace: '*', name: 'tmp-*', verbs: ['*']}]`)},
			req:   req("deletecollection", "secrets", "dev", ""), want: "roles r allow only some of the objects"},
		{name: "create without a name under a name-restricted deny is refused",
			roles: []*types.Role{kube(t, "v7", "r", `deny: {kubernetes_resources: [{kind: secret, namespace: '*', name: 'admin-*', verbs: ['*']}]}`)},
			req:   req("create", "secrets", "dev", ""), want: "is refused"},
		{name: "create with a name outside a deny is allowed",
			roles: []*types.Role{kube(t, "v7", "r", `deny: {kubernetes_resources: [{kind: secret, namespace: '*', name: 'admin-*', verbs: ['*']}]}`)},
			req:   req("create", "secrets", "dev", "app")},
		{name: "create without a name needs a '*' name",
			roles: []*types.Role{kube(t, "v7", "r", `kubernetes_resources: [{kind: pod, namespace: dev, name: 'web-*', verbs: [create]}]`)},
			req:   req("create", "pods", "dev", ""), want: "is refused"},
		{name: "deny from a role that does not grant the cluster applies",
			roles: []*types.Role{kube(t, "v7", "r", ""),
				role(t, "v7", "prod", `allow: {kubernetes_labels: {env: prod}}, deny: {kubernetes_resources: [{kind: secret, namespace: '*', name: '*', verbs: ['*']}]}`)},
			req: req("get", "secrets", "dev", "db"), want: `denied by role "prod"`},

		// Roles are a union.
		{name: "allow entries of granting roles add up",
			roles: []*types.Role{
				kube(t, "v7", "a", `kubernetes_resources: [{kind: pod, namespace: dev, name: '*', verbs: ['*']}]`),
				kube(t, "v7", "b", `kubernetes_resources: [{kind: pod, namespace: prod, name: '*', verbs: ['*']}]`)},
			req: req("get", "pods", "prod", "web")},
		{name: "allow entries of roles that do not grant the cluster do not count",
			roles: []*types.Role{
				kube(t, "v7", "a", `kubernetes_resources: [{kind: pod, namespace: dev, name: '*', verbs: ['*']}]`),
				role(t, "v7", "b", `allow: {kubernetes_labels: {env: prod}, kubernetes_resources: [{kind: pod, namespace: prod, name: '*', verbs: ['*']}]}`)},
			req: req("get", "pods", "prod", "web"), want: "no kubernetes_resources entry of roles a matches it"},
		{name: "a granting v6 role leaves non-pods unrestricted next to a v7 role",
			roles: []*types.Role{
				kube(t, "v7", "a", `kubernetes_resources: [{kind: pod, namespace: dev, name: '*', verbs: ['*']}]`),
				kube(t, "v6", "b", "")},
			req: req("get", "secrets", "prod", "db")},

		// Subresources.
		{name: "exec needs the exec verb",
			roles: []*types.Role{kube(t, "v7", "r", `kubernetes_resources: [{kind: pod, namespace: '*', name: '*', verbs: [get, list, create]}]`)},
			req:   req("create", "pods/exec", "dev", "web"), want: `exec pods/exec "web" in namespace "dev" is not allowed`},
		{name: "exec over websocket (GET) needs the exec verb too",
			roles: []*types.Role{kube(t, "v7", "r", `kubernetes_resources: [{kind: pod, namespace: '*', name: '*', verbs: [get, list, create]}]`)},
			req:   req("get", "pods/exec", "dev", "web"), want: "is not allowed"},
		{name: "attach counts as exec",
			roles: []*types.Role{kube(t, "v7", "r", `kubernetes_resources: [{kind: pod, namespace: '*', name: '*', verbs: [exec]}]`)},
			req:   req("create", "pods/attach", "dev", "web")},
		{name: "portforward needs the portforward verb",
			roles: []*types.Role{kube(t, "v7", "r", `kubernetes_resources: [{kind: pod, namespace: '*', name: '*', verbs: [exec]}]`)},
			req:   req("create", "pods/portforward", "dev", "web"), want: "portforward pods/portforward"},
		{name: "logs are read with get",
			roles: []*types.Role{kube(t, "v7", "r", `kubernetes_resources: [{kind: pod, namespace: '*', name: '*', verbs: [get]}]`)},
			req:   req("get", "pods/log", "dev", "web")},
		{name: "ephemeral containers count as exec",
			roles: []*types.Role{kube(t, "v7", "r", `kubernetes_resources: [{kind: pod, namespace: '*', name: '*', verbs: [get, patch, update]}]`)},
			req:   req("patch", "pods/ephemeralcontainers", "dev", "web"), want: "exec pods/ephemeralcontainers"},
		{name: "eviction counts as delete",
			roles: []*types.Role{kube(t, "v7", "r", `kubernetes_resources: [{kind: pod, namespace: '*', name: '*', verbs: [create]}]`)},
			req:   req("create", "pods/eviction", "dev", "web"), want: "delete pods/eviction"},
		{name: "status is checked as its parent",
			roles: []*types.Role{kube(t, "v7", "r", `kubernetes_resources: [{kind: deployment, namespace: '*', name: '*', verbs: [update]}]`)},
			req:   req("update", "deployments.apps/status", "dev", "web")},
		{name: "the legacy proxy verb needs '*'",
			roles: []*types.Role{kube(t, "v7", "r", `kubernetes_resources: [{kind: service, namespace: '*', name: '*', verbs: [get, create, update, patch, delete]}]`)},
			req:   req("proxy", "services", "dev", "web"), want: "is not allowed"},

		// Namespaces are visible where something is allowed (Teleport's read-only rule).
		{name: "a namespace with allowed pods can be read",
			roles: []*types.Role{kube(t, "v7", "r", `kubernetes_resources: [{kind: pod, namespace: dev, name: '*', verbs: [get, list, watch]}]`)},
			req:   req("get", "namespaces", "dev", "dev")},
		{name: "a namespace with nothing allowed cannot be read",
			roles: []*types.Role{kube(t, "v7", "r", `kubernetes_resources: [{kind: pod, namespace: dev, name: '*', verbs: [get, list, watch]}]`)},
			req:   req("get", "namespaces", "prod", "prod"), want: `get namespaces "prod" is not allowed`},
		{name: "a namespace with allowed pods cannot be deleted",
			roles: []*types.Role{kube(t, "v7", "r", `kubernetes_resources: [{kind: pod, namespace: dev, name: '*', verbs: ['*']}]`)},
			req:   req("delete", "namespaces", "dev", "dev"), want: "is not allowed"},
		{name: "listing namespaces is filtered to the visible ones",
			roles: []*types.Role{kube(t, "v7", "r", `kubernetes_resources: [{kind: pod, namespace: dev, name: '*', verbs: [get, list, watch]}]`)},
			req:   req("list", "namespaces", "", ""), filter: true},

		// v8: plural resources with api_group.
		{name: "v8 default allows everything",
			roles: []*types.Role{kube(t, "v8", "r", "")}, req: req("deletecollection", "widgets.example.com", "", "")},
		{name: "v8 plural resource with its api_group",
			roles: []*types.Role{kube(t, "v8", "r", `kubernetes_resources: [{kind: deployments, api_group: apps, namespace: dev, name: '*', verbs: [get]}]`)},
			req:   req("get", "deployments.apps", "dev", "web")},
		{name: "v8 plural resource in another api_group is refused",
			roles: []*types.Role{kube(t, "v8", "r", `kubernetes_resources: [{kind: deployments, api_group: apps, namespace: dev, name: '*', verbs: [get]}]`)},
			req:   req("get", "deployments.example.com", "dev", "web"), want: "is not allowed"},
		{name: "v8 empty api_group is the core group",
			roles: []*types.Role{kube(t, "v8", "r", `kubernetes_resources: [{kind: pods, namespace: '*', name: '*', verbs: [get]}]`)},
			req:   req("get", "pods", "dev", "web")},
		{name: "v8 empty api_group does not match a custom pods resource",
			roles: []*types.Role{kube(t, "v8", "r", `kubernetes_resources: [{kind: pods, namespace: '*', name: '*', verbs: [get]}]`)},
			req:   req("get", "pods.example.com", "dev", "web"), want: "is not allowed"},
		{name: "v8 api_group glob",
			roles: []*types.Role{kube(t, "v8", "r", `kubernetes_resources: [{kind: '*', api_group: '*.example.com', namespace: '*', name: '*', verbs: ['*']}]`)},
			req:   req("list", "widgets.stable.example.com", "", "")},
		{name: "v8 api_group glob refuses core resources",
			roles: []*types.Role{kube(t, "v8", "r", `kubernetes_resources: [{kind: '*', api_group: '*.example.com', namespace: '*', name: '*', verbs: ['*']}]`)},
			req:   req("list", "pods", "", ""), want: "list pods in all namespaces is not allowed"},
		{name: "v8 api_group regex",
			roles: []*types.Role{kube(t, "v8", "r", `kubernetes_resources: [{kind: '*', api_group: '^(apps|batch)$', namespace: '*', name: '*', verbs: ['*']}]`)},
			req:   req("create", "jobs.batch", "dev", "j")},
		{name: "v8 custom resource by plural and group",
			roles: []*types.Role{kube(t, "v8", "r", `kubernetes_resources: [{kind: certificates, api_group: cert-manager.io, namespace: '*', name: '*', verbs: [list]}]`)},
			req:   req("list", "certificates.cert-manager.io", "", "")},
		{name: "v8 namespace regex",
			roles: []*types.Role{kube(t, "v8", "r", `kubernetes_resources: [{kind: pods, namespace: '^team-(a|b)$', name: '*', verbs: ['*']}]`)},
			req:   req("get", "pods", "team-c", "web"), want: "is not allowed"},
		{name: "v8 entry without a namespace selects cluster-scoped objects",
			roles: []*types.Role{kube(t, "v8", "r", `kubernetes_resources: [{kind: '*', api_group: example.com, name: '*', verbs: ['*']}]`)},
			req:   req("get", "clusterwidgets.example.com", "", "w")},
		{name: "v8 entry without a namespace does not select namespaced objects",
			roles: []*types.Role{kube(t, "v8", "r", `kubernetes_resources: [{kind: '*', api_group: example.com, name: '*', verbs: ['*']}]`)},
			req:   req("get", "widgets.example.com", "dev", "w"), want: "is not allowed"},
		{name: "v8 nodes by name",
			roles: []*types.Role{kube(t, "v8", "r", `kubernetes_resources: [{kind: nodes, name: 'worker-*', verbs: [get]}]`)},
			req:   req("get", "nodes", "", "worker-2")},

		{name: "non-resource URLs are always allowed",
			roles: []*types.Role{kube(t, "v7", "r", `deny: {kubernetes_resources: [{kind: '*', namespace: '*', name: '*', verbs: ['*']}]}`)},
			req:   nonResource},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := cluster(t, checker(t, nil, tt.roles...))
			filter, err := a.Authorize(tt.req)
			wantErr(t, err, tt.want)
			if filter != tt.filter {
				t.Errorf("needs filtering = %v, want %v", filter, tt.filter)
			}
			// The single-purpose methods agree with Authorize.
			if got := a.CheckResource(tt.req); (got == nil) != (err == nil) {
				t.Errorf("CheckResource = %v, Authorize = %v", got, err)
			}
			if got := a.NeedsFiltering(tt.req); got != tt.filter {
				t.Errorf("NeedsFiltering = %v, want %v", got, tt.filter)
			}
		})
	}
}

type item struct{ ns, name string }

// TestItemAllowed pins the per-item filtering of list responses and watch events.
func TestItemAllowed(t *testing.T) {
	tests := []struct {
		name    string
		role    *types.Role
		req     ResourceRequest
		allowed []item
		dropped []item
	}{
		{name: "namespace kind keeps items of its namespace",
			role:    kube(t, "v7", "r", `kubernetes_resources: [{kind: namespace, name: dev, verbs: ['*']}]`),
			req:     req("list", "pods", "", ""),
			allowed: []item{{"dev", "a"}}, dropped: []item{{"prod", "b"}, {"", "cluster-scoped"}}},
		{name: "watch events are filtered like list items",
			role:    kube(t, "v7", "r", `kubernetes_resources: [{kind: pod, namespace: '^dev-.*$', name: '*', verbs: [watch]}]`),
			req:     req("watch", "pods", "", ""),
			allowed: []item{{"dev-1", "a"}}, dropped: []item{{"prod", "a"}}},
		{name: "name patterns filter inside a namespace",
			role:    kube(t, "v7", "r", `kubernetes_resources: [{kind: pod, namespace: dev, name: 'web-*', verbs: [list]}]`),
			req:     req("list", "pods", "dev", ""),
			allowed: []item{{"dev", "web-1"}}, dropped: []item{{"dev", "db-1"}}},
		{name: "deny drops the items it matches",
			role:    kube(t, "v7", "r", `deny: {kubernetes_resources: [{kind: secret, namespace: kube-system, name: '*', verbs: ['*']}]}`),
			req:     req("list", "secrets", "", ""),
			allowed: []item{{"default", "a"}}, dropped: []item{{"kube-system", "token"}}},
		{name: "v5 pod entries filter pods",
			role:    kube(t, "v5", "r", `kubernetes_resources: [{kind: pod, namespace: dev, name: '*'}]`),
			req:     req("list", "pods", "", ""),
			allowed: []item{{"dev", "a"}}, dropped: []item{{"prod", "a"}}},
		{name: "namespaces list shows namespaces with allowed resources",
			role:    kube(t, "v7", "r", `kubernetes_resources: [{kind: pod, namespace: dev, name: '*', verbs: [list]}]`),
			req:     req("list", "namespaces", "", ""),
			allowed: []item{{"", "dev"}}, dropped: []item{{"", "prod"}}},
		{name: "cluster-scoped items by name",
			role:    kube(t, "v7", "r", `kubernetes_resources: [{kind: kube_node, name: 'worker-*', verbs: [list]}]`),
			req:     req("list", "nodes", "", ""),
			allowed: []item{{"", "worker-1"}}, dropped: []item{{"", "control-plane"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := cluster(t, checker(t, nil, tt.role))
			if !a.NeedsFiltering(tt.req) {
				t.Fatalf("NeedsFiltering(%+v) = false", tt.req)
			}
			for _, it := range tt.allowed {
				if !a.ItemAllowed(tt.req, it.ns, it.name) {
					t.Errorf("item %s/%s dropped, want kept", it.ns, it.name)
				}
			}
			for _, it := range tt.dropped {
				if a.ItemAllowed(tt.req, it.ns, it.name) {
					t.Errorf("item %s/%s kept, want dropped", it.ns, it.name)
				}
			}
		})
	}
}

func TestRoleVerb(t *testing.T) {
	tests := []struct {
		req  ResourceRequest
		want string
	}{
		{req("create", "pods/exec", "d", "p"), "exec"},
		{req("get", "pods/exec", "d", "p"), "exec"},
		{req("create", "pods/attach", "d", "p"), "exec"},
		{req("create", "pods/portforward", "d", "p"), "portforward"},
		{req("get", "pods/portforward", "d", "p"), "portforward"},
		{req("patch", "pods/ephemeralcontainers", "d", "p"), "exec"},
		{req("get", "pods/ephemeralcontainers", "d", "p"), "get"},
		{req("create", "pods/eviction", "d", "p"), "delete"},
		{req("get", "pods/log", "d", "p"), "get"},
		{req("get", "pods/proxy", "d", "p"), "exec"}, // proxy subresources reach into the workload, as exec does
		{req("create", "services/proxy", "d", "s"), "exec"},
		{req("create", "widgets.example.com/exec", "d", "w"), "create"}, // only core pods have exec
		{req("list", "pods", "", ""), "list"},
	}
	for _, tt := range tests {
		t.Run(tt.req.Resource+"/"+tt.req.Subresource+" "+tt.req.Verb, func(t *testing.T) {
			if got := RoleVerb(tt.req); got != tt.want {
				t.Errorf("RoleVerb = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestV7KindNames keeps the local list of v7 kinds in step with package types.
func TestV7KindNames(t *testing.T) {
	for _, n := range v7KindNames {
		if _, ok := types.KubeKindV7(n); !ok {
			t.Errorf("v7 kind %q is unknown to types.KubeKindV7", n)
		}
	}
	if s := scopeOf("", "nodes"); s != scopeCluster {
		t.Errorf("nodes scope = %v", s)
	}
	if s := scopeOf("apps", "deployments"); s != scopeNamespaced {
		t.Errorf("deployments scope = %v", s)
	}
}

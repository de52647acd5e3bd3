package access

import (
	"testing"

	"github.com/keyport/keyport/internal/types"
)

// benchAccess is a realistic role set: the guide's role is not in it (a wildcard grant
// returns on the first rule), so checks walk several entries, globs and regexps, and
// deny entries from every role.
func benchAccess(b *testing.B) *ClusterAccess {
	roles := []*types.Role{
		role(b, "v7", "dev", `allow: {kubernetes_labels: {env: [dev, staging], team: '^(blue|red)$'}, kubernetes_groups: [developers, '{{internal.kubernetes_groups}}'],
			kubernetes_resources: [
			  {kind: deployment, namespace: 'team-*', name: '*', verbs: [get, list, watch, update, patch]},
			  {kind: configmap, namespace: 'team-*', name: '*', verbs: [get, list, watch]},
			  {kind: pod, namespace: '^team-(blue|red)$', name: '^web-[a-z0-9-]+$', verbs: [get, list, watch, exec]},
			  {kind: namespace, name: sandbox, verbs: ['*']}]},
			deny: {kubernetes_resources: [{kind: secret, namespace: '*', name: '*', verbs: ['*']}]}`),
		role(b, "v8", "crds", `allow: {kubernetes_labels: {env: dev}, kubernetes_resources: [{kind: '*', api_group: '*.example.com', namespace: 'team-*', name: '*', verbs: [get, list]}]},
			deny: {kubernetes_resources: [{kind: '*', api_group: 'admin.example.com', namespace: '*', name: '*', verbs: ['*']}]}`),
		role(b, "v7", "no-kube-system", `deny: {kubernetes_resources: [{kind: namespace, name: kube-system, verbs: ['*']}]}`),
	}
	c := checker(b, map[string][]string{"kubernetes_groups": {"viewers"}}, roles...)
	a, err := c.CheckCluster("dev", map[string]string{"env": "dev", "team": "blue"})
	if err != nil {
		b.Fatal(err)
	}
	return a
}

func BenchmarkCheckResource(b *testing.B) {
	a := benchAccess(b)
	cases := []struct {
		name string
		req  ResourceRequest
		ok   bool
	}{
		{"get pod by regex", req("get", "pods", "team-blue", "web-7f9c"), true},
		{"exec pod", req("create", "pods/exec", "team-blue", "web-7f9c"), true},
		{"patch deployment by glob", req("patch", "deployments.apps", "team-red", "api"), true},
		{"get custom resource", req("get", "widgets.stable.example.com", "team-red", "w"), true},
		{"list pods across namespaces (filtered)", req("list", "pods", "", ""), true},
		{"non-resource", ResourceRequest{Verb: "get"}, true},
		{"denied secret", req("get", "secrets", "team-blue", "db"), false},
		{"not allowed", req("delete", "pods", "team-blue", "web-1"), false},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			if err := a.CheckResource(tc.req); (err == nil) != tc.ok {
				b.Fatalf("CheckResource = %v, want ok=%v", err, tc.ok)
			}
			b.ReportAllocs()
			for b.Loop() {
				_ = a.CheckResource(tc.req)
			}
		})
	}
}

func BenchmarkItemAllowed(b *testing.B) {
	a := benchAccess(b)
	r := req("list", "pods", "", "")
	b.ReportAllocs()
	for b.Loop() {
		a.ItemAllowed(r, "team-blue", "web-7f9c")
		a.ItemAllowed(r, "prod", "db-0")
	}
}

func BenchmarkCheckCluster(b *testing.B) {
	a := benchAccess(b)
	c := a.c
	labels := map[string]string{"env": "dev", "team": "blue"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.CheckCluster("dev", labels); err != nil {
			b.Fatal(err)
		}
	}
}

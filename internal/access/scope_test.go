package access

import (
	"strings"
	"testing"

	"github.com/keyport/keyport/internal/types"
)

func TestResourceScope(t *testing.T) {
	pod := ResourceRequest{IsResourceRequest: true, Resource: "pods"}
	get := func(r ResourceRequest, ns, name string) ResourceRequest {
		r.Verb, r.Namespace, r.Name = "get", ns, name
		return r
	}
	list := func(r ResourceRequest, ns string) ResourceRequest {
		r.Verb, r.Namespace = "list", ns
		return r
	}
	secrets := ResourceRequest{IsResourceRequest: true, Resource: "secrets"}
	discovery := ResourceRequest{Verb: "get"}
	tests := []struct {
		name    string
		ids     []string
		cluster string
		req     ResourceRequest
		want    string // "" allowed whole, "filter" allowed with a filter, else an error substring
		items   map[[2]string]bool
	}{
		{"cluster grants all", []string{"/c/kube_cluster/k"}, "k", get(secrets, "kube-system", "x"), "", nil},
		{"other cluster", []string{"/c/kube_cluster/k"}, "other", get(pod, "default", "p"), `not kube cluster "other"`, nil},
		{"namespace: inside", []string{"/c/namespace/k/team"}, "k", get(secrets, "team", "s"), "", nil},
		{"namespace: the namespace itself", []string{"/c/namespace/k/team"}, "k", get(ResourceRequest{IsResourceRequest: true, Resource: "namespaces"}, "", "team"), "", nil},
		{"namespace: outside", []string{"/c/namespace/k/team"}, "k", get(secrets, "other", "s"), "does not cover this request", nil},
		{"namespace: all namespaces filtered", []string{"/c/namespace/k/team"}, "k", list(pod, ""), "filter",
			map[[2]string]bool{{"team", "a"}: true, {"other", "a"}: false, {"", "node-1"}: false}},
		{"namespace: discovery", []string{"/c/namespace/k/team"}, "k", discovery, "", nil},
		{"pod: the pod", []string{"/c/pod/k/default/web-0"}, "k", get(pod, "default", "web-0"), "", nil},
		{"pod: its exec", []string{"/c/pod/k/default/web-0"}, "k", ResourceRequest{IsResourceRequest: true, Verb: "create", Resource: "pods", Subresource: "exec", Namespace: "default", Name: "web-0"}, "", nil},
		{"pod: another pod", []string{"/c/pod/k/default/web-0"}, "k", get(pod, "default", "web-1"), "does not cover", nil},
		{"pod: secrets", []string{"/c/pod/k/default/web-0"}, "k", get(secrets, "default", "web-0"), "does not cover", nil},
		{"pod: list in its namespace filtered", []string{"/c/pod/k/default/web-0"}, "k", list(pod, "default"), "filter",
			map[[2]string]bool{{"default", "web-0"}: true, {"default", "web-1"}: false}},
		{"pod: list elsewhere", []string{"/c/pod/k/default/web-0"}, "k", list(pod, "kube-system"), "does not cover", nil},
		{"two pods", []string{"/c/pod/k/default/web-0", "/c/pod/k/default/web-1"}, "k", list(pod, ""), "filter",
			map[[2]string]bool{{"default", "web-0"}: true, {"default", "web-1"}: true, {"default", "web-2"}: false}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewResourceScope(tc.ids)
			if err != nil {
				t.Fatal(err)
			}
			f, err := s.Authorize(tc.cluster, tc.req)
			switch {
			case tc.want == "":
				if err != nil || f != nil {
					t.Fatalf("got filter %v, err %v; want allowed whole", f != nil, err)
				}
			case tc.want == "filter":
				if err != nil || f == nil {
					t.Fatalf("got filter %v, err %v; want a filter", f != nil, err)
				}
				for item, want := range tc.items {
					if got := f(item[0], item[1]); got != want {
						t.Errorf("item %v: %v, want %v", item, got, want)
					}
				}
			default:
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("err %v, want %q", err, tc.want)
				}
			}
		})
	}
	if s, _ := NewResourceScope([]string{"/c/pod/k/default/web-0"}); !s.Covers("k") || s.Covers("other") {
		t.Error("Covers")
	}
	if s, err := NewResourceScope(nil); s != nil || err != nil {
		t.Errorf("no resources: %v, %v; want no scope", s, err)
	}
	if _, err := NewResourceScope([]string{"bogus"}); err == nil {
		t.Error("a malformed resource ID was accepted")
	}
}

func TestRequestPolicy(t *testing.T) {
	dev := types.NewRole("dev", types.V7, types.RoleSpec{
		Allow: types.RoleConditions{Request: &types.AccessRequestConditions{Roles: []string{"prod-*"}, SearchAsRoles: []string{"reader"},
			Thresholds: []types.AccessReviewThreshold{{Approve: 2, Deny: 1}}}},
		Deny: types.RoleConditions{Request: &types.AccessRequestConditions{Roles: []string{"prod-root"}}}})
	lead := types.NewRole("lead", types.V7, types.RoleSpec{
		Allow: types.RoleConditions{ReviewRequests: &types.AccessReviewConditions{Roles: []string{"prod-*"}}},
		Deny:  types.RoleConditions{ReviewRequests: &types.AccessReviewConditions{Roles: []string{"prod-secret"}}}})
	roles := []*types.Role{dev}
	if err := CheckRequestable(roles, []string{"prod-db", "prod-web"}); err != nil {
		t.Error(err)
	}
	if err := CheckRequestable(roles, []string{"prod-root"}); err == nil || !strings.Contains(err.Error(), "denies") {
		t.Errorf("deny.request: %v", err)
	}
	if err := CheckRequestable(roles, []string{"staging"}); err == nil || !strings.Contains(err.Error(), "not requestable") {
		t.Errorf("unlisted role: %v", err)
	}
	if got := SearchAsRoles(roles, []string{"dev", "reader", "prod-db"}); strings.Join(got, ",") != "reader" {
		t.Errorf("search_as_roles %v", got)
	}
	if a, d := Thresholds(roles); a != 2 || d != 1 {
		t.Errorf("thresholds %d/%d", a, d)
	}
	if a, d := Thresholds(nil); a != 1 || d != 1 {
		t.Errorf("default thresholds %d/%d", a, d)
	}
	if err := CheckReviewable([]*types.Role{lead}, []string{"prod-db"}); err != nil {
		t.Error(err)
	}
	for _, r := range []string{"prod-secret", "staging"} {
		if err := CheckReviewable([]*types.Role{lead}, []string{"prod-db", r}); err == nil {
			t.Errorf("reviewing a request for %s was allowed", r)
		}
	}
}

package types

import (
	"strings"
	"testing"
)

func TestParseResourceID(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ResourceID
		err  string
	}{
		{"/c/kube_cluster/k", ResourceID{Cluster: "c", Kind: "kube_cluster", KubeCluster: "k"}, ""},
		{"/c/namespace/k/team", ResourceID{Cluster: "c", Kind: "namespace", KubeCluster: "k", Namespace: "team"}, ""},
		{"/c/pod/k/default/web-0", ResourceID{Cluster: "c", Kind: "pod", KubeCluster: "k", Namespace: "default", Name: "web-0"}, ""},
		{"c/kube_cluster/k", ResourceID{}, "want /CLUSTER/kube_cluster/NAME"},
		{"/c/kube_cluster/k/extra", ResourceID{}, "want /CLUSTER"},
		{"/c/pod/k/default", ResourceID{}, "want /CLUSTER"},
		{"/c//k", ResourceID{}, "want /CLUSTER"},
		{"/c/node/k", ResourceID{}, `kind "node" is not one of`},
	} {
		got, err := ParseResourceID(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want || got.String() != tc.in {
			t.Errorf("%q: %+v (%q), %v", tc.in, got, got.String(), err)
		}
	}
}

func TestRoleRequestFields(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec RoleSpec
		err  string
	}{
		{"fine", RoleSpec{Allow: RoleConditions{Request: &AccessRequestConditions{Roles: []string{"prod-*"}, SearchAsRoles: []string{"^read.*$"},
			Thresholds: []AccessReviewThreshold{{Approve: 2, Deny: 1}}}, ReviewRequests: &AccessReviewConditions{Roles: []string{"*"}}},
			Deny: RoleConditions{Request: &AccessRequestConditions{Roles: []string{"root"}}}}, ""},
		{"bad pattern", RoleSpec{Allow: RoleConditions{Request: &AccessRequestConditions{Roles: []string{"^(x$"}}}}, "spec.allow.request.roles[0]"},
		{"negative threshold", RoleSpec{Allow: RoleConditions{Request: &AccessRequestConditions{Thresholds: []AccessReviewThreshold{{Approve: -1}}}}},
			"spec.allow.request.thresholds[0]: approve and deny must not be negative"},
		{"thresholds under deny", RoleSpec{Deny: RoleConditions{Request: &AccessRequestConditions{Thresholds: []AccessReviewThreshold{{Approve: 1}}}}},
			"spec.deny.request.thresholds: thresholds are only allowed under allow"},
		{"bad review pattern", RoleSpec{Allow: RoleConditions{ReviewRequests: &AccessReviewConditions{Roles: []string{"^(x$"}}}}, "spec.allow.review_requests.roles[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := NewRole("r", V7, tc.spec).CheckAndSetDefaults()
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("err %v, want %q", err, tc.err)
			}
		})
	}
}

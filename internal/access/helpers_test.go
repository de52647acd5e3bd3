package access

import (
	"strings"
	"testing"

	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/types"
)

// role decodes a role of the given version and name from the YAML body of its spec,
// through the same strict decoder and defaults as `tctl create`.
func role(t testing.TB, version, name, spec string) *types.Role {
	t.Helper()
	doc := "kind: role\nversion: " + version + "\nmetadata: {name: " + name + "}\nspec: {" + spec + "}\n"
	rs, err := types.Decode(name+".yaml", []byte(doc))
	if err != nil {
		t.Fatalf("decoding role %s: %v", name, err)
	}
	return rs[0].(*types.Role)
}

func checker(t testing.TB, traits map[string][]string, roles ...*types.Role) *Checker {
	t.Helper()
	c, err := NewChecker(roles, traits)
	if err != nil {
		t.Fatalf("NewChecker: %v", err)
	}
	return c
}

// cluster grants access to the cluster "dev" (labels env=dev) or fails the test.
func cluster(t testing.TB, c *Checker) *ClusterAccess {
	t.Helper()
	a, err := c.CheckCluster("dev", map[string]string{"env": "dev"})
	if err != nil {
		t.Fatalf("CheckCluster: %v", err)
	}
	return a
}

// wantErr checks that err is nil when want is "", and otherwise an access-denied error
// whose message contains every |-separated part of want.
func wantErr(t *testing.T, err error, want string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("got no error, want one containing %q", want)
	}
	if !errs.IsAccessDenied(err) {
		t.Errorf("error kind = %v, want access denied: %v", errs.KindOf(err), err)
	}
	for _, part := range strings.Split(want, "|") {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error %q does not contain %q", err, part)
		}
	}
}

// req builds a resource request from "resource[.group][/subresource]", the way kubectl
// names resources: "pods", "deployments.apps", "pods/exec".
func req(verb, resource, ns, name string) ResourceRequest {
	resource, sub, _ := strings.Cut(resource, "/")
	res, group, _ := strings.Cut(resource, ".")
	return ResourceRequest{IsResourceRequest: true, Verb: verb, APIGroup: group, Resource: res, Subresource: sub, Namespace: ns, Name: name}
}

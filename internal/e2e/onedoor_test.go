package e2e

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
	"github.com/keyport/keyport/internal/testenv"
	"github.com/keyport/keyport/internal/types"
)

// auditJSON runs the built `tctl -c CONFIG audit ls --format=json` with args and
// decodes its events.
func auditJSON(t *testing.T, configPath string, args ...string) []map[string]any {
	t.Helper()
	full := append([]string{"-c", configPath, "audit", "ls", "--format=json"}, args...)
	out, err := exec.Command(filepath.Join(binDir, "tctl"), full...).Output()
	if err != nil {
		t.Fatalf("tctl %s: %v", strings.Join(full, " "), err)
	}
	var events []map[string]any
	if err := json.Unmarshal(out, &events); err != nil {
		t.Fatalf("tctl audit ls --format=json: %v\n%s", err, out)
	}
	return events
}

// TestTshKubeLsOneDecision: the listing takes package access's decision. A role whose
// kubernetes_labels allow env by a regex and deny it by a glob: tsh kube ls lists the
// cluster only the regex reaches, hides the one the glob denies and the one nothing
// allows, and tsh kube login agrees. The same user's tctl, refused by the Auth API's
// edge, leaves an api.denied event that tctl audit ls shows.
func TestTshKubeLsOneDecision(t *testing.T) {
	ctx := context.Background()
	env := testenv.New(t)
	admin := env.AdminClient()
	if _, err := admin.HeartbeatKubeClusters(ctx, &pb.HeartbeatKubeClustersRequest{TtlSeconds: 600, Clusters: []*pb.KubeCluster{
		{Name: "eu-1", Service: "kube-eu", Labels: map[string]string{"env": "production"}},
		{Name: "eu-staging", Service: "kube-eu", Labels: map[string]string{"env": "production-staging"}},
		{Name: "dev-1", Service: "kube-eu", Labels: map[string]string{"env": "dev"}},
	}}); err != nil {
		t.Fatal(err)
	}
	createResource(t, admin, types.NewRole("prod-regex", types.V7, types.RoleSpec{
		Allow: types.RoleConditions{KubernetesLabels: types.Labels{"env": {"^prod.*$"}}, KubernetesGroups: []string{"editor"}},
		Deny:  types.RoleConditions{KubernetesLabels: types.Labels{"env": {"*-staging"}}},
	}))
	resp, err := admin.CreateUser(ctx, &pb.CreateUserRequest{Name: "rex", Roles: []string{"prod-regex"}})
	if err != nil {
		t.Fatal(err)
	}
	const password = "rex's password 12"
	enrolled, err := completeInvite(ctx, resp.GetInviteUrl(), password)
	if err != nil {
		t.Fatal(err)
	}
	code, _, err := nextTOTP(enrolled.OTPSecret, enrolled.Step)
	if err != nil {
		t.Fatal(err)
	}
	u := newTshUser(t, filepath.Join(t.TempDir(), "config"))
	u.must("y\n"+password+"\n"+code+"\n", "tsh", "login", "--proxy="+env.WebAddr, "--user=rex")

	out := u.must("", "tsh", "kube", "ls")
	if !strings.Contains(out, "eu-1  ") || strings.Contains(out, "eu-staging") || strings.Contains(out, "dev-1") {
		t.Fatalf("tsh kube ls, want eu-1 only:\n%s", out)
	}
	if _, errOut, err := u.run("", "tsh", "kube", "login", "eu-staging"); err == nil || !strings.Contains(errOut, `do not grant access to kube cluster "eu-staging"`) {
		t.Fatalf("tsh kube login eu-staging: %v\n%s", err, errOut)
	}

	// rex has no rules: tctl through his profile is refused, and audited.
	if _, errOut, err := u.run("", "tctl", "get", "roles"); err == nil || !strings.Contains(errOut, "access denied to list role") {
		t.Fatalf("tctl get roles as rex: %v\n%s", err, errOut)
	}
	var denied map[string]any
	waitUntil(t, 10*time.Second, func() bool {
		for _, e := range auditJSON(t, env.ConfigPath(), "--type=api.denied") {
			if e["user"] == "rex" {
				denied = e
			}
		}
		return denied != nil
	})
	fields, _ := denied["fields"].(map[string]any)
	if denied == nil || fields["method"] != "ListResources" || fields["code"] != "PermissionDenied" || !strings.HasPrefix(fields["addr"].(string), "127.0.0.1:") {
		t.Fatalf("api.denied event for rex: %v", denied)
	}
}

package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
	"github.com/keyport/keyport/internal/types"
)

// TestFilteredListsThroughKeyport: a namespace-restricted identity pages through
// cluster-wide lists with the built kubectl and raw requests. It sees exactly its pods,
// with the API server's table columns, and no page shows a hidden name, a hidden count
// or a token that decodes to one; a changed token, or another identity's, is refused.
func TestFilteredListsThroughKeyport(t *testing.T) {
	ctx := context.Background()
	s := newKubeSetup(t)
	for _, p := range [][2]string{{"team-a", "a-0"}, {"team-a", "a-1"}, {"team-b", "b-0"}} {
		if err := s.kube.CreatePod(ctx, p[0], p[1]); err != nil {
			t.Fatal(err)
		}
	}
	createResource(t, s.admin, types.NewRole("team-a-pods", types.V7, types.RoleSpec{Allow: types.RoleConditions{
		KubernetesLabels: types.Labels{"*": {"*"}}, KubernetesGroups: []string{"editor"},
		KubernetesResources: []types.KubernetesResource{{Kind: "pod", Namespace: "team-a", Name: "*", Verbs: []string{"get", "list", "watch"}}}}}))
	restricted := s.kubeconfigFor(t, "rita", "team-a-pods")
	full := s.kubeconfigFor(t, "alice", "example-role")

	out, err := kubectl(t, restricted, "get", "pods", "-A", "--chunk-size=1")
	if err != nil {
		t.Fatalf("kubectl get pods -A --chunk-size=1: %v\n%s", err, out)
	}
	direct, err := kubectl(t, full, "get", "pods", "-n", "team-a")
	if err != nil {
		t.Fatalf("kubectl get pods -n team-a: %v\n%s", err, direct)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], "team-a ") || !strings.HasPrefix(lines[2], "team-a ") ||
		!strings.Contains(lines[1], "a-0") || !strings.Contains(lines[2], "a-1") {
		t.Fatalf("restricted kubectl get pods -A --chunk-size=1, want team-a's a-0 and a-1 only:\n%s", out)
	}
	wantColumns := strings.Fields(strings.Split(direct, "\n")[0])
	if got := strings.Fields(lines[0]); !slices.Equal(got, append([]string{"NAMESPACE"}, wantColumns...)) {
		t.Fatalf("columns %v, want NAMESPACE and those of an unrestricted kubectl get pods -n team-a: %v", got, wantColumns)
	}

	// Raw pages of one item.
	rita := signIdentity(t, s.admin, "rita")
	proxy := "https://" + s.env.WebAddr + "/v1/kube/" + guideCluster + "/api/v1/pods?limit=1"
	clt := kubeHTTP(t, rita, rita.HostCAs[0])
	hidden := []string{"web-0", "dns-0", "b-0", "default", "kube-system", "team-b"}
	var seen []string
	var firstToken string
	for cont, page := "", 0; ; page++ {
		if page > 20 {
			t.Fatal("the pages do not end")
		}
		u := proxy
		if cont != "" {
			u += "&continue=" + url.QueryEscape(cont)
		}
		resp, err := clt.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("page %d: %d %s", page, resp.StatusCode, body)
		}
		var list struct {
			Metadata struct {
				Continue           string `json:"continue"`
				RemainingItemCount *int   `json:"remainingItemCount"`
			} `json:"metadata"`
			Items []struct {
				Metadata struct{ Namespace, Name string } `json:"metadata"`
			} `json:"items"`
		}
		if err := json.Unmarshal(body, &list); err != nil {
			t.Fatal(err)
		}
		// What a page says besides its items (which are checked below): its metadata,
		// and its continue token decoded.
		var whole map[string]json.RawMessage
		_ = json.Unmarshal(body, &whole)
		text := string(whole["metadata"])
		if raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(list.Metadata.Continue, "kp1.")); err == nil {
			text += string(raw)
		}
		for _, h := range hidden {
			if strings.Contains(text, h) {
				t.Fatalf("page %d tells of %q: %s", page, h, text)
			}
		}
		if list.Metadata.RemainingItemCount != nil {
			t.Fatalf("page %d counts the remaining items: %s", page, body)
		}
		for _, it := range list.Items {
			seen = append(seen, it.Metadata.Namespace+"/"+it.Metadata.Name)
		}
		if cont = list.Metadata.Continue; cont == "" {
			break
		}
		if firstToken == "" {
			firstToken = cont
		}
	}
	if !slices.Equal(seen, []string{"team-a/a-0", "team-a/a-1"}) {
		t.Fatalf("pages listed %v, want team-a/a-0 and team-a/a-1", seen)
	}

	// A changed token, and one used by another identity, get a 400 Status.
	if _, err := s.admin.CreateUser(ctx, &pb.CreateUserRequest{Name: "rolf", Roles: []string{"team-a-pods"}}); err != nil {
		t.Fatal(err)
	}
	rolfID := signIdentity(t, s.admin, "rolf")
	changed := []byte(firstToken)
	changed[len(changed)-2] ^= 1
	for name, tc := range map[string]struct {
		clt   *http.Client
		token string
	}{
		"changed token":          {clt, string(changed)},
		"another identity's one": {kubeHTTP(t, rolfID, rolfID.HostCAs[0]), firstToken},
	} {
		resp, err := tc.clt.Get(proxy + "&continue=" + url.QueryEscape(tc.token))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || !strings.Contains(string(body), `"kind":"Status"`) || !strings.Contains(string(body), "continue token is not valid") {
			t.Errorf("%s: %d %s, want a 400 Status", name, resp.StatusCode, body)
		}
	}
}

// TestKubeCanIResourceNames: tctl kube can-i reads resources as kubectl does, and
// answers as kubectl auth can-i through Keyport does for the same identity.
func TestKubeCanIResourceNames(t *testing.T) {
	s := newKubeSetup(t)
	kc := s.kubeconfigFor(t, "alice", "example-role")
	canI := func(args ...string) (string, error) {
		full := append([]string{"-c", s.env.ConfigPath(), "kube", "can-i", "--user=alice", "--cluster=" + guideCluster}, args...)
		out, err := exec.Command(filepath.Join(binDir, "tctl"), full...).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	for _, args := range [][]string{
		{"create", "deployments", "-n", "default"},
		{"get", "deploy", "-n", "default"},
		{"list", "po", "-n", "default"},
		{"create", "deployments.apps", "-n", "default"},
		{"get", "cm", "-n", "default"},
		{"create", "clusterrolebindings"},
		{"create", "crb"},
	} {
		viaKubectl, _ := kubectl(t, kc, append([]string{"auth", "can-i"}, args...)...)
		kubectlSays := strings.TrimSpace(viaKubectl)
		kubectlSays = kubectlSays[strings.LastIndexByte(kubectlSays, '\n')+1:]
		out, _ := canI(args...)
		tctlSays := "no"
		if out == "yes" {
			tctlSays = "yes"
		}
		if tctlSays != kubectlSays {
			t.Errorf("can-i %s: tctl says %q, kubectl auth can-i through Keyport says %q", strings.Join(args, " "), out, viaKubectl)
		}
	}
	out, err := canI("get", "frobs")
	if err == nil || !strings.Contains(out, `has no resource type "frobs"`) {
		t.Errorf("can-i get frobs: %v\n%s", err, out)
	}
}

package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
	"github.com/keyport/keyport/internal/client"
	"github.com/keyport/keyport/internal/identityfile"
	"github.com/keyport/keyport/internal/kubeconfig"
	"github.com/keyport/keyport/internal/testenv"
	"github.com/keyport/keyport/internal/testenv/kubeenv"
	"github.com/keyport/keyport/internal/testenv/tools"
	"github.com/keyport/keyport/internal/tlsca"
	"github.com/keyport/keyport/internal/types"
)

const guideCluster = "example-k8s-cluster"

// kubeSetup is a real control plane with kwok pods, enrolled in a Keyport cluster, with
// the guide's ClusterRoleBinding and role.
type kubeSetup struct {
	kube  *kubeenv.Env
	env   *testenv.Env
	admin *client.Client
}

func newKubeSetup(t *testing.T) *kubeSetup {
	t.Helper()
	ctx := context.Background()
	k := startGuideControlPlane(t)
	env := testenv.New(t, testenv.WithKube(k.KubeconfigPath, map[string]string{"env": "dev"}))
	admin := env.AdminClient()
	waitUntil(t, 10*time.Second, func() bool {
		resp, err := admin.ListKubeClusters(ctx, &pb.ListKubeClustersRequest{})
		return err == nil && len(resp.GetClusters()) == 1
	})
	createResource(t, admin, guideExampleRole())
	return &kubeSetup{kube: k, env: env, admin: admin}
}

// startGuideControlPlane starts a real control plane with kwok pods web-0 (default) and
// dns-0 (kube-system) and the guide's ClusterRoleBinding.
func startGuideControlPlane(t *testing.T) *kubeenv.Env {
	t.Helper()
	ctx := context.Background()
	k := kubeenv.Start(t, kubeenv.Options{Kwok: true, ContextName: guideCluster})
	for _, p := range []struct{ ns, name string }{{"default", "web-0"}, {"kube-system", "dns-0"}} {
		if err := k.CreatePod(ctx, p.ns, p.name); err != nil {
			t.Fatal(err)
		}
	}
	// kubectl create clusterrolebinding teleport-editor-edit --clusterrole=edit --group=editor
	_, err := k.Clientset.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "teleport-editor-edit"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "edit"},
		Subjects:   []rbacv1.Subject{{Kind: "Group", APIGroup: "rbac.authorization.k8s.io", Name: "editor"}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// guideExampleRole is the guide's role: group editor on every cluster and resource.
func guideExampleRole() *types.Role {
	return types.NewRole("example-role", types.V6, types.RoleSpec{Allow: types.RoleConditions{
		KubernetesLabels:    types.Labels{"*": {"*"}},
		KubernetesGroups:    []string{"editor"},
		KubernetesResources: []types.KubernetesResource{{Kind: "*", Namespace: "*", Name: "*"}},
	}})
}

// kubeconfigFor signs a certificate for a new user with roles and writes a kubeconfig
// for the guide's cluster.
func (s *kubeSetup) kubeconfigFor(t *testing.T, user string, roles ...string) string {
	t.Helper()
	ctx := context.Background()
	if _, err := s.admin.CreateUser(ctx, &pb.CreateUserRequest{Name: user, Roles: roles}); err != nil {
		t.Fatal(err)
	}
	id := signIdentity(t, s.admin, user)
	return writeKubeconfig(t, s.env, id)
}

func writeKubeconfig(t *testing.T, env *testenv.Env, id *identityfile.Identity) string {
	t.Helper()
	keyPEM, err := tlsca.EncodeKeyPEM(id.Key)
	if err != nil {
		t.Fatal(err)
	}
	cfg := kubeconfig.Build(kubeconfig.Params{ProxyAddr: env.WebAddr, ClusterName: testenv.ClusterName, HostCAPEM: id.HostCAs[0],
		Clusters: []kubeconfig.Cluster{{ContextName: testenv.ClusterName + "-" + guideCluster, KubeCluster: guideCluster}},
		CertPEM:  id.CertPEM, KeyPEM: keyPEM})
	data, err := kubeconfig.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig.yaml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func kubectl(t *testing.T, kubeconfig string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(tools.Path(t, "kubectl"), append([]string{"--kubeconfig", kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestKubectlThroughKeyport(t *testing.T) {
	s := newKubeSetup(t)
	kc := s.kubeconfigFor(t, "alice", "example-role")
	out, err := kubectl(t, kc, "get", "pods", "-A")
	if err != nil {
		t.Fatalf("kubectl get pods -A: %v\n%s", err, out)
	}
	for _, want := range []string{"default", "web-0", "kube-system", "dns-0", "Running"} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl get pods -A output lacks %q:\n%s", want, out)
		}
	}
	out, err = kubectl(t, kc, "auth", "can-i", "create", "deployments")
	if err != nil || strings.TrimSpace(out) != "yes" {
		t.Errorf("can-i create deployments: %v %s", err, out)
	}
	out, _ = kubectl(t, kc, "auth", "can-i", "create", "clusterrolebindings")
	if !strings.HasSuffix(strings.TrimSpace(out), "\nno") {
		t.Errorf("can-i create clusterrolebindings: %s", out)
	}
}

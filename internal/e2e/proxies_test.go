package e2e

import (
	"context"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
	"github.com/keyport/keyport/internal/identityfile"
	"github.com/keyport/keyport/internal/kubeconfig"
	"github.com/keyport/keyport/internal/testenv"
	"github.com/keyport/keyport/internal/testenv/etcdtest"
	"github.com/keyport/keyport/internal/tlsca"
)

// TestTwoProxiesOneAgent: two keyport processes (auth and proxy each) on one etcd, and a
// Kubernetes Service in another process that dialled the first. The agent learns the
// live proxies from the Auth API and keeps a tunnel to each, so kubectl reaches the
// cluster through either proxy; tctl proxies ls shows both with the cluster. When the
// first proxy stops, kubectl through the second goes on working.
func TestTwoProxiesOneAgent(t *testing.T) {
	ctx := context.Background()
	k := startGuideControlPlane(t)
	endpoint := etcdtest.Start(t)
	storage := testenv.WithStorage(etcdStorage(endpoint, "/proxies"))
	a := testenv.New(t, storage, testenv.WithNodeName("proxy-a"))
	b := testenv.New(t, storage, testenv.WithNodeName("proxy-b"))
	admin := a.AdminClient()
	createResource(t, admin, guideExampleRole())
	s := &agentSetup{kube: k, env: a, admin: admin, pin: tlsca.Pin(a.Process.Auth.HostCA().Cert)}
	startAgent(t, s.agentConfig(t, t.TempDir(), "edge-1", s.kubeToken(t), s.pin, k.KubeconfigPath, ""))

	// Both proxies carry a tunnel for the cluster.
	waitUntil(t, 15*time.Second, func() bool {
		resp, err := admin.ListProxies(ctx, &pb.ListProxiesRequest{})
		if err != nil || len(resp.GetProxies()) != 2 {
			return false
		}
		for _, p := range resp.GetProxies() {
			if !slices.Contains(p.GetClusters(), guideCluster) {
				return false
			}
		}
		return true
	})
	out, err := exec.Command(filepath.Join(binDir, "tctl"), "-c", a.ConfigPath(), "proxies", "ls").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "proxy-a") || !strings.Contains(string(out), "proxy-b") || strings.Count(string(out), guideCluster) != 2 {
		t.Fatalf("tctl proxies ls: %v\n%s", err, out)
	}

	if _, err := admin.CreateUser(ctx, &pb.CreateUserRequest{Name: "alice", Roles: []string{"example-role"}}); err != nil {
		t.Fatal(err)
	}
	viaA := kubeconfigVia(t, a, signIdentity(t, admin, "alice"))
	viaB := kubeconfigVia(t, b, signIdentity(t, admin, "alice"))
	for _, kc := range []string{viaA, viaB} {
		if got := waitKubectl(t, kc, "get", "pods", "-A"); !strings.Contains(got, "web-0") {
			t.Fatalf("kubectl get pods -A:\n%s", got)
		}
	}
	kubectlExec(t, viaB, "true", "through-b")

	// The proxy the agent dialled stops; the other one serves the cluster at once.
	a.Stop()
	stopped := time.Now()
	var took time.Duration
	for {
		out, err := kubectl(t, viaB, "get", "pods", "-A")
		if err == nil && strings.Contains(out, "web-0") {
			took = time.Since(stopped)
			break
		}
		if time.Since(stopped) > 5*time.Second {
			t.Fatalf("the cluster was not reachable through the other proxy within 5s: %v\n%s", err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("reachable through the other proxy %v after the first stopped", took.Round(time.Millisecond))
}

// kubeconfigVia is a kubeconfig for the guide's cluster through env's proxy.
func kubeconfigVia(t *testing.T, env *testenv.Env, id *identityfile.Identity) string {
	t.Helper()
	keyPEM, err := tlsca.EncodeKeyPEM(id.Key)
	if err != nil {
		t.Fatal(err)
	}
	cfg := kubeconfig.Build(kubeconfig.Params{ProxyAddr: env.WebAddr, ClusterName: testenv.ClusterName, HostCAPEM: id.HostCAs[0],
		Clusters: []kubeconfig.Cluster{{ContextName: testenv.ClusterName + "-" + guideCluster, KubeCluster: guideCluster}}, CertPEM: id.CertPEM, KeyPEM: keyPEM})
	data, err := kubeconfig.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, filepath.Join(t.TempDir(), "kubeconfig.yaml"), string(data))
}

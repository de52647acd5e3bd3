package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
	"github.com/keyport/keyport/internal/testenv"
	"github.com/keyport/keyport/internal/types"
)

// TestAgentKubernetesJoin: the first Kubernetes Service of a cluster joins with its
// pod's projected service account token, which the Auth Service verifies with the
// cluster's service-account keys stored in the token (static_jwks) — no Keyport reaches
// that cluster yet. The built keyport runs as the agent; the cluster appears in
// tctl kube ls and kubectl works through it. The token is not single use; a service
// account the token does not allow is refused with its message and no host identity.
func TestAgentKubernetesJoin(t *testing.T) {
	ctx := context.Background()
	s := newAgentSetup(t)
	cs := s.kube.Clientset.CoreV1()
	const ns = "keyport"
	if _, err := cs.Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The cluster's keys, as `kubectl get --raw /openid/v1/jwks` prints them.
	staticJWKSToken(t, s, "agent-join", ns+":keyport-agent")
	if r, err := s.admin.GetResource(ctx, &pb.GetResourceRequest{Kind: types.KindToken, Name: "agent-join"}); err != nil || !strings.Contains(string(r.GetJson()), "static_jwks") {
		t.Fatalf("the token: %v %v", r, err)
	}

	// projected returns a token the API server issues for service account sa, bound to
	// a new pod and with the Keyport cluster name as audience, as the chart projects it.
	projected := func(sa string) string {
		t.Helper()
		if _, err := cs.ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil && !strings.Contains(err.Error(), "already exists") {
			t.Fatal(err)
		}
		pod, err := cs.Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: sa + "-"},
			Spec: corev1.PodSpec{ServiceAccountName: sa, AutomountServiceAccountToken: new(bool), Containers: []corev1.Container{{Name: "keyport", Image: "keyport"}}}},
			metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		tr, err := cs.ServiceAccounts(ns).CreateToken(ctx, sa, &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
			Audiences:      []string{testenv.ClusterName},
			BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return writeFile(t, filepath.Join(t.TempDir(), "token"), tr.Status.Token)
	}
	config := func(dir, node string) string {
		t.Helper()
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		return writeFile(t, filepath.Join(dir, "keyport.yaml"), fmt.Sprintf(`version: v3
keyport:
  nodename: %s
  data_dir: %s
  proxy_server: %s
  join_params: {method: kubernetes, token_name: agent-join}
  ca_pins: [%q]
auth_service: {enabled: false}
proxy_service: {enabled: false}
kubernetes_service:
  enabled: true
  kubeconfig_file: %s
  labels: {env: k8s-join}
`, node, filepath.Join(dir, "data"), s.env.WebAddr, s.pin, s.kube.KubeconfigPath))
	}

	// A service account the token does not allow: refused at start, exit 1.
	dir := t.TempDir()
	refused := exec.Command(filepath.Join(binDir, "keyport"), "start", "-c", config(filepath.Join(dir, "other"), "other-0"))
	refused.Env = append(os.Environ(), "KUBERNETES_TOKEN_PATH="+projected("other"))
	out, err := refused.CombinedOutput()
	if err == nil || !strings.Contains(string(out), `service account "keyport:other" is not allowed to join with token "agent-join"`) {
		t.Fatalf("an account not in allow: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "other", "data", "host-identity")); !os.IsNotExist(err) {
		t.Fatalf("a refused join left a host identity: %v", err)
	}

	// Pods of the allowed account join with the same token, one after the other (a
	// rescheduled pod without its host identity joins again).
	for _, node := range []string{"agent-0", "agent-1"} {
		cmd := exec.Command(filepath.Join(binDir, "keyport"), "start", "-c", config(filepath.Join(dir, node), node))
		cmd.Env = append(os.Environ(), "KUBERNETES_TOKEN_PATH="+projected("keyport-agent"))
		var logs bytes.Buffer
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		stop := func() {
			_ = cmd.Process.Signal(os.Interrupt)
			_ = cmd.Wait()
		}
		if node == "agent-1" {
			// The cluster is still agent-0's until its heartbeat expires; a join is
			// what this pod must show: its own host identity.
			waitUntil(t, 30*time.Second, func() bool {
				_, err := os.Stat(filepath.Join(dir, node, "data", "host-identity"))
				return err == nil
			})
			stop()
			break
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			resp, err := s.admin.ListKubeClusters(ctx, &pb.ListKubeClustersRequest{})
			if err == nil && len(resp.GetClusters()) == 1 && resp.GetClusters()[0].GetService() == node {
				break
			}
			if time.Now().After(deadline) {
				stop()
				t.Fatalf("agent %s did not enrol the cluster within 30s: %v %v\n%s", node, resp, err, logs.String())
			}
			time.Sleep(200 * time.Millisecond)
		}
		tctlOut, err := exec.Command(filepath.Join(binDir, "tctl"), "-c", s.env.ConfigPath(), "kube", "ls").CombinedOutput()
		if err != nil || !strings.Contains(string(tctlOut), guideCluster) || !strings.Contains(string(tctlOut), "env=k8s-join") {
			stop()
			t.Fatalf("tctl kube ls: %v\n%s", err, tctlOut)
		}
		kc := s.userKubeconfig(t, "alice", guideCluster)
		if out := waitKubectl(t, kc, "get", "pods", "-A"); !strings.Contains(out, "web-0") {
			stop()
			t.Fatalf("kubectl get pods -A through %s:\n%s", node, out)
		}
		stop()
	}
	events := auditJSON(t, s.env.ConfigPath(), "--type=host.join")
	joined := 0
	for _, e := range events {
		if f, _ := e["fields"].(map[string]any); f["join_method"] == "kubernetes" && f["service_account"] == ns+":keyport-agent" {
			joined++
		}
	}
	if joined != 2 {
		t.Fatalf("%d host.join events of the kubernetes method, want 2", joined)
	}
}

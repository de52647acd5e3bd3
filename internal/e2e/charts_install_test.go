package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
	"github.com/keyport/keyport/internal/tbot"
	tbotconfig "github.com/keyport/keyport/internal/tbot/config"
	"github.com/keyport/keyport/internal/tbot/destination"
	"github.com/keyport/keyport/internal/testenv"
	"github.com/keyport/keyport/internal/testenv/kubeenv"
	"github.com/keyport/keyport/internal/testenv/tools"
)

// TestHelmAgentChart: `helm install` of keyport-kube-agent (kubernetes join, static_jwks)
// on the real control plane creates its objects; then the built keyport runs exactly as
// the chart's pod would — the keyport.yaml of the chart's ConfigMap, the projected token
// a TokenRequest issues for the chart's ServiceAccount bound to the chart's (kwok) pod —
// with two substitutions a process outside a pod needs: data_dir is a temporary
// directory, and the in-cluster credentials (kube_cluster_name) become a kubeconfig
// holding a token of the chart's ServiceAccount. The agent so holds only the chart's
// ClusterRole (and its Role for the identity Secret), not cluster-admin. The cluster
// appears in tctl kube ls, and kubectl get, exec and logs -f work through Keyport. The
// host identity is kept in the chart's Secret: started again without its data_dir (a
// rescheduled pod), the agent does not join again.
func TestHelmAgentChart(t *testing.T) {
	ctx := context.Background()
	s := newAgentSetup(t)
	cs := s.kube.Clientset.CoreV1()
	const ns, release = "keyport", "agent"
	dir := t.TempDir()
	sa := release + "-keyport-kube-agent"
	staticJWKSToken(t, s, "agents", ns+":"+sa)
	values := writeFile(t, filepath.Join(dir, "values.yaml"), fmt.Sprintf(`proxyAddr: %s
caPins: [%q]
clusterName: %s
kubeClusterName: in-cluster
labels: {env: helm}
joinMethod: kubernetes
joinTokenName: agents
kubernetesTokenType: static_jwks
`, s.env.WebAddr, s.pin, testenv.ClusterName))
	// The chart's objects exist, and its pod runs (kwok runs no container, but the pod
	// and its service account are real API objects a TokenRequest can bind to).
	cm := helmInstall(t, s.kube, "keyport-kube-agent", release, ns, values, sa)
	if _, err := s.kube.Clientset.RbacV1().ClusterRoleBindings().Get(ctx, sa, metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := chartPod(t, s.kube, ns, release)
	if pod.Spec.ServiceAccountName != sa {
		t.Fatalf("the chart's pod runs as %q", pod.Spec.ServiceAccountName)
	}
	// What the kubelet would mount: the projected join token (audience: the Keyport
	// cluster name, bound to the pod) and the service account's API credentials.
	issue := func(aud []string) string {
		tr, err := cs.ServiceAccounts(ns).CreateToken(ctx, sa, &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
			Audiences: aud, BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID}}},
			metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}
	joinToken := writeFile(t, filepath.Join(dir, "join-token"), issue([]string{testenv.ClusterName}))
	kc := clientcmdapi.NewConfig()
	kc.Clusters["in-cluster"] = &clientcmdapi.Cluster{Server: s.kube.APIServerURL, CertificateAuthorityData: s.kube.CAData}
	kc.AuthInfos["in-cluster"] = &clientcmdapi.AuthInfo{Token: issue(nil)}
	kc.Contexts["in-cluster"] = &clientcmdapi.Context{Cluster: "in-cluster", AuthInfo: "in-cluster"}
	kc.CurrentContext = "in-cluster"
	kcPath := filepath.Join(dir, "sa-kubeconfig")
	if err := clientcmd.WriteToFile(*kc, kcPath); err != nil {
		t.Fatal(err)
	}
	rendered := cm.Data["keyport.yaml"]
	cfg := strings.Replace(rendered, "data_dir: /var/lib/keyport", "data_dir: "+filepath.Join(dir, "data"), 1)
	cfg = strings.Replace(cfg, `kube_cluster_name: "in-cluster"`, "kubeconfig_file: "+kcPath, 1)
	if cfg == rendered || !strings.Contains(cfg, "kubeconfig_file") {
		t.Fatalf("the chart's keyport.yaml changed shape:\n%s", rendered)
	}
	cfgPath := writeFile(t, filepath.Join(dir, "keyport.yaml"), cfg)
	// start runs the built keyport as the chart's pod; it returns a stop function.
	start := func() func() {
		cmd := exec.Command(filepath.Join(binDir, "keyport"), "start", "-c", cfgPath)
		cmd.Env = append(os.Environ(), "KUBERNETES_TOKEN_PATH="+joinToken, "POD_NAMESPACE="+ns)
		var logs bytes.Buffer
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		stop := func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() }
		t.Cleanup(stop)
		deadline := time.Now().Add(30 * time.Second)
		for {
			resp, err := s.admin.ListKubeClusters(ctx, &pb.ListKubeClustersRequest{})
			if err == nil && len(resp.GetClusters()) == 1 && resp.GetClusters()[0].GetService() == sa {
				return stop
			}
			if time.Now().After(deadline) {
				t.Fatalf("the chart's agent did not enrol its cluster within 30s: %v\n%s", err, logs.String())
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	stop := start()
	out, err := exec.Command(filepath.Join(binDir, "tctl"), "-c", s.env.ConfigPath(), "kube", "ls").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "in-cluster") || !strings.Contains(string(out), "env=helm") {
		t.Fatalf("tctl kube ls: %v\n%s", err, out)
	}
	user := s.userKubeconfig(t, "alice", "in-cluster")
	if got := waitKubectl(t, user, "get", "pods", "-A"); !strings.Contains(got, "web-0") || !strings.Contains(got, pod.Name) {
		t.Fatalf("kubectl get pods -A through the chart's agent:\n%s", got)
	}
	// The host identity is in the chart's Secret: a new pod (no data_dir) does not join
	// again.
	if _, err := cs.Secrets(ns).Get(ctx, sa+"-identity", metav1.GetOptions{}); err != nil {
		t.Fatalf("the identity Secret: %v", err)
	}
	stop()
	if err := os.RemoveAll(filepath.Join(dir, "data")); err != nil {
		t.Fatal(err)
	}
	joins := len(auditJSON(t, s.env.ConfigPath(), "--type=host.join"))
	start()
	if n := len(auditJSON(t, s.env.ConfigPath(), "--type=host.join")); n != joins {
		t.Fatalf("the restarted agent joined again (%d host.join events, was %d)", n, joins)
	}
	kubectlExec(t, user, "true", "through-the-chart")
	kubectlExec(t, user, "false", "through-the-chart-spdy")
	tunnelStream(t, user, []string{"logs", "-f", "web-0"}, "chart line", func() { _ = s.kube.AppendPodLog("chart line") })
}

// TestHelmTbotChart: `helm install` of the tbot chart (kubernetes join) creates its
// objects; tbot then runs as the chart's pod would — the tbot.yaml of the chart's
// ConfigMap, the service account token a TokenRequest issues for the chart's
// ServiceAccount bound to the chart's pod, and that account's API credentials (the
// chart's Role only) for its kubernetes_secret output — joins, and writes its kubeconfig
// into the chart's Secret; kubectl with that kubeconfig works. (tbot runs in this test's
// process: outside a pod, the in-cluster API address and credentials are handed to it.)
func TestHelmTbotChart(t *testing.T) {
	ctx := context.Background()
	s := newKubeSetup(t)
	cs := s.kube.Clientset.CoreV1()
	const ns, release = "ci", "deploy"
	sa := release + "-tbot"
	bot, err := s.admin.CreateBot(ctx, &pb.CreateBotRequest{Name: "chart", Roles: []string{"access", "example-role"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.admin.CreateToken(ctx, &pb.CreateTokenRequest{Type: "bot", BotName: "chart", JoinMethod: "kubernetes",
		Name: "tbot-in-cluster", AllowServiceAccounts: []string{ns + ":" + sa}, TtlSeconds: 3600}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	values := writeFile(t, filepath.Join(dir, "values.yaml"), fmt.Sprintf(`proxyAddr: %s
caPins: [%q]
clusterName: %s
joinMethod: kubernetes
joinTokenName: tbot-in-cluster
kubernetesCluster: %s
outputSecret: keyport-kubeconfig
`, s.env.WebAddr, bot.GetHostCaPin(), testenv.ClusterName, guideCluster))
	cm := helmInstall(t, s.kube, "tbot", release, ns, values, sa)
	pod := chartPod(t, s.kube, ns, release)
	tr, err := cs.ServiceAccounts(ns).CreateToken(ctx, sa, &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	saToken := tr.Status.Token
	cfg, err := tbotconfig.Parse("tbot.yaml", []byte(cm.Data["tbot.yaml"]))
	if err != nil {
		t.Fatalf("the chart's tbot.yaml: %v\n%s", err, cm.Data["tbot.yaml"])
	}
	cfg.Oneshot, cfg.DiagAddr = true, ""
	hc, err := rest.HTTPClientFor(&rest.Config{Host: s.kube.APIServerURL, TLSClientConfig: rest.TLSClientConfig{CAData: s.kube.CAData}})
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("POD_NAMESPACE", ns)
	b, err := tbot.New(tbot.Options{Config: cfg, KubernetesTokenPath: writeFile(t, filepath.Join(dir, "token"), saToken),
		KubeAPI: &destination.KubeAPI{URL: s.kube.APIServerURL, Client: hc, Token: func() (string, error) { return saToken, nil }}})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.OneShot(ctx); err != nil {
		t.Fatalf("tbot as the chart's pod: %v", err)
	}
	sec, err := cs.Secrets(ns).Get(ctx, "keyport-kubeconfig", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	path := writeFile(t, filepath.Join(dir, "kubeconfig.yaml"), string(sec.Data["kubeconfig.yaml"]))
	if out, err := kubectl(t, path, "get", "pods", "-A"); err != nil || !strings.Contains(out, "web-0") {
		t.Fatalf("kubectl with the chart Secret's kubeconfig: %v\n%s", err, out)
	}
	// The chart's Role reaches that one Secret only.
	other := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "not-tbots"}, StringData: map[string]string{"k": "v"}}
	if _, err := cs.Secrets(ns).Create(ctx, other, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.kube.APIServerURL+"/api/v1/namespaces/"+ns+"/secrets/not-tbots", nil)
	req.Header.Set("Authorization", "Bearer "+saToken)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("the chart's service account read another Secret: %s", resp.Status)
	}
}

// chartPod waits until the one pod of a release runs, binding it to the kwok node as
// the scheduler the test bed lacks would.
func chartPod(t *testing.T, k *kubeenv.Env, ns, release string) corev1.Pod {
	t.Helper()
	ctx := context.Background()
	cs := k.Clientset.CoreV1()
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := exec.Command(tools.Path(t, "kubectl"), "--kubeconfig", k.KubeconfigPath, "-n", ns, "get", "all,events", "-o", "wide").CombinedOutput()
			t.Logf("namespace %s:\n%s", ns, out)
		}
	})
	var pod corev1.Pod
	waitUntil(t, 30*time.Second, func() bool {
		pods, err := cs.Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=" + release})
		if err != nil || len(pods.Items) != 1 {
			return false
		}
		if p := pods.Items[0]; p.Spec.NodeName == "" {
			_ = cs.Pods(ns).Bind(ctx, &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: p.Name},
				Target: corev1.ObjectReference{Kind: "Node", Name: k.NodeName}}, metav1.CreateOptions{})
			return false
		}
		pod = pods.Items[0]
		return pod.Status.Phase == corev1.PodRunning
	})
	return pod
}

// staticJWKSToken makes, with the built tctl, kube join token name of type static_jwks
// holding the control plane's service account keys (kubectl get --raw /openid/v1/jwks)
// and allowing service account sa ("namespace:name").
func staticJWKSToken(t *testing.T, s *agentSetup, name, sa string) {
	t.Helper()
	jwks, err := s.kube.Clientset.CoreV1().RESTClient().Get().AbsPath("/openid/v1/jwks").DoRaw(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	jwksFile := writeFile(t, filepath.Join(t.TempDir(), "jwks.json"), string(jwks))
	if out, err := exec.Command(filepath.Join(binDir, "tctl"), "-c", s.env.ConfigPath(), "tokens", "add", "--type=kube", "--join-method=kubernetes",
		"--kubernetes-type=static_jwks", "--jwks-file="+jwksFile, "--name="+name, "--allow-service-account="+sa).CombinedOutput(); err != nil {
		t.Fatalf("tctl tokens add: %v\n%s", err, out)
	}
}

// helmInstall installs chart as release in ns with values and returns the ConfigMap the
// chart renders (named configMap).
func helmInstall(t *testing.T, k *kubeenv.Env, chart, release, ns, values, configMap string) *corev1.ConfigMap {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join(chartsDir, chart))
	if err != nil {
		t.Fatal(err)
	}
	if out, err := helm(t, k.KubeconfigPath, "install", release, dir, "-f", values, "--namespace", ns, "--create-namespace"); err != nil {
		t.Fatalf("helm install %s: %v\n%s", chart, err, out)
	}
	cm, err := k.Clientset.CoreV1().ConfigMaps(ns).Get(context.Background(), configMap, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return cm
}

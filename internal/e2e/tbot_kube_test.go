package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
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
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
	"github.com/keyport/keyport/internal/clock"
	"github.com/keyport/keyport/internal/identityfile"
	"github.com/keyport/keyport/internal/tbot"
	"github.com/keyport/keyport/internal/tbot/config"
	"github.com/keyport/keyport/internal/tbot/destination"
	"github.com/keyport/keyport/internal/testenv/tools"
	"github.com/keyport/keyport/internal/types"
)

// botNamespace is where the tests' "pods" and their service accounts live.
const botNamespace = "bots"

// TestTbotKubernetes runs tbot against a real control plane enrolled in Keyport (the
// guide's setup): the kubernetes join method with service account tokens that the real
// API server issued (TokenRequest), a kubernetes_secret destination writing a Secret in
// the real API server, and the daemon renewing under a running `kubectl get pods -w`.
func TestTbotKubernetes(t *testing.T) {
	s := newKubeSetup(t)
	ctx := context.Background()
	if _, err := s.kube.Clientset.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: botNamespace}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The guide's bot: role access, then example-role (kubernetes_groups: editor).
	bot, err := s.admin.CreateBot(ctx, &pb.CreateBotRequest{Name: "example", Roles: []string{"access", "example-role"}})
	if err != nil {
		t.Fatal(err)
	}
	pin := bot.GetHostCaPin()
	newToken := func(t *testing.T) string {
		t.Helper()
		resp, err := s.admin.CreateToken(ctx, &pb.CreateTokenRequest{Type: "bot", BotName: "example"})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetToken()
	}

	t.Run("join", func(t *testing.T) { testKubernetesJoin(t, s, pin) })
	t.Run("secret", func(t *testing.T) { testKubeSecretDestination(t, s, pin, newToken(t)) })
	t.Run("watch", func(t *testing.T) { testDaemonUnderWatch(t, s, pin, newToken(t)) })
}

// serviceAccountToken makes a service account with a pod and returns a token the API
// server issued for it by TokenRequest: bound to the pod (what a projected token volume
// holds) unless bound is false.
func serviceAccountToken(t *testing.T, s *kubeSetup, name string, bound bool) string {
	t.Helper()
	ctx := context.Background()
	cs := s.kube.Clientset.CoreV1()
	if _, err := cs.ServiceAccounts(botNamespace).Get(ctx, name, metav1.GetOptions{}); err != nil {
		if _, err := cs.ServiceAccounts(botNamespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{}}
	if bound {
		pod, err := cs.Pods(botNamespace).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{GenerateName: name + "-"},
			Spec: corev1.PodSpec{ServiceAccountName: name, AutomountServiceAccountToken: new(bool),
				Containers: []corev1.Container{{Name: "tbot", Image: "keyport/tbot"}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		req.Spec.BoundObjectRef = &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID}
	}
	tr, err := cs.ServiceAccounts(botNamespace).CreateToken(ctx, name, req, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

func writeFile(t *testing.T, path, data string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// runTbotEnv runs the built tbot with extra environment variables.
func runTbotEnv(t *testing.T, env []string, args ...string) tbotRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "tbot"), args...)
	cmd.Env = append(append(os.Environ(), config.TokenEnv+"="), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	r := tbotRun{stdout: out.String(), stderr: errb.String(), took: time.Since(start)}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running tbot: %v", err)
	}
	return r
}

// testKubernetesJoin: a token resource of join method kubernetes lets pods of an allowed
// service account join with their projected token, as many times as they start; other
// service accounts and tokens not bound to a pod are refused with a clear message.
func testKubernetesJoin(t *testing.T, s *kubeSetup, pin string) {
	ctx := context.Background()
	if _, err := s.admin.CreateBot(ctx, &pb.CreateBotRequest{Name: "k8s", Roles: []string{"access", "example-role"}}); err != nil {
		t.Fatal(err)
	}
	// tctl tokens add --type=bot --bot-name=k8s --join-method=kubernetes --name=k8s-join
	//   --allow-service-account=bots:tbot
	if _, err := s.admin.CreateToken(ctx, &pb.CreateTokenRequest{Type: "bot", BotName: "k8s", JoinMethod: types.JoinMethodKubernetes,
		Name: "k8s-join", AllowServiceAccounts: []string{botNamespace + ":tbot"}, TtlSeconds: 3600}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tokenPath := writeFile(t, filepath.Join(dir, "join-sa-token"), serviceAccountToken(t, s, "tbot", true))
	env := []string{tbot.KubernetesTokenPathEnv + "=" + tokenPath}

	// Teleport's tbot.yaml for this method: the token's name in onboarding.token.
	dest := filepath.Join(dir, "machine-id")
	cfg := writeFile(t, filepath.Join(dir, "tbot.yaml"), fmt.Sprintf(`version: v2
proxy_server: %s
onboarding:
  join_method: kubernetes
  token: k8s-join
  ca_pins: ['%s']
storage: {type: memory}
outputs:
  - type: kubernetes
    kubernetes_cluster: %s
    destination: {type: directory, path: %s}
`, s.env.WebAddr, pin, guideCluster, dest))
	r := runTbotEnv(t, env, "start", "-c", cfg, "--oneshot")
	if r.code != 0 {
		t.Fatalf("kubernetes join: exit %d\n%s", r.code, r.stderr)
	}
	out, err := kubectl(t, filepath.Join(dest, "kubeconfig.yaml"), "get", "pods", "-A")
	if err != nil || !strings.Contains(out, "web-0") {
		t.Fatalf("kubectl get pods -A with the joined bot's kubeconfig: %v\n%s", err, out)
	}

	// The same token joins again (a second pod, or the same one restarted with memory
	// storage), through the flags this time: kubernetes tokens are not single-use.
	r = runTbotEnv(t, env, "start", "kubernetes", "--proxy-server="+s.env.WebAddr, "--join-method=kubernetes", "--token=k8s-join",
		"--ca-pin="+pin, "--oneshot", "--storage=memory://", "--destination=file://"+filepath.Join(dir, "second"), "--kubernetes-cluster="+guideCluster)
	if r.code != 0 {
		t.Fatalf("second kubernetes join: exit %d\n%s", r.code, r.stderr)
	}
	bis, err := s.admin.ListBotInstances(ctx, &pb.ListBotInstancesRequest{BotName: "k8s"})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(bis.GetInstances()); n != 2 {
		t.Fatalf("%d bot instances, want 2 (one per join)", n)
	}
	for _, bi := range bis.GetInstances() {
		if bi.GetJoinMethod() != types.JoinMethodKubernetes {
			t.Errorf("instance %s: join method %q", bi.GetInstanceId(), bi.GetJoinMethod())
		}
	}

	// Refusals: each one line, exit 1.
	for _, tt := range []struct {
		name, jwt, want string
	}{
		{"service account not in allow", serviceAccountToken(t, s, "other", true), `service account "bots:other" is not allowed to join with token "k8s-join"`},
		{"token not bound to a pod", serviceAccountToken(t, s, "tbot", false), `the token of service account "bots:tbot" is not bound to a pod`},
		{"forged token", "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6Ym90czp0Ym90In0.c2ln", `rejected the service account token`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := writeFile(t, filepath.Join(t.TempDir(), "token"), tt.jwt)
			r := runTbotEnv(t, []string{tbot.KubernetesTokenPathEnv + "=" + p}, "start", "-c", cfg, "--oneshot")
			if r.code != 1 || !strings.HasPrefix(r.stderr, "ERROR: ") || !strings.Contains(r.stderr, tt.want) {
				t.Fatalf("exit %d, stderr %q; want exit 1 and %q", r.code, r.stderr, tt.want)
			}
			t.Logf("refused: %s", strings.TrimSpace(r.stderr))
		})
	}

	// The audit log names the service account and the pod of each join.
	log, err := os.ReadFile(filepath.Join(s.env.Config.Keyport.DataDir, "log", "events.log"))
	if err != nil {
		t.Fatal(err)
	}
	joins := 0
	for _, line := range strings.Split(string(log), "\n") {
		if strings.Contains(line, `"bot.join"`) && strings.Contains(line, `"bots:tbot"`) && strings.Contains(line, `"tbot-`) {
			joins++
		}
	}
	if joins != 2 {
		t.Errorf("%d bot.join audit events naming the service account and pod, want 2", joins)
	}
}

// testKubeSecretDestination: a kubernetes output into a kubernetes_secret destination
// writes a Secret in the real API server whose kubeconfig.yaml works through Keyport, and
// a later run updates it in place.
func testKubeSecretDestination(t *testing.T, s *kubeSetup, pin, token string) {
	ctx := context.Background()
	cfg, err := config.Parse("tbot.yaml", []byte(fmt.Sprintf(`version: v2
proxy_server: %s
onboarding: {token: %s, ca_pins: ['%s']}
storage: {type: memory}
oneshot: true
outputs:
  - type: kubernetes
    kubernetes_cluster: %s
    destination: {type: kubernetes_secret, name: keyport-kube, namespace: %s, labels: {app: tbot}}
`, s.env.WebAddr, token, pin, guideCluster, botNamespace)))
	if err != nil {
		t.Fatal(err)
	}
	// tbot is not in a pod here: reach the test API server with its admin credentials.
	hc, err := rest.HTTPClientFor(s.kube.Config)
	if err != nil {
		t.Fatal(err)
	}
	b, err := tbot.New(tbot.Options{Config: cfg, KubeAPI: &destination.KubeAPI{URL: s.kube.APIServerURL, Client: hc}})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.OneShot(ctx); err != nil {
		t.Fatal(err)
	}
	sec, err := s.kube.Clientset.CoreV1().Secrets(botNamespace).Get(ctx, "keyport-kube", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sec.Labels["app"] != "tbot" || sec.Type != corev1.SecretTypeOpaque {
		t.Fatalf("Secret labels %v, type %q", sec.Labels, sec.Type)
	}
	var keys []string
	for k := range sec.Data {
		keys = append(keys, k)
	}
	for _, k := range []string{"kubeconfig.yaml", "tlscert", "key", "tlscacerts"} {
		if len(sec.Data[k]) == 0 {
			t.Fatalf("Secret lacks %s (has %v)", k, keys)
		}
	}
	kc, err := clientcmd.Load(sec.Data["kubeconfig.yaml"])
	if err != nil {
		t.Fatal(err)
	}
	ai := kc.AuthInfos[kc.CurrentContext]
	if ai == nil || ai.Exec != nil || !bytes.Equal(ai.ClientCertificateData, sec.Data["tlscert"]) {
		t.Fatalf("the Secret's kubeconfig must embed the certificate: %+v", ai)
	}
	// What a pod mounting the Secret would do with it.
	path := writeFile(t, filepath.Join(t.TempDir(), "kubeconfig.yaml"), string(sec.Data["kubeconfig.yaml"]))
	if out, err := kubectl(t, path, "get", "pods", "-A"); err != nil || !strings.Contains(out, "web-0") {
		t.Fatalf("kubectl with the Secret's kubeconfig: %v\n%s", err, out)
	}

	// The next run renews and replaces the Secret's data in one update.
	if err := b.OneShot(ctx); err != nil {
		t.Fatal(err)
	}
	sec2, err := s.kube.Clientset.CoreV1().Secrets(botNamespace).Get(ctx, "keyport-kube", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sec2.ResourceVersion == sec.ResourceVersion || bytes.Equal(sec2.Data["tlscert"], sec.Data["tlscert"]) {
		t.Fatal("the second run did not update the Secret")
	}
}

// testDaemonUnderWatch: the daemon (injected clock) renews while `kubectl get pods -w`,
// started through the exec-plugin kubeconfig, keeps running and keeps receiving events;
// a kubectl started after the renewal gets the new certificate from the exec plugin.
func testDaemonUnderWatch(t *testing.T, s *kubeSetup, pin, token string) {
	dir := t.TempDir()
	dest := filepath.Join(dir, "machine-id")
	cfg, err := config.Parse("tbot.yaml", []byte(fmt.Sprintf(`version: v2
proxy_server: %s
onboarding: {token: %s, ca_pins: ['%s']}
storage: {type: directory, path: %s}
outputs:
  - type: kubernetes
    kubernetes_cluster: %s
    destination: {type: directory, path: %s}
`, s.env.WebAddr, token, pin, filepath.Join(dir, "bot"), guideCluster, dest)))
	if err != nil {
		t.Fatal(err)
	}
	clk := clock.NewFake(time.Now())
	runTbotDaemon(t, tbot.Options{Config: cfg, Clock: clk, Jitter: func() float64 { return 0.5 }, Executable: filepath.Join(binDir, "tbot")})
	outID := func() *identityfile.Identity {
		id, err := identityfile.Read(filepath.Join(dest, "identity"))
		if err != nil || id.Identity == nil {
			return nil
		}
		return id
	}
	gen := func() uint64 {
		if id := outID(); id != nil {
			return id.Identity.Generation
		}
		return 0
	}
	waitUntil(t, 20*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(dest, "kubeconfig.yaml"))
		return err == nil && gen() == 1
	})

	// kubectl get pods -w through the exec plugin (the built tbot).
	watch := exec.Command(tools.Path(t, "kubectl"), "--kubeconfig", filepath.Join(dest, "kubeconfig.yaml"), "get", "pods", "-n", "default", "-w")
	stdout, err := watch.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	watch.Stderr = &stderr
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- watch.Wait() }()
	t.Cleanup(func() {
		_ = watch.Process.Kill()
		<-exited
	})
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	expect := func(what string) {
		t.Helper()
		timeout := time.After(60 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("kubectl get pods -w ended before %q; stderr:\n%s", what, stderr.String())
				}
				if strings.Contains(l, what) {
					return
				}
			case <-timeout:
				t.Fatalf("kubectl get pods -w: no %q in 60s; stderr:\n%s", what, stderr.String())
			}
		}
	}
	expect("web-0")

	// Renew: the identity service waits on the fake clock.
	before := outID()
	clk.BlockUntil(1)
	clk.Advance(20*time.Minute + time.Second)
	waitUntil(t, 20*time.Second, func() bool { return gen() == 2 })
	select {
	case err := <-exited:
		t.Fatalf("kubectl get pods -w exited across the renewal: %v\n%s", err, stderr.String())
	default:
	}
	// The running watch still streams: a new pod shows up in it.
	if err := s.kube.CreatePod(context.Background(), "default", "web-renewed"); err != nil {
		t.Fatal(err)
	}
	expect("web-renewed")

	// A kubectl started now runs the exec plugin, which hands it the renewed certificate.
	after := outID()
	if after == nil || bytes.Equal(after.CertPEM, before.CertPEM) {
		t.Fatal("the output's certificate did not change at renewal")
	}
	creds := runTbot(t, "kube", "credentials", "--destination-dir="+dest)
	var ec struct {
		Status struct {
			ClientCertificateData string `json:"clientCertificateData"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(creds.stdout), &ec); err != nil || ec.Status.ClientCertificateData != string(after.CertPEM) {
		t.Fatalf("exec plugin after renewal: %v (exit %d, %s)", err, creds.code, creds.stderr)
	}
	out, err := kubectl(t, filepath.Join(dest, "kubeconfig.yaml"), "get", "pods", "-n", "default")
	if err != nil || !strings.Contains(out, "web-renewed") {
		t.Fatalf("kubectl after renewal: %v\n%s", err, out)
	}
}

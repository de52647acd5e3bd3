package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
	"github.com/keyport/keyport/internal/client"
	"github.com/keyport/keyport/internal/clock"
	"github.com/keyport/keyport/internal/config"
	"github.com/keyport/keyport/internal/identityfile"
	"github.com/keyport/keyport/internal/kubeconfig"
	"github.com/keyport/keyport/internal/service"
	"github.com/keyport/keyport/internal/testenv"
	"github.com/keyport/keyport/internal/testenv/freeport"
	"github.com/keyport/keyport/internal/testenv/kubeenv"
	"github.com/keyport/keyport/internal/testenv/tools"
	"github.com/keyport/keyport/internal/tlsca"
	"github.com/keyport/keyport/internal/tunnel"
)

// agentSetup is a Keyport cluster with auth and proxy only, and a real control plane
// that only Kubernetes Services in other processes enrol, through reverse tunnels.
type agentSetup struct {
	kube  *kubeenv.Env
	env   *testenv.Env
	admin *client.Client
	pin   string
	// web is the proxy agents dial (env's unless set).
	web string
}

func newAgentSetup(t *testing.T) *agentSetup {
	t.Helper()
	ctx := context.Background()
	k := startGuideControlPlane(t)
	env := testenv.New(t) // no kubernetes_service in the main cluster
	admin := env.AdminClient()
	createResource(t, admin, guideExampleRole())
	if _, err := admin.CreateUser(ctx, &pb.CreateUserRequest{Name: "alice", Roles: []string{"example-role"}}); err != nil {
		t.Fatal(err)
	}
	return &agentSetup{kube: k, env: env, admin: admin, pin: tlsca.Pin(env.Process.Auth.HostCA().Cert), web: env.WebAddr}
}

func (s *agentSetup) kubeToken(t *testing.T) string {
	t.Helper()
	resp, err := s.admin.CreateToken(context.Background(), &pb.CreateTokenRequest{Type: "kube", TtlSeconds: 600})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetToken()
}

// agentConfig writes the keyport.yaml of a Kubernetes Service that joins s's cluster
// through the proxy.
func (s *agentSetup) agentConfig(t *testing.T, dir, node, token, pin, kubeconfigPath, extra string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	yaml := fmt.Sprintf(`version: v3
keyport:
  nodename: %s
  data_dir: %s
  proxy_server: %s
  join_params: {method: token, token_name: %q}
  ca_pins: [%q]
%sauth_service: {enabled: false}
proxy_service: {enabled: false}
kubernetes_service:
  enabled: true
  kubeconfig_file: %s
  labels: {env: nat, agent: %s}
`, node, filepath.Join(dir, "data"), s.web, token, pin, extra, kubeconfigPath, node)
	path := filepath.Join(dir, "keyport.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// runningAgent is a Kubernetes Service started in process.
type runningAgent struct {
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// stop stops the agent and waits for it; safe to call twice.
func (a *runningAgent) stop(t *testing.T) {
	t.Helper()
	a.once.Do(func() {
		a.cancel()
		select {
		case err := <-a.done:
			if err != nil {
				t.Errorf("agent stopped with: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("agent did not stop in 30s")
		}
	})
}

// newAgent builds the agent process (joining happens here); it fails when New does.
func newAgent(t *testing.T, cfgPath string) (*service.Process, error) {
	t.Helper()
	cfg, err := config.Read(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	logs := io.Discard
	if testing.Verbose() {
		logs = os.Stderr
	}
	return service.New(context.Background(), service.Options{Config: cfg, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
}

// startAgent starts an agent and waits until its tunnel is up.
func startAgent(t *testing.T, cfgPath string) *runningAgent {
	t.Helper()
	p, err := newAgent(t, cfgPath)
	if err != nil {
		t.Fatalf("starting the agent: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &runningAgent{cancel: cancel, done: make(chan error, 1)}
	ready := make(chan struct{})
	go func() {
		defer p.Close()
		a.done <- p.ServeWithReady(ctx, ready)
	}()
	select {
	case <-ready:
	case err := <-a.done:
		cancel()
		t.Fatalf("agent stopped during start: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("agent tunnel not up within 30s")
	}
	t.Cleanup(func() { a.stop(t) })
	return a
}

// userKubeconfig is a kubeconfig for kube cluster kc with a certificate for user.
func (s *agentSetup) userKubeconfig(t *testing.T, user, kc string) string {
	t.Helper()
	id := signIdentity(t, s.admin, user)
	keyPEM, err := tlsca.EncodeKeyPEM(id.Key)
	if err != nil {
		t.Fatal(err)
	}
	cfg := kubeconfig.Build(kubeconfig.Params{ProxyAddr: s.env.WebAddr, ClusterName: testenv.ClusterName, HostCAPEM: id.HostCAs[0],
		Clusters: []kubeconfig.Cluster{{ContextName: testenv.ClusterName + "-" + kc, KubeCluster: kc}}, CertPEM: id.CertPEM, KeyPEM: keyPEM})
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

// waitKubectl retries kubectl until it succeeds: the proxy learns of a tunnel a moment
// after the agent sees it open.
func waitKubectl(t *testing.T, kc string, args ...string) string {
	t.Helper()
	var out string
	var err error
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err = kubectl(t, kc, args...)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func kubectlExec(t *testing.T, kc, websockets, word string) {
	t.Helper()
	cmd := exec.Command(tools.Path(t, "kubectl"), "--kubeconfig", kc, "exec", "web-0", "--", "echo", word)
	cmd.Env = append(os.Environ(), "KUBECTL_REMOTE_COMMAND_WEBSOCKETS="+websockets)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || strings.TrimSpace(string(out)) != word {
		t.Errorf("exec through the tunnel (websockets=%s): %v %q %s", websockets, err, out, stderr.String())
	}
}

// tunnelRequest asks the proxy for a tunnel with the given client certificate.
func tunnelRequest(t *testing.T, webAddr string, hostCA []byte, id *identityfile.Identity) (int, string) {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(hostCA)
	tc := &tls.Config{RootCAs: pool, ServerName: tlsca.ServerName, NextProtos: []string{"http/1.1"}}
	if id != nil {
		kp, err := id.TLSCertificate()
		if err != nil {
			t.Fatal(err)
		}
		tc.Certificates = []tls.Certificate{kp}
	}
	clt := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: 10 * time.Second}
	req, _ := http.NewRequest(http.MethodGet, "https://"+webAddr+tunnel.Path, nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", tunnel.Protocol)
	req.Header.Set(tunnel.HeaderClusters, guideCluster)
	resp, err := clt.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestAgentReverseTunnel runs the Kubernetes Service in its own process (in process here,
// as the built binary in TestAgentBinary's part below): it joins with a kube token through
// the proxy, heartbeats over the API, and serves kubectl through its reverse tunnel.
func TestAgentReverseTunnel(t *testing.T) {
	ctx := context.Background()
	s := newAgentSetup(t)
	dir := t.TempDir()
	token := s.kubeToken(t)

	t.Run("wrong pin refuses before the token is sent", func(t *testing.T) {
		wrong := "sha256:" + strings.Repeat("0", 64)
		_, err := newAgent(t, s.agentConfig(t, filepath.Join(dir, "wrong-pin"), "agent-x", token, wrong, s.kube.KubeconfigPath, ""))
		if err == nil || !strings.Contains(err.Error(), "before sending the join token") {
			t.Fatalf("err = %v", err)
		}
	})

	top := t
	cfg1 := s.agentConfig(t, filepath.Join(dir, "agent-1"), "agent-1", token, s.pin, s.kube.KubeconfigPath, "")
	agent := startAgent(t, cfg1)

	t.Run("kube ls shows the cluster with the agent's labels", func(t *testing.T) {
		resp, err := s.admin.ListKubeClusters(ctx, &pb.ListKubeClustersRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.GetClusters()) != 1 {
			t.Fatalf("clusters = %v", resp.GetClusters())
		}
		c := resp.GetClusters()[0]
		if c.GetName() != guideCluster || c.GetService() != "agent-1" || c.GetLabels()["env"] != "nat" || c.GetLabels()["agent"] != "agent-1" {
			t.Errorf("cluster = %v", c)
		}
		out, err := exec.Command(filepath.Join(binDir, "tctl"), "-c", s.env.ConfigPath(), "kube", "ls").CombinedOutput()
		if err != nil || !strings.Contains(string(out), guideCluster) || !strings.Contains(string(out), "env=nat") {
			t.Errorf("tctl kube ls: %v\n%s", err, out)
		}
	})

	kc := s.userKubeconfig(t, "alice", guideCluster)
	t.Run("kubectl through the tunnel", func(t *testing.T) {
		out := waitKubectl(t, kc, "get", "pods", "-A")
		for _, want := range []string{"web-0", "dns-0", "kube-system", "Running"} {
			if !strings.Contains(out, want) {
				t.Errorf("kubectl get pods -A lacks %q:\n%s", want, out)
			}
		}
		if out, _ := kubectl(t, kc, "auth", "can-i", "create", "clusterrolebindings"); !strings.HasSuffix(strings.TrimSpace(out), "no") {
			t.Errorf("impersonation not applied through the tunnel: can-i create clusterrolebindings = %s", out)
		}
	})

	t.Run("tctl kube can-i asks the tunnelled cluster", func(t *testing.T) {
		canI := func(args ...string) (string, error) {
			full := append([]string{"-c", s.env.ConfigPath(), "kube", "can-i", "--user=alice", "--cluster=" + guideCluster}, args...)
			out, err := exec.Command(filepath.Join(binDir, "tctl"), full...).CombinedOutput()
			return string(out), err
		}
		if out, err := canI("create", "deployments.apps", "-n", "default"); err != nil || strings.TrimSpace(out) != "yes" {
			t.Errorf("can-i create deployments: %v\n%s", err, out)
		}
		out, err := canI("create", "clusterrolebindings.rbac.authorization.k8s.io")
		if err == nil || !strings.HasPrefix(out, "no - denied by the cluster's RBAC (as alice, groups editor,system:authenticated)") {
			t.Errorf("can-i create clusterrolebindings: %v\n%s", err, out)
		}
	})

	t.Run("exec through the tunnel", func(t *testing.T) {
		kubectlExec(t, kc, "true", "hello-ws")
		kubectlExec(t, kc, "false", "hello-spdy")
	})

	t.Run("streams through the tunnel", func(t *testing.T) {
		if err := s.kube.AppendPodLog("first line"); err != nil {
			t.Fatal(err)
		}
		tunnelStream(t, kc, []string{"logs", "-f", "web-0"}, "second line", func() { _ = s.kube.AppendPodLog("second line") })
		tunnelStream(t, kc, []string{"get", "pods", "-w", "-n", "default"}, "web-9", func() { _ = s.kube.CreatePod(context.Background(), "default", "web-9") })
		tunnelPortForward(t, kc)
		kubectlAttach(t, s.kube, kc)
	})

	t.Run("the token cannot be reused", func(t *testing.T) {
		_, err := newAgent(t, s.agentConfig(t, filepath.Join(dir, "agent-2"), "agent-2", token, s.pin, s.kube.KubeconfigPath, ""))
		if err == nil || !strings.Contains(err.Error(), "the join token has already been used") {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("only kube host certificates open tunnels", func(t *testing.T) {
		hostCA := s.env.Process.Auth.HostCA().CertPEM
		alice := signIdentity(t, s.admin, "alice")
		key, err := tlsca.GenerateKey("", clock.Rand)
		if err != nil {
			t.Fatal(err)
		}
		proxyPEM, err := s.env.Process.Auth.IssueHostCert(key.Public(), "impostor", "proxy", nil, nil, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		proxyCert, _ := tlsca.ParseCertPEM(proxyPEM)
		impostor := &identityfile.Identity{Key: key, CertPEM: proxyPEM, Cert: proxyCert}
		for _, tc := range []struct {
			name string
			id   *identityfile.Identity
			code int
			msg  string
		}{
			{"no certificate", nil, http.StatusUnauthorized, "needs the Kubernetes Service's host certificate"},
			{"user certificate", alice, http.StatusForbidden, "only a Kubernetes Service's host certificate (system role kube)"},
			{"proxy host certificate", impostor, http.StatusForbidden, "only a Kubernetes Service's host certificate (system role kube)"},
		} {
			code, body := tunnelRequest(t, s.env.WebAddr, hostCA, tc.id)
			if code != tc.code || !strings.Contains(body, tc.msg) {
				t.Errorf("%s: %d %s", tc.name, code, body)
			}
		}
	})

	t.Run("restart uses the stored identity", func(t *testing.T) {
		agent.stop(t)
		fi, err := os.Stat(filepath.Join(dir, "agent-1", "data", service.HostIdentityFile))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("host identity: %v %v", fi, err)
		}
		// The configured token is spent: starting again must not need it.
		agent = startAgent(top, cfg1)
		waitKubectl(t, kc, "get", "pods", "-n", "default")
		kubectlExec(t, kc, "true", "again")
	})

	t.Run("built keyport binary as the agent", func(t *testing.T) {
		// A second cluster name for the same API server, served by the binary.
		raw, err := clientcmd.LoadFromFile(s.kube.KubeconfigPath)
		if err != nil {
			t.Fatal(err)
		}
		raw.Contexts["nat-cluster"] = raw.Contexts[guideCluster]
		delete(raw.Contexts, guideCluster)
		raw.CurrentContext = "nat-cluster"
		bdir := filepath.Join(dir, "binary")
		if err := os.MkdirAll(bdir, 0o700); err != nil {
			t.Fatal(err)
		}
		kcPath := filepath.Join(bdir, "kubeconfig")
		if err := clientcmd.WriteToFile(*raw, kcPath); err != nil {
			t.Fatal(err)
		}
		// The token comes from `tctl tokens add --type=kube`.
		out, err := exec.Command(filepath.Join(binDir, "tctl"), "-c", s.env.ConfigPath(), "tokens", "add", "--type=kube").CombinedOutput()
		if err != nil {
			t.Fatalf("tctl tokens add: %v\n%s", err, out)
		}
		m := regexp.MustCompile(`The kube join token: ([0-9a-f]{64})`).FindStringSubmatch(string(out))
		if m == nil {
			t.Fatalf("tctl tokens add printed:\n%s", out)
		}
		diag := freeport.Addr(t)
		cfgPath := s.agentConfig(t, bdir, "agent-bin", m[1], s.pin, kcPath, "  diag_addr: "+diag+"\n")
		logPath := filepath.Join(bdir, "keyport.log")
		logf, err := os.Create(logPath)
		if err != nil {
			t.Fatal(err)
		}
		defer logf.Close()
		cmd := exec.Command(filepath.Join(binDir, "keyport"), "start", "-c", cfgPath)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		defer func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(20 * time.Second):
				_ = cmd.Process.Kill()
				t.Error("keyport agent did not stop on SIGTERM")
			}
			if t.Failed() {
				logs, _ := os.ReadFile(logPath)
				t.Logf("agent logs:\n%s", logs)
			}
		}()
		deadline := time.Now().Add(30 * time.Second)
		for readyz(diag) != http.StatusOK {
			select {
			case err := <-exited:
				logs, _ := os.ReadFile(logPath)
				t.Fatalf("keyport agent exited: %v\n%s", err, logs)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatal("the binary agent's tunnel was not up within 30s")
			}
			time.Sleep(100 * time.Millisecond)
		}
		resp, err := s.admin.ListKubeClusters(ctx, &pb.ListKubeClustersRequest{})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, c := range resp.GetClusters() {
			names = append(names, c.GetName()+"@"+c.GetService())
		}
		if strings.Join(names, ",") != "example-k8s-cluster@agent-1,nat-cluster@agent-bin" {
			t.Errorf("clusters = %v", names)
		}
		kc2 := s.userKubeconfig(t, "alice", "nat-cluster")
		out2 := waitKubectl(t, kc2, "get", "pods", "-A")
		if !strings.Contains(out2, "web-0") {
			t.Errorf("kubectl through the binary agent:\n%s", out2)
		}
		kubectlExec(t, kc2, "true", "from-binary")
	})

	t.Run("a lock on the host closes its tunnel", func(t *testing.T) {
		if _, err := s.admin.CreateLock(ctx, &pb.CreateLockRequest{User: "agent-1", Message: "host compromised"}); err != nil {
			t.Fatal(err)
		}
		var out string
		waitUntil(t, 10*time.Second, func() bool {
			out, _ = kubectl(t, kc, "get", "pods", "-n", "default")
			return strings.Contains(out, "its Kubernetes Service is not connected")
		})
		// The reconnecting agent is refused; the other agent's cluster still works.
		code, body := tunnelRequest(t, s.env.WebAddr, s.env.Process.Auth.HostCA().CertPEM, readIdentity(t, filepath.Join(dir, "agent-1", "data", service.HostIdentityFile)))
		if code != http.StatusForbidden || !strings.Contains(body, "host compromised") {
			t.Errorf("locked host opening a tunnel: %d %s", code, body)
		}
	})
}

// tunnelStream (used directly and through the tunnel) runs a kubectl command that stays open, pokes the cluster once the first
// line is out, and waits for want.
func tunnelStream(t *testing.T, kc string, args []string, want string, poke func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, tools.Path(t, "kubectl"), append([]string{"--kubeconfig", kc}, args...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	sc := bufio.NewScanner(out)
	if !sc.Scan() {
		t.Fatalf("kubectl %s: no output: %v", strings.Join(args, " "), sc.Err())
	}
	poke()
	for sc.Scan() {
		if strings.Contains(sc.Text(), want) {
			return
		}
	}
	t.Fatalf("kubectl %s ended without %q: %v", strings.Join(args, " "), want, sc.Err())
}

// tunnelPortForward (used directly and through the tunnel) forwards a local port to a kwok pod and reads an answer through it.
func tunnelPortForward(t *testing.T, kc string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, tools.Path(t, "kubectl"), "--kubeconfig", kc, "port-forward", "pod/web-0", ":8080")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	sc := bufio.NewScanner(out)
	var local string
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 3 && f[0] == "Forwarding" {
			local = f[2]
			break
		}
	}
	if local == "" {
		t.Fatal("port-forward printed no local address")
	}
	resp, err := http.Get("http://" + local + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if len(body) == 0 {
		t.Fatal("empty answer through port-forward")
	}
}

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
	"github.com/keyport/keyport/internal/client"
	"github.com/keyport/keyport/internal/identityfile"
	"github.com/keyport/keyport/internal/kubeconfig"
	"github.com/keyport/keyport/internal/service"
	"github.com/keyport/keyport/internal/testenv"
	"github.com/keyport/keyport/internal/testenv/etcdtest"
	"github.com/keyport/keyport/internal/testenv/freeport"
	"github.com/keyport/keyport/internal/testenv/kubeenv"
	"github.com/keyport/keyport/internal/testenv/proc"
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
	s := &agentSetup{kube: k, env: a, admin: admin, pin: tlsca.Pin(a.Process.Auth.HostCA().Cert), web: a.WebAddr}
	startAgent(t, s.agentConfig(t, t.TempDir(), "edge-1", s.kubeToken(t), s.pin, k.KubeconfigPath, ""))

	// Both proxies carry a tunnel for the cluster.
	waitTunnelsOnEveryProxy(t, admin, 2)
	out, err := exec.Command(filepath.Join(binDir, "tctl"), "-c", a.ConfigPath(), "proxies", "ls").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "proxy-a") || !strings.Contains(string(out), "proxy-b") || strings.Count(string(out), guideCluster) != 2 {
		t.Fatalf("tctl proxies ls: %v\n%s", err, out)
	}

	if _, err := admin.CreateUser(ctx, &pb.CreateUserRequest{Name: "alice", Roles: []string{"example-role"}}); err != nil {
		t.Fatal(err)
	}
	viaA := kubeconfigVia(t, a.WebAddr, signIdentity(t, admin, "alice"))
	viaB := kubeconfigVia(t, b.WebAddr, signIdentity(t, admin, "alice"))
	for _, kc := range []string{viaA, viaB} {
		if got := waitKubectl(t, kc, "get", "pods", "-A"); !strings.Contains(got, "web-0") {
			t.Fatalf("kubectl get pods -A:\n%s", got)
		}
	}
	kubectlExec(t, viaB, "true", "through-b")
	measurePaths(t, k, a.WebAddr, b.WebAddr, signIdentity(t, admin, "alice"))

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

// kubeconfigVia is a kubeconfig for the guide's cluster through the proxy at web.
func kubeconfigVia(t *testing.T, web string, id *identityfile.Identity) string {
	t.Helper()
	keyPEM, err := tlsca.EncodeKeyPEM(id.Key)
	if err != nil {
		t.Fatal(err)
	}
	cfg := kubeconfig.Build(kubeconfig.Params{ProxyAddr: web, ClusterName: testenv.ClusterName, HostCAPEM: id.HostCAs[0],
		Clusters: []kubeconfig.Cluster{{ContextName: testenv.ClusterName + "-" + guideCluster, KubeCluster: guideCluster}}, CertPEM: id.CertPEM, KeyPEM: keyPEM})
	data, err := kubeconfig.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, filepath.Join(t.TempDir(), "kubeconfig.yaml"), string(data))
}

// keyportProc is a built keyport running as its own process.
type keyportProc struct {
	cfg, dataDir, web, auth string
	cmd                     *exec.Cmd
	logs                    *proc.Buffer
}

// startKeyportProc runs the built keyport (auth and proxy) named name on etcd prefix.
func startKeyportProc(t *testing.T, name, etcd, prefix string) *keyportProc {
	t.Helper()
	return startKeyportProcWith(t, name, etcdStorage(etcd, prefix), "")
}

// startKeyportProcWith starts the built keyport with a storage block and more config
// (top-level sections) of its own.
func startKeyportProcWith(t *testing.T, name, storage, extra string) *keyportProc {
	t.Helper()
	ports, err := freeport.Ports(3)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := &keyportProc{dataDir: filepath.Join(dir, "data"), web: fmt.Sprintf("127.0.0.1:%d", ports[0]), auth: fmt.Sprintf("127.0.0.1:%d", ports[1]), logs: &proc.Buffer{}}
	p.cfg = writeFile(t, filepath.Join(dir, "keyport.yaml"), fmt.Sprintf(`version: v3
keyport:
  nodename: %s
  data_dir: %s
  storage:
%s  diag_addr: 127.0.0.1:%d
auth_service:
  cluster_name: %s
  listen_addr: %s
proxy_service:
  web_listen_addr: %s
  public_addr: %s
%s`, name, p.dataDir, storage, ports[2], testenv.ClusterName, p.auth, p.web, p.web, extra))
	p.start(t)
	return p
}

// start runs the process and waits until tctl status answers.
func (p *keyportProc) start(t *testing.T) {
	t.Helper()
	p.cmd = exec.Command(filepath.Join(binDir, "keyport"), "start", "-c", p.cfg)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cmd := p.cmd
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := exec.Command(filepath.Join(binDir, "tctl"), "-c", p.cfg, "status").CombinedOutput()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("keyport %s did not start: %v\n%s\n%s", p.cfg, err, out, p.logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// admin is an Auth API client with the process's local admin identity.
func (p *keyportProc) admin(t *testing.T) *client.Client {
	t.Helper()
	id, err := identityfile.Read(filepath.Join(p.dataDir, service.AdminIdentityFile))
	if err != nil {
		t.Fatal(err)
	}
	clt, err := client.New(client.Config{Addr: p.auth, Identity: id})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = clt.Close() })
	return clt
}

// TestProxyFailoverKill: two keyport processes (each a full keyport) on a real etcd and
// one tunnelled agent. kubectl get, exec, logs -f and port-forward work through each
// proxy. Then the proxy the agent first dialled is killed with SIGKILL while a bounded
// load of small GETs runs through the other: requests succeed again within 5 s (here
// none fails), and every request that got a 2xx answer has its kube.request event in
// the audit log.
func TestProxyFailoverKill(t *testing.T) {
	ctx := context.Background()
	k := startGuideControlPlane(t)
	etcd := etcdtest.Start(t)
	a := startKeyportProc(t, "proxy-a", etcd, "/kill")
	b := startKeyportProc(t, "proxy-b", etcd, "/kill")
	admin := a.admin(t)
	createResource(t, admin, guideExampleRole())
	if _, err := admin.CreateUser(ctx, &pb.CreateUserRequest{Name: "alice", Roles: []string{"example-role"}}); err != nil {
		t.Fatal(err)
	}
	ping, err := admin.Ping(ctx, &pb.PingRequest{})
	if err != nil {
		t.Fatal(err)
	}
	s := &agentSetup{kube: k, admin: admin, pin: ping.GetHostCaPin(), web: a.web}
	startAgent(t, s.agentConfig(t, t.TempDir(), "edge-1", s.kubeToken(t), s.pin, k.KubeconfigPath, ""))
	waitTunnelsOnEveryProxy(t, admin, 2)
	alice := signIdentity(t, admin, "alice")
	for _, web := range []string{a.web, b.web} {
		kc := kubeconfigVia(t, web, alice)
		if got := waitKubectl(t, kc, "get", "pods", "-A"); !strings.Contains(got, "web-0") {
			t.Fatalf("kubectl get pods -A via %s:\n%s", web, got)
		}
		kubectlExec(t, kc, "true", "exec-via-"+web)
		tunnelStream(t, kc, []string{"logs", "-f", "web-0"}, "line via "+web, func() { _ = k.AppendPodLog("line via " + web) })
		tunnelPortForward(t, kc)
	}

	// A bounded load (about 20 GETs a second) through b while a is killed.
	hc := kubeHTTP(t, alice, alice.HostCAs[0])
	url := "https://" + b.web + "/v1/kube/" + guideCluster + "/api/v1/namespaces/default/pods/web-0"
	type result struct {
		at time.Time
		ok bool
	}
	var results []result
	killAt := time.Now().Add(2 * time.Second)
	killed := false
	for end := killAt.Add(6 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if !killed && time.Now().After(killAt) {
			if err := a.cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
		resp, err := hc.Get(url)
		r := result{at: time.Now()}
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			r.ok = resp.StatusCode == http.StatusOK
		}
		results = append(results, r)
	}
	var oks int
	var lastFail time.Time
	for _, r := range results {
		if r.ok {
			oks++
		} else {
			lastFail = r.at
		}
	}
	if !lastFail.IsZero() && lastFail.Sub(killAt) > 5*time.Second {
		t.Fatalf("GETs through the other proxy still failed %v after the kill", lastFail.Sub(killAt))
	}
	t.Logf("%d GETs through proxy-b, %d answered 200; last failure %v", len(results), oks, map[bool]any{true: "none", false: lastFail.Sub(killAt)}[lastFail.IsZero()])

	// Every 2xx has its kube.request event (b's, stored in etcd).
	bAdmin := b.admin(t)
	var got int
	waitUntil(t, 5*time.Second, func() bool {
		resp, err := bAdmin.SearchAudit(ctx, &pb.SearchAuditRequest{User: "alice", Type: "kube.request", Limit: 100000})
		if err != nil {
			return false
		}
		got = 0
		for _, e := range resp.GetEvents() {
			if bytes.Contains(e.GetJson(), []byte("/api/v1/namespaces/default/pods/web-0")) && bytes.Contains(e.GetJson(), []byte(`"status":200`)) {
				got++
			}
		}
		return got >= oks
	})
	if got < oks {
		t.Fatalf("%d GETs answered 200 but %d kube.request events record them", oks, got)
	}
}

// waitTunnelsOnEveryProxy waits until n proxies are live and each carries a tunnel for
// the guide's cluster.
func waitTunnelsOnEveryProxy(t *testing.T, admin *client.Client, n int) {
	t.Helper()
	waitUntil(t, 15*time.Second, func() bool {
		resp, err := admin.ListProxies(context.Background(), &pb.ListProxiesRequest{})
		if err != nil || len(resp.GetProxies()) != n {
			return false
		}
		for _, p := range resp.GetProxies() {
			if !slices.Contains(p.GetClusters(), guideCluster) {
				return false
			}
		}
		return true
	})
}

// measurePaths logs, for the note of a change, the latency (p50, p99) and this
// process's CPU per small GET directly to the API server and through each proxy, in
// interleaved rounds. With a tunnel to every proxy there is no cross-proxy hop: both
// proxies' columns are the tunnelled path. Nothing here asserts a time.
func measurePaths(t *testing.T, k *kubeenv.Env, webA, webB string, id *identityfile.Identity) {
	t.Helper()
	direct, err := rest.HTTPClientFor(k.Config)
	if err != nil {
		t.Fatal(err)
	}
	via := kubeHTTP(t, id, id.HostCAs[0])
	const pod = "/api/v1/namespaces/default/pods/web-0"
	paths := []struct {
		name string
		hc   *http.Client
		url  string
	}{
		{"direct", direct, k.APIServerURL + pod},
		{"proxy-a", via, "https://" + webA + "/v1/kube/" + guideCluster + pod},
		{"proxy-b", via, "https://" + webB + "/v1/kube/" + guideCluster + pod},
	}
	lat := make([][]time.Duration, len(paths))
	cpu := make([]time.Duration, len(paths))
	for round := 0; round < 10; round++ {
		for i, p := range paths {
			before := processCPU()
			for n := 0; n < 30; n++ {
				start := time.Now()
				resp, err := p.hc.Get(p.url)
				if err != nil {
					t.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("%s: %s", p.name, resp.Status)
				}
				lat[i] = append(lat[i], time.Since(start))
			}
			cpu[i] += processCPU() - before
		}
	}
	for i, p := range paths {
		slices.Sort(lat[i])
		n := len(lat[i])
		t.Logf("%-8s p50 %v p99 %v, CPU of this process per GET %v (client, proxies and agent in process)",
			p.name, lat[i][n/2].Round(10*time.Microsecond), lat[i][n*99/100].Round(10*time.Microsecond), (cpu[i] / time.Duration(n)).Round(time.Microsecond))
	}
}

// processCPU is this process's user and system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

package bench

import (
	"context"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/keyport/keyport/internal/gctune"
)

// cannedPod is what the canned API server answers a GET of the bench's pod with: the
// size of a real one.
var cannedPod = []byte(`{"kind":"Pod","apiVersion":"v1","metadata":{"name":"web-0","namespace":"default","uid":"0b6c1f0e-5c1f-4a8e-9d2c-6a3f5c1e2d7a","resourceVersion":"512","creationTimestamp":"2026-11-25T10:00:00Z","labels":{"app":"web"},"annotations":{"kwok.x-k8s.io/node":"fake"}},"spec":{"containers":[{"name":"web","image":"registry.example/web:1.0","resources":{},"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File","imagePullPolicy":"IfNotPresent"}],"restartPolicy":"Always","terminationGracePeriodSeconds":30,"dnsPolicy":"ClusterFirst","nodeName":"kwok-node-0","securityContext":{},"schedulerName":"default-scheduler","tolerations":[{"key":"node.kubernetes.io/not-ready","operator":"Exists","effect":"NoExecute","tolerationSeconds":300}],"priority":0,"enableServiceLinks":true,"preemptionPolicy":"PreemptLowerPriority"},"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True","lastProbeTime":null,"lastTransitionTime":"2026-11-25T10:00:01Z"}],"hostIP":"10.0.0.1","podIP":"10.0.0.2","startTime":"2026-11-25T10:00:00Z","containerStatuses":[{"name":"web","state":{"running":{"startedAt":"2026-11-25T10:00:01Z"}},"lastState":{},"ready":true,"restartCount":0,"image":"registry.example/web:1.0","imageID":"","started":true}],"qosClass":"BestEffort"}}`)

// BenchmarkProxyCannedUpstream measures what the proxy costs per small GET, in CPU,
// without a real API server: the upstream is an in-process TLS + HTTP/2 server that
// answers with a canned pod, so the noise of a control plane sharing the cores is gone
// and a change to the request path shows up in a few seconds. Three paths: direct to the
// canned server, through a bare httputil.ReverseProxy (see startBareProxy) and through
// a whole Keyport (auth, proxy, Kubernetes Service, SQLite audit log) in this process,
// 16 clients, b.N requests per path over 10 interleaved rounds. <path>-cpu-µs/req is
// this process's CPU per request on that path; the difference to direct is the proxy.
// <path>-writes/req counts the process's write system calls per request (the client's,
// the canned server's and, on the proxied paths, the proxy's).
func BenchmarkProxyCannedUpstream(b *testing.B) {
	upstream := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(cannedPod)
	}))
	upstream.EnableHTTP2 = true
	upstream.StartTLS()
	defer upstream.Close()
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: upstream.Certificate().Raw})
	direct := &rest.Config{Host: upstream.URL, TLSClientConfig: rest.TLSClientConfig{CAData: caPEM, ServerName: serverName(upstream.Certificate())},
		Impersonate: rest.ImpersonationConfig{UserName: benchUser, Groups: []string{editorGroup, systemAuthenticated}}}

	dir := b.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	kc := clientcmdapi.NewConfig()
	kc.Clusters[kubeCluster] = &clientcmdapi.Cluster{Server: upstream.URL, CertificateAuthorityData: caPEM, TLSServerName: serverName(upstream.Certificate())}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{Token: "canned"}
	kc.Contexts[kubeCluster] = &clientcmdapi.Context{Cluster: kubeCluster, AuthInfo: "admin"}
	kc.CurrentContext = kubeCluster
	if err := clientcmd.WriteToFile(*kc, kubeconfig); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// As `keyport start` runs the daemon: with the GC heap floor, unless GOGC is set
	// (GOGC=100 measures Go's default).
	gctune.Start(ctx, os.Getenv, slog.New(slog.DiscardHandler))
	kp, err := StartKeyport(ctx, b.TempDir(), kubeconfig, map[string]string{"env": "dev"},
		slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = kp.Stop() }()
	admin, err := kp.NewAdminClient()
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = admin.Close() }()
	viaKeyport, err := createBenchUser(ctx, admin, kp.WebAddr)
	if err != nil {
		b.Fatal(err)
	}
	upCfg := &rest.Config{Host: upstream.URL, TLSClientConfig: rest.TLSClientConfig{CAData: caPEM, ServerName: serverName(upstream.Certificate())}}
	bareSrv, bare, err := startBareProxy(upCfg, benchUser, []string{editorGroup, systemAuthenticated})
	if err != nil {
		b.Fatal(err)
	}
	defer bareSrv.Close()

	paths := []struct {
		name string
		cfg  *rest.Config
		hc   *http.Client
		url  string
		cpu  time.Duration
		sys  syscalls
		n    int
	}{{name: "direct", cfg: direct}, {name: "bare", cfg: bare}, {name: "keyport", cfg: viaKeyport}}
	for i := range paths {
		p := &paths[i]
		if p.hc, err = newHTTPClient(p.cfg); err != nil {
			b.Fatal(err)
		}
		p.url = p.cfg.Host + podPath
		if err := poll(ctx, 30*time.Second, "GET "+p.url, func() error { _, err := get(ctx, p.hc, p.url); return err }); err != nil {
			b.Fatal(err)
		}
	}
	// Interleaved rounds, as in the control-plane bench: the machine's speed drifts over
	// seconds (other tenants of the host), and every path should see the same drift.
	const clients, rounds = 16, 10
	per := max(b.N/rounds, clients)
	b.ResetTimer()
	for range rounds {
		for i := range paths {
			p := &paths[i]
			cpu0, err := processCPU()
			if err != nil {
				b.Fatal(err)
			}
			sys0, err := countSyscalls()
			if err != nil {
				b.Fatal(err)
			}
			var wg sync.WaitGroup
			var once sync.Once
			for c := range clients {
				n := per / clients
				if c == 0 {
					n += per % clients
				}
				wg.Go(func() {
					for range n {
						if _, err := get(ctx, p.hc, p.url); err != nil {
							once.Do(func() { b.Error(fmt.Errorf("%s: %w", p.name, err)) })
							return
						}
					}
				})
			}
			wg.Wait()
			cpu1, err := processCPU()
			if err != nil {
				b.Fatal(err)
			}
			sys1, err := countSyscalls()
			if err != nil {
				b.Fatal(err)
			}
			p.cpu += cpu1 - cpu0
			p.sys = p.sys.add(sys1.sub(sys0))
			p.n += per
		}
	}
	b.StopTimer()
	for _, p := range paths {
		b.ReportMetric(float64(p.cpu.Microseconds())/float64(p.n), p.name+"-cpu-µs/req")
		b.ReportMetric(float64(p.sys.writes)/float64(p.n), p.name+"-writes/req")
	}
	b.ReportMetric(0, "ns/op")
}

// Package kubeenv runs a real Kubernetes control plane on loopback for Keyport's tests
// and for `make quickstart` / `make bench`: etcd, kube-apiserver and
// kube-controller-manager, and optionally kwok, which turns a Node object into a fake
// kubelet whose pods reach Running and really answer exec, port-forward and logs by
// running things on this machine.
//
// It owns the whole life of those processes: throwaway PKI, free ports, readiness,
// log files and shutdown. Binaries come from internal/testenv/tools (installed by
// `make kube-tools`); a missing binary fails the test with that command, never skips.
//
// Every Env is private (its own CA, ports and state directory), so test packages may run
// in parallel. kube-apiserver writes an audit log of every request at Metadata level so
// that tests can prove what did, and what did not, reach the API server.
package kubeenv

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/keyport/keyport/internal/testenv/freeport"
	"github.com/keyport/keyport/internal/testenv/proc"
	"github.com/keyport/keyport/internal/testenv/tools"
)

const (
	// DefaultContextName is the context (and cluster and user) name in the admin
	// kubeconfig when Options.ContextName is empty.
	DefaultContextName = "kubeenv"

	// NodeName is the Node that kwok plays when Options.Kwok is set.
	NodeName = "kwok-node-0"

	// readyTimeout bounds each wait: one component becoming healthy, or one controller
	// producing its first result. Start-up takes seconds; the bound only turns a hang
	// into a failure with the component's log tail.
	readyTimeout = 90 * time.Second

	// serviceCIDR must not overlap kwok's pod CIDR; both are fake, nothing routes them.
	serviceCIDR = "10.96.0.0/24"
	podCIDR     = "10.244.0.0/16"
)

// serviceIP is the first address of serviceCIDR, the "kubernetes" Service's ClusterIP,
// which the serving certificate must name.
var serviceIP = net.IPv4(10, 96, 0, 1)

// Options configures a control plane.
type Options struct {
	// Kwok also starts kwok and creates the Node NodeName, so that pods can run.
	Kwok bool
	// Dir holds all state: PKI, etcd data, kubeconfig, audit log, process logs.
	// Start defaults it to t.TempDir(); StartProcess to a new temporary directory that
	// Stop removes. A caller-given Dir is never removed.
	Dir string
	// ContextName names the context in the admin kubeconfig; default DefaultContextName.
	ContextName string
	// Logger receives progress messages (each component started, its ports and time).
	// nil discards them.
	Logger *slog.Logger
}

// Env is a running control plane.
type Env struct {
	// Config is an admin client config: a client certificate in group system:masters
	// and TLS verified against CAData (never Insecure).
	Config    *rest.Config
	Clientset kubernetes.Interface
	// KubeconfigPath is an admin kubeconfig with certificates embedded; its current
	// context is ContextName.
	KubeconfigPath string
	ContextName    string
	APIServerURL   string
	// CAData is the PEM of the cluster CA, which signed every serving certificate.
	CAData []byte
	// AuditLogPath is kube-apiserver's audit log: one JSON audit.k8s.io/v1 Event per
	// line, every request at Metadata level (stage RequestReceived omitted).
	AuditLogPath string
	// EtcdURL is the client URL of the private etcd.
	EtcdURL string
	// Dir is the state directory; LogDir holds one log file per process.
	Dir    string
	LogDir string

	// NodeName is the kwok Node ("" without kwok).
	NodeName string
	// PodLogPath is the CRI-format file that kwok serves as the log of every container
	// of every pod ("" without kwok); AppendPodLog adds lines to it (for `logs -f`).
	PodLogPath string
	// PortForwardAddr is where a port-forward to any port of any kwok pod ends up: an
	// HTTP server in this process that answers every request with PortForwardResponse.
	PortForwardAddr string
	// StartupDuration is how long StartProcess took.
	StartupDuration time.Duration

	log       *slog.Logger
	pki       *pki
	probe     *http.Client
	removeDir bool
	pfServer  *http.Server

	mu      sync.Mutex // guards procs, stopped, stopErr and pod log appends
	procs   []*proc.Process
	stopped bool
	stopErr error
}

// Start starts a control plane for a test and stops it in t.Cleanup. It fails t (with
// the install command) when a binary is missing and fails t when start-up fails.
func Start(t testing.TB, opts Options) *Env {
	t.Helper()
	for _, name := range binaries(opts) {
		tools.Path(t, name)
	}
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	if opts.Logger == nil {
		// Only StartProcess logs, and it returns before the test does, so writing to
		// t cannot outlive it.
		opts.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{
			ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
				if a.Key == slog.TimeKey {
					return slog.Attr{}
				}
				return a
			},
		}))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*readyTimeout)
	defer cancel()
	e, err := StartProcess(ctx, opts)
	if err != nil {
		t.Fatalf("kubeenv: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range e.processes() {
				t.Logf("kubeenv: last lines of %s:\n%s", p.LogPath, p.Tail(25))
			}
		}
		began := time.Now()
		if err := e.Stop(); err != nil {
			t.Errorf("kubeenv: stop: %v", err)
		}
		t.Logf("kubeenv: stopped in %s", time.Since(began).Round(time.Millisecond))
	})
	t.Logf("kubeenv: control plane (kwok=%v) ready in %s at %s, state in %s", opts.Kwok, e.StartupDuration.Round(time.Millisecond), e.APIServerURL, e.Dir)
	return e
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func binaries(opts Options) []string {
	names := []string{"etcd", "kube-apiserver", "kube-controller-manager"}
	if opts.Kwok {
		names = append(names, "kwok")
	}
	return names
}

// StartProcess starts a control plane for a non-test caller, which must call Stop.
// ctx bounds start-up only: the processes keep running after ctx ends.
func StartProcess(ctx context.Context, opts Options) (_ *Env, err error) {
	began := time.Now()
	bins := map[string]string{}
	for _, name := range binaries(opts) {
		p, err := tools.Lookup(name)
		if err != nil {
			return nil, err
		}
		bins[name] = p
	}

	e := &Env{
		Dir:         opts.Dir,
		ContextName: opts.ContextName,
		log:         opts.Logger,
	}
	if e.log == nil {
		e.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if e.ContextName == "" {
		e.ContextName = DefaultContextName
	}
	if e.Dir == "" {
		d, err := os.MkdirTemp("", "kubeenv-")
		if err != nil {
			return nil, err
		}
		e.Dir, e.removeDir = d, true
	}
	defer func() {
		if err != nil {
			// Stop's own error adds nothing: the start-up error carries the log tail.
			_ = e.Stop()
		}
	}()
	e.LogDir = filepath.Join(e.Dir, "logs")
	if err := os.MkdirAll(e.LogDir, 0o700); err != nil {
		return nil, err
	}

	e.pki, err = newPKI(filepath.Join(e.Dir, "pki"), serviceIP)
	if err != nil {
		return nil, fmt.Errorf("make PKI: %w", err)
	}
	e.CAData = e.pki.caPEM
	if err := e.initProbeClient(); err != nil {
		return nil, err
	}

	if err := e.startEtcd(ctx, bins["etcd"]); err != nil {
		return nil, err
	}
	if err := e.startAPIServer(ctx, bins["kube-apiserver"]); err != nil {
		return nil, err
	}

	// kube-controller-manager and kwok only need the apiserver, so they start together.
	var kwokErr error
	var wg sync.WaitGroup
	if opts.Kwok {
		wg.Go(func() { kwokErr = e.startKwok(ctx, bins["kwok"]) })
	}
	kcmErr := e.startControllerManager(ctx, bins["kube-controller-manager"])
	wg.Wait()
	if err := errors.Join(kcmErr, kwokErr); err != nil {
		return nil, err
	}

	// The guide's RoleBindings reference the built-in edit/view/admin ClusterRoles, which
	// are empty until the clusterrole-aggregation controller fills them.
	if err := e.waitAggregatedRoles(ctx); err != nil {
		return nil, err
	}
	e.log.Info("kubeenv aggregated ClusterRoles filled", "since_start", time.Since(began).Round(time.Millisecond))
	if opts.Kwok {
		// Pod creation is refused by the ServiceAccount admission plugin until the
		// service-account controller has made "default".
		if err := e.waitServiceAccount(ctx, "default"); err != nil {
			return nil, err
		}
		e.log.Info("kubeenv default ServiceAccount exists", "since_start", time.Since(began).Round(time.Millisecond))
	}
	e.StartupDuration = time.Since(began)
	e.log.Info("kubeenv ready", "apiserver", e.APIServerURL, "kwok", opts.Kwok, "took", e.StartupDuration.Round(time.Millisecond), "dir", e.Dir)
	return e, nil
}

// Stop stops every process (SIGTERM, then SIGKILL after a bounded wait), in reverse
// start order, and removes the state directory if StartProcess created it. It reports
// processes that had died on their own. It is safe to call more than once.
func (e *Env) Stop() error {
	e.mu.Lock()
	if e.stopped {
		e.mu.Unlock()
		return e.stopErr
	}
	e.stopped = true
	procs := slices.Clone(e.procs)
	e.mu.Unlock()

	var errs []error
	if e.pfServer != nil {
		_ = e.pfServer.Close()
	}
	for _, p := range slices.Backward(procs) {
		if err := p.Stop(); err != nil {
			errs = append(errs, err)
		}
	}
	if e.removeDir {
		if err := os.RemoveAll(e.Dir); err != nil {
			errs = append(errs, err)
		}
	}
	err := errors.Join(errs...)
	e.mu.Lock()
	e.stopErr = err
	e.mu.Unlock()
	return err
}

// ClientConfig returns a client config that authenticates as user in groups with a
// fresh client certificate from the cluster CA: a non-admin identity for RBAC tests
// that does not rely on impersonation.
func (e *Env) ClientConfig(user string, groups ...string) (*rest.Config, error) {
	certPEM, keyPEM, err := e.pki.issueClient(user, groups)
	if err != nil {
		return nil, err
	}
	return e.restConfig(certPEM, keyPEM), nil
}

func (e *Env) restConfig(certPEM, keyPEM []byte) *rest.Config {
	return &rest.Config{
		Host: e.APIServerURL,
		TLSClientConfig: rest.TLSClientConfig{
			CAData:   e.pki.caPEM,
			CertData: certPEM,
			KeyData:  keyPEM,
		},
		// client-go's default of 5 QPS would make set-up of a test fixture the slow
		// part of the test; this apiserver is private to the test.
		QPS:   200,
		Burst: 400,
	}
}

func (e *Env) processes() []*proc.Process {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.procs)
}

func (e *Env) addProc(p *proc.Process) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.procs = append(e.procs, p)
}

func (e *Env) removeProc(p *proc.Process) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.procs = slices.DeleteFunc(e.procs, func(q *proc.Process) bool { return q == p })
}

// component describes how to run one program and how to tell it is ready.
type component struct {
	name  string
	bin   string
	ports int // how many free loopback ports args needs
	env   []string
	args  func(ports []int) []string
	ready func(ctx context.Context, ports []int) error
	// crashRetry: a start-up crash is worth another try (kwok v0.8.0 sometimes dies at
	// start with "concurrent map read and map write" in its CEL environment).
	crashRetry bool
}

// launch starts c and waits until it is ready. A port taken between our probe and the
// child's bind is retried with new ports; any other failure returns the log tail.
func (e *Env) launch(ctx context.Context, c component) ([]int, error) {
	began := time.Now()
	const attempts = 3
	// Watch what this component depends on (started before it) and itself, not
	// siblings starting in parallel, whose own launch handles their failures.
	deps := e.processes()
	for attempt := 1; ; attempt++ {
		ports, err := freeport.Ports(c.ports)
		if err != nil {
			return nil, err
		}
		p, err := proc.Start(c.name, filepath.Join(e.LogDir, c.name+".log"), c.env, c.bin, c.args(ports)...)
		if err != nil {
			return nil, err
		}
		e.addProc(p)
		err = waitReady(ctx, readyTimeout, c.name, append(slices.Clone(deps), p), func(ctx context.Context) error { return c.ready(ctx, ports) })
		if err == nil {
			e.log.Info("kubeenv component ready", "name", c.name, "ports", ports, "took", time.Since(began).Round(time.Millisecond))
			return ports, nil
		}
		crashed := c.crashRetry && p.Exited() && strings.Contains(p.Tail(80), "fatal error: concurrent map")
		if attempt < attempts && (p.BindFailed() || crashed) {
			e.log.Info("kubeenv start failed in a way worth retrying", "name", c.name, "ports", ports, "bind_failed", !crashed)
			p.Stopped = true // an exit we now expect; do not report it as a crash
			e.removeProc(p)
			continue
		}
		return nil, fmt.Errorf("start %s: %w", c.name, err)
	}
}

func (e *Env) startEtcd(ctx context.Context, bin string) error {
	dataDir := filepath.Join(e.Dir, "etcd")
	// A unique member name lets the readiness probe tell our etcd from another test's
	// etcd that grabbed the port between our probe and our etcd's bind; etcd speaks
	// plain HTTP here, so there is no certificate to tell them apart.
	name := "kubeenv-" + randHex(6)
	ports, err := e.launch(ctx, component{
		name:  "etcd",
		bin:   bin,
		ports: 2,
		args: func(p []int) []string {
			client := "http://127.0.0.1:" + itoa(p[0])
			peer := "http://127.0.0.1:" + itoa(p[1])
			return []string{
				"--name=" + name,
				"--data-dir=" + dataDir,
				"--listen-client-urls=" + client,
				"--advertise-client-urls=" + client,
				"--listen-peer-urls=" + peer,
				"--initial-advertise-peer-urls=" + peer,
				"--initial-cluster=" + name + "=" + peer,
				"--log-level=warn",
				"--logger=zap",
			}
		},
		ready: func(ctx context.Context, p []int) error {
			body, err := e.get(ctx, "http://127.0.0.1:"+itoa(p[0])+"/health")
			if err != nil {
				return err
			}
			if !strings.Contains(body, `"health":"true"`) {
				return fmt.Errorf("%w: %s", errNotReady, body)
			}
			// The v3 JSON gateway's member list names the member behind this port.
			body, err = e.post(ctx, "http://127.0.0.1:"+itoa(p[0])+"/v3/cluster/member/list", "{}")
			if err != nil {
				return err
			}
			if !strings.Contains(body, `"name":"`+name+`"`) {
				return fmt.Errorf("%w: port %d is served by another etcd: %s", errNotReady, p[0], body)
			}
			return nil
		},
	})
	if err != nil {
		return err
	}
	e.EtcdURL = "http://127.0.0.1:" + itoa(ports[0])
	return nil
}

// auditPolicy logs every request. Metadata level records who (user, groups,
// impersonated user), what (verb, URI, objectRef) and the response code, without
// bodies, which is what "this request never reached the API server" tests need.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
`

func (e *Env) startAPIServer(ctx context.Context, bin string) error {
	policy := filepath.Join(e.Dir, "audit-policy.yaml")
	if err := os.WriteFile(policy, []byte(auditPolicy), 0o600); err != nil {
		return err
	}
	e.AuditLogPath = filepath.Join(e.Dir, "audit.log")
	ports, err := e.launch(ctx, component{
		name:  "kube-apiserver",
		bin:   bin,
		ports: 1,
		args: func(p []int) []string {
			return []string{
				"--etcd-servers=" + e.EtcdURL,
				"--bind-address=127.0.0.1",
				"--secure-port=" + itoa(p[0]),
				"--tls-cert-file=" + e.pki.servingCertFile,
				"--tls-private-key-file=" + e.pki.servingKeyFile,
				"--client-ca-file=" + e.pki.caCertFile,
				"--service-account-issuer=https://kubernetes.default.svc",
				"--service-account-key-file=" + e.pki.saPublicFile,
				"--service-account-signing-key-file=" + e.pki.saPrivateFile,
				"--authorization-mode=RBAC",
				"--service-cluster-ip-range=" + serviceCIDR,
				// The default reconciler would publish 127.0.0.1 as the endpoint of the
				// "kubernetes" Service, which Endpoints validation rejects every 10s.
				"--endpoint-reconciler-type=none",
				// kwok's Node has a Hostname address that does not resolve; reach the
				// "kubelet" (kwok) by IP and verify its CA-signed certificate.
				"--kubelet-preferred-address-types=InternalIP",
				"--kubelet-certificate-authority=" + e.pki.caCertFile,
				"--audit-policy-file=" + policy,
				"--audit-log-path=" + e.AuditLogPath,
				"--audit-log-format=json",
				// blocking (the default, stated for the reader): an event is written before
				// the handler returns, so a test that polls the file briefly sees it.
				"--audit-log-mode=blocking",
				"--profiling=false",
				// With WatchList on (the 1.34 default) the apiserver turns every watch
				// from resourceVersion "" or "0" into a watch-list stream, which it then
				// refuses because etcd 3.4.23 lacks RequestWatchProgress. kwok watches
				// from "0", so each of its watches failed at once and it saw new pods
				// only on relists with growing backoff (pods took 3s, 10s, 23s, 40s to
				// run). Off, such watches are plain watches; watch-list clients fall back
				// to list+watch as they are designed to.
				"--feature-gates=WatchList=false",
			}
		},
		ready: func(ctx context.Context, p []int) error {
			body, err := e.get(ctx, "https://127.0.0.1:"+itoa(p[0])+"/readyz")
			if err != nil {
				return err
			}
			if strings.TrimSpace(body) != "ok" {
				return fmt.Errorf("%w: %s", errNotReady, body)
			}
			return nil
		},
	})
	if err != nil {
		return err
	}
	e.APIServerURL = "https://127.0.0.1:" + itoa(ports[0])
	e.Config = e.restConfig(e.pki.adminCertPEM, e.pki.adminKeyPEM)
	e.Clientset, err = kubernetes.NewForConfig(e.Config)
	if err != nil {
		return err
	}
	return e.writeKubeconfig()
}

func (e *Env) writeKubeconfig() error {
	name := e.ContextName
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[name] = &clientcmdapi.Cluster{Server: e.APIServerURL, CertificateAuthorityData: e.pki.caPEM}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{ClientCertificateData: e.pki.adminCertPEM, ClientKeyData: e.pki.adminKeyPEM}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name, Namespace: "default"}
	cfg.CurrentContext = name
	e.KubeconfigPath = filepath.Join(e.Dir, "kubeconfig")
	return clientcmd.WriteToFile(*cfg, e.KubeconfigPath)
}

func (e *Env) startControllerManager(ctx context.Context, bin string) error {
	_, err := e.launch(ctx, component{
		name:  "kube-controller-manager",
		bin:   bin,
		ports: 1,
		args: func(p []int) []string {
			return []string{
				"--kubeconfig=" + e.KubeconfigPath,
				"--authentication-kubeconfig=" + e.KubeconfigPath,
				"--authorization-kubeconfig=" + e.KubeconfigPath,
				"--service-account-private-key-file=" + e.pki.saPrivateFile,
				"--root-ca-file=" + e.pki.caCertFile,
				// nodeipam wants a cluster CIDR and nodelifecycle would taint and evict
				// kwok pods whenever a heartbeat is late on a busy 2-core machine.
				"--controllers=*,-nodeipam,-nodelifecycle",
				"--leader-elect=false",
				"--use-service-account-credentials=true",
				// Each controller fetches its own credentials at start; at the default
				// 20 QPS the ~40 controllers took 4s to start, and the ones the guide
				// needs (clusterrole-aggregation, serviceaccount) start late.
				"--kube-api-qps=200",
				"--kube-api-burst=400",
				"--bind-address=127.0.0.1",
				"--secure-port=" + itoa(p[0]),
				"--tls-cert-file=" + e.pki.servingCertFile,
				"--tls-private-key-file=" + e.pki.servingKeyFile,
				"--profiling=false",
			}
		},
		ready: func(ctx context.Context, p []int) error {
			body, err := e.get(ctx, "https://127.0.0.1:"+itoa(p[0])+"/healthz")
			if err != nil {
				return err
			}
			if strings.TrimSpace(body) != "ok" {
				return fmt.Errorf("%w: %s", errNotReady, body)
			}
			return nil
		},
	})
	return err
}

// initProbeClient makes the HTTP client for health probes: it trusts only our CA and
// presents the admin certificate, so /readyz details are visible on failure.
func (e *Env) initProbeClient() error {
	pool := x509.NewCertPool()
	pool.AddCert(e.pki.caCert)
	cert, err := tls.X509KeyPair(e.pki.adminCertPEM, e.pki.adminKeyPEM)
	if err != nil {
		return err
	}
	e.probe = &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
			DisableKeepAlives: true, // probes hit processes that may be restarted on a new port
		},
	}
	return nil
}

// get returns the body of a 200 response, or an error.
func (e *Env) get(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	return e.do(req)
}

// post sends a JSON body and returns the body of a 200 response, or an error.
func (e *Env) post(ctx context.Context, url, body string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	return e.do(req)
}

func (e *Env) do(req *http.Request) (string, error) {
	resp, err := e.probe.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%w: %s: %s", errNotReady, resp.Status, strings.TrimSpace(string(b)))
	}
	return string(b), nil
}

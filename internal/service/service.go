// Package service owns the keyport daemon's process: reading keyport.yaml, opening the
// backend, building the Auth, Proxy and Kubernetes services it enables as a list of
// components, and running them until the first failure or a signal. It is the one place
// that wires server packages together; the CLIs never import it.
package service

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/keyport/keyport/internal/audit"
	"github.com/keyport/keyport/internal/auth"
	"github.com/keyport/keyport/internal/authapi"
	"github.com/keyport/keyport/internal/backend"
	"github.com/keyport/keyport/internal/backend/etcdbk"
	"github.com/keyport/keyport/internal/backend/sqlite"
	"github.com/keyport/keyport/internal/clock"
	"github.com/keyport/keyport/internal/config"
	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/identityfile"
	"github.com/keyport/keyport/internal/kube"
	"github.com/keyport/keyport/internal/proxy"
	"github.com/keyport/keyport/internal/recording"
	"github.com/keyport/keyport/internal/recording/s3store"
	"github.com/keyport/keyport/internal/runner"
	"github.com/keyport/keyport/internal/tlsca"
	"github.com/keyport/keyport/internal/tunnel"
	"github.com/keyport/keyport/internal/types"
	"github.com/keyport/keyport/internal/web"
)

// AdminIdentityFile is where, under data_dir, the local admin identity for tctl lives.
const AdminIdentityFile = "admin-identity"

// Options are what tests and embedders add to a config file.
type Options struct {
	Config *config.File
	Logger *slog.Logger
	Clock  clock.Clock
	// Listeners, when set, are used instead of binding the configured addresses, so
	// that a test harness can bind 127.0.0.1:0 up front. Keys: "auth", "web", "diag".
	Listeners map[string]net.Listener
	// Ready, when set, is closed once every component is serving.
	Ready chan struct{}
	// Profiling serves Go's profiles under /debug/pprof/ on diag_addr (keyport start
	// --pprof).
	Profiling bool
	// OIDCClient fetches the issuers' discovery documents and keys for the github,
	// gitlab and oidc join methods (default: system roots, which SSL_CERT_FILE extends).
	OIDCClient *http.Client
}

// Process is a running keyport daemon.
type Process struct {
	opts    Options
	cfg     *config.File
	log     *slog.Logger
	backend backend.Backend
	audit   *audit.Log
	// refusals coalesces the audit events of unauthenticated refusals.
	refusals *audit.Coalescer
	Auth     *auth.Server
	grpc     *grpc.Server
	kube     *kube.Service
	kubeH    *proxy.KubeHandler
	// recorder records the proxy's exec and attach sessions.
	recorder *recording.Recorder
	// webInflight counts the web port's running handlers, for an orderly shutdown.
	webInflight inflight
	tunnels     *proxy.Tunnels
	// agent is set when the process runs no auth_service: a Kubernetes Service that
	// joined another cluster (agent.go).
	agent   *agent
	tlsCert tls.Certificate
	// publicCerts are https_keypairs: what browsers and tsh see on the web port,
	// except for SNI kube.<cluster> and the cluster-local name, which get the host cert.
	publicCerts []tls.Certificate
	reg         *prometheus.Registry

	mu    sync.Mutex
	addrs map[string]string

	// bg bounds background work that outlives Serve's context (the proxy's lock
	// enforcer); Close ends it.
	bg     context.Context
	stopBG context.CancelFunc
}

// shutdownWait bounds how long shutdown waits for the web port's handlers to return
// after they have been told to end.
const shutdownWait = 10 * time.Second

// Run starts the daemon and blocks until ctx is done or a component fails. All
// components stop together.
func Run(ctx context.Context, opts Options) error {
	p, err := New(ctx, opts)
	if err != nil {
		return err
	}
	defer p.Close()
	return p.Serve(ctx)
}

// New opens the backend and builds the services, without serving yet.
func New(ctx context.Context, opts Options) (*Process, error) {
	cfg := opts.Config
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real()
	}
	p := &Process{opts: opts, cfg: cfg, log: opts.Logger, addrs: map[string]string{}, reg: prometheus.NewRegistry()}
	p.bg, p.stopBG = context.WithCancel(context.Background())
	p.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if !cfg.AuthEnabled() {
		return newAgent(ctx, p)
	}
	if err := os.MkdirAll(cfg.Keyport.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data_dir: %w", err)
	}
	if err := os.Chmod(cfg.Keyport.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("securing data_dir: %w", err)
	}
	b, err := openBackend(ctx, cfg, opts)
	if err != nil {
		return nil, err
	}
	p.backend = b
	al, err := audit.New(audit.Config{Backend: b, Clock: opts.Clock, Logger: opts.Logger, Dir: filepath.Join(cfg.Keyport.DataDir, "log"), Node: cfg.Keyport.NodeName})
	if err != nil {
		p.Close()
		return nil, err
	}
	p.audit = al
	// Refusals of callers with no verified identity, on the Auth API and the Kubernetes
	// path, pass through one coalescer, so that a flood of them is counted, not logged
	// line by line (audit.Coalescer).
	p.refusals = audit.NewCoalescer(audit.CoalescerConfig{Next: al, Clock: opts.Clock})
	go p.refusals.Run(p.bg)
	recordsDir := filepath.Join(cfg.Keyport.DataDir, "records")
	store, err := openRecordingStore(ctx, cfg.Auth.SessionRecordingURI, recordsDir)
	if err != nil {
		p.Close()
		return nil, errs.BadParameterf("auth_service.session_recording_uri: %w", err)
	}
	a, err := auth.New(ctx, auth.Config{
		ClusterName: cfg.Auth.ClusterName, Backend: b, Clock: opts.Clock, Logger: opts.Logger.With("component", "auth"),
		Audit: al, CAKeyAlgorithm: cfg.Auth.CAKeyAlgorithm, ProxyPublicAddr: cfg.PublicAddr(), SecondFactor: cfg.Auth.Authentication.SecondFactor,
		Login: auth.LoginPolicy{MaxFailures: cfg.Auth.Authentication.MaxLoginFailures,
			FailureWindow: cfg.Auth.Authentication.LoginFailureWindow, LockTTL: cfg.Auth.Authentication.AccountLockTTL},
		OIDCClient: opts.OIDCClient, Recordings: store,
	})
	if err != nil {
		p.Close()
		return nil, err
	}
	p.Auth = a
	if err := p.issueOwnCerts(); err != nil {
		p.Close()
		return nil, err
	}
	if err := p.writeAdminIdentity(); err != nil {
		p.Close()
		return nil, err
	}
	for i, kp := range cfg.Proxy.HTTPSKeypairs {
		c, err := tls.LoadX509KeyPair(kp.CertFile, kp.KeyFile)
		if err != nil {
			p.Close()
			return nil, errs.BadParameterf("proxy_service.https_keypairs[%d]: %w", i, err)
		}
		p.publicCerts = append(p.publicCerts, c)
	}
	// WaitForHandlers: Stop returns once every call has returned, so that the audit
	// events they emit are written before the audit log closes.
	p.grpc = authapi.NewServer(authapi.Config{Auth: a, Audit: al, Refusals: p.refusals, Logger: opts.Logger.With("component", "authapi")},
		grpc.Creds(credentials.NewTLS(p.serverTLS([]string{"h2"}))), grpc.WaitForHandlers(true))
	if cfg.KubeEnabled() {
		ks, err := kube.New(kube.Config{KubeconfigFile: cfg.Kube.KubeconfigFile, KubeClusterName: cfg.Kube.KubeClusterName,
			Labels: cfg.Kube.Labels, ServiceName: cfg.Keyport.NodeName, Logger: opts.Logger.With("component", "kube"), Clock: opts.Clock})
		if err != nil {
			p.Close()
			return nil, err
		}
		p.kube = ks
	}
	lc := &localClusters{auth: a, kube: p.kube}
	if p.kube != nil {
		a.SetKubeReviewer(kubeReviewer{clusterReviewer{lc}, p.kube})
	} else {
		a.SetKubeReviewer(clusterReviewer{lc})
	}
	p.tunnels = proxy.NewTunnels(proxy.TunnelConfig{Auth: a, Registered: lc.KubeCluster, Logger: opts.Logger.With("component", "tunnel"),
		Context: p.bg, Changes: a.Cache().Subscribe()})
	lc.tunnels = p.tunnels
	continueKey, err := sharedSecret(ctx, b, continueKeyItem)
	if err != nil {
		p.Close()
		return nil, err
	}
	p.recorder, err = recording.NewRecorder(recording.RecorderConfig{
		Dir: recordsDir, Store: store, Index: a.PutRecording, Audit: al, Clock: opts.Clock,
		Logger: opts.Logger.With("component", "recorder"), Node: cfg.Keyport.NodeName, Context: p.bg,
	})
	if err != nil {
		p.Close()
		return nil, err
	}
	a.SetLiveSessions(p.recorder)
	p.kubeH = proxy.NewKubeHandler(proxy.KubeConfig{
		Auth: a, Clusters: lc, Decider: proxy.NewAccessDecider(a.Cache()), ContinueKey: continueKey,
		Audit: al, Refusals: p.refusals, Clock: opts.Clock, Logger: opts.Logger.With("component", "proxy"),
		Metrics: p.reg, Changes: a.Cache().Subscribe(), Context: p.bg, Recorder: p.recorder,
	})
	return p, nil
}

func openBackend(ctx context.Context, cfg *config.File, opts Options) (backend.Backend, error) {
	st := cfg.Keyport.Storage
	switch st.Type {
	case config.StorageEtcd:
		var tc *tls.Config
		if st.TLSCertFile != "" || st.TLSCAFile != "" {
			var err error
			tc, err = etcdTLS(st)
			if err != nil {
				return nil, err
			}
		}
		b, err := etcdbk.New(ctx, etcdbk.Config{Endpoints: st.Peers, Prefix: st.Prefix, TLS: tc, Clock: opts.Clock, Logger: opts.Logger.With("component", "etcd")})
		if err != nil {
			return nil, fmt.Errorf("opening etcd storage %v: %w", st.Peers, err)
		}
		return b, nil
	default:
		path := st.Path
		if path == "" {
			path = filepath.Join(cfg.Keyport.DataDir, "keyport.db")
		}
		b, err := sqlite.New(ctx, sqlite.Config{Path: path, Clock: opts.Clock, Logger: opts.Logger.With("component", "sqlite")})
		if err != nil {
			return nil, fmt.Errorf("opening sqlite storage %s: %w", path, err)
		}
		return b, nil
	}
}

// issueOwnCerts gives this process a host certificate for its TLS listeners. It names
// every address clients may use, plus tlsca.ServerName for clients that trust the host CA.
func (p *Process) issueOwnCerts() error {
	key, err := tlsca.GenerateKey(tlsca.AlgECDSAP256, clock.Rand)
	if err != nil {
		return err
	}
	cluster := p.cfg.Auth.ClusterName
	dns := []string{tlsca.ServerName, "localhost", cluster, "kube." + cluster, "*." + cluster}
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	for _, addr := range []string{p.cfg.PublicAddr(), p.cfg.Auth.ListenAddr, p.cfg.Proxy.WebListenAddr, p.cfg.Keyport.NodeName} {
		host := addr
		if h, _, err := net.SplitHostPort(addr); err == nil {
			host = h
		}
		if host == "" || host == "0.0.0.0" || host == "::" {
			continue
		}
		if ip := net.ParseIP(host); ip != nil {
			ips = append(ips, ip)
		} else {
			dns = append(dns, host)
		}
	}
	certPEM, err := p.Auth.IssueHostCert(key.Public(), p.cfg.Keyport.NodeName, auth.SystemProxy, dns, ips, 365*24*time.Hour)
	if err != nil {
		return err
	}
	// Serve the chain with the host CA so that clients can check CA pins on first contact.
	chain := append(append([]byte{}, certPEM...), p.Auth.HostCA().CertPEM...)
	kp, err := tlsca.KeyPair(chain, key)
	if err != nil {
		return err
	}
	p.tlsCert = kp
	return nil
}

// writeAdminIdentity refreshes the identity that tctl -c uses on this host.
func (p *Process) writeAdminIdentity() error {
	key, err := tlsca.GenerateKey(tlsca.AlgECDSAP256, clock.Rand)
	if err != nil {
		return err
	}
	certPEM, err := p.Auth.IssueHostCert(key.Public(), "admin@"+p.cfg.Keyport.NodeName, auth.SystemAdmin, nil, nil, 30*24*time.Hour)
	if err != nil {
		return err
	}
	cert, err := tlsca.ParseCertPEM(certPEM)
	if err != nil {
		return err
	}
	id := &identityfile.Identity{Key: key, CertPEM: certPEM, Cert: cert, HostCAs: [][]byte{p.Auth.HostCA().CertPEM}, UserCAs: [][]byte{p.Auth.UserCA().CertPEM}}
	return identityfile.Write(filepath.Join(p.cfg.Keyport.DataDir, AdminIdentityFile), id)
}

// serverTLS is the TLS config of the auth and web listeners: the host certificate, and a
// client certificate requested but verified by the handlers, so that a bad one gets an
// error that says what is wrong instead of a TLS alert.
func (p *Process) serverTLS(protos []string) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{p.tlsCert},
		ClientAuth:   tls.RequestClientCert,
		NextProtos:   protos,
	}
}

// webTLS serves the host certificate to Kubernetes clients (SNI kube.<cluster>) and to
// Keyport clients that trust the host CA, and the public certificate, when configured,
// to everyone else.
func (p *Process) webTLS() *tls.Config {
	base := p.serverTLS([]string{"h2", "http/1.1"})
	if len(p.publicCerts) == 0 {
		return base
	}
	public := base.Clone()
	public.Certificates = p.publicCerts
	kubeSNI := "kube." + p.cfg.Auth.ClusterName
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			if hello.ServerName == kubeSNI || hello.ServerName == tlsca.ServerName {
				return base, nil
			}
			return public, nil
		},
	}
}

// Close releases the backend.
func (p *Process) Close() {
	p.stopBG()
	if p.recorder != nil {
		// Uploads in progress emit their session.upload events before the log closes.
		p.recorder.Wait()
	}
	if p.Auth != nil {
		_ = p.Auth.Close()
	}
	if p.refusals != nil {
		p.refusals.Close(context.Background())
	}
	if p.audit != nil {
		_ = p.audit.Close()
	}
	if p.backend != nil {
		_ = p.backend.Close()
	}
}

// Addr returns the address a component listens on ("auth", "web", "diag").
func (p *Process) Addr(name string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addrs[name]
}

func (p *Process) listen(name, addr string) (net.Listener, error) {
	if l, ok := p.opts.Listeners[name]; ok {
		p.mu.Lock()
		p.addrs[name] = l.Addr().String()
		p.mu.Unlock()
		return l, nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s for %s: %w", addr, name, err)
	}
	p.mu.Lock()
	p.addrs[name] = l.Addr().String()
	p.mu.Unlock()
	return l, nil
}

// Serve runs every component until ctx is done or one fails.
func (p *Process) Serve(ctx context.Context) error { return p.ServeWithReady(ctx, p.opts.Ready) }

// ServeWithReady is Serve, closing ready once every listener is serving.
func (p *Process) ServeWithReady(ctx context.Context, ready chan struct{}) error {
	if p.agent != nil {
		return p.agent.serve(ctx, ready)
	}
	var comps []runner.Task
	authL, err := p.listen("auth", p.cfg.Auth.ListenAddr)
	if err != nil {
		return err
	}
	comps = append(comps, runner.Task{Name: "auth", Run: func(ctx context.Context) error {
		go func() { <-ctx.Done(); p.grpc.Stop() }()
		return p.grpc.Serve(authL)
	}})
	if p.cfg.ProxyEnabled() {
		webL, err := p.listen("web", p.cfg.Proxy.WebListenAddr)
		if err != nil {
			return err
		}
		// Sessions a stopped process was recording are stored now, marked incomplete.
		p.recorder.StartUploadPending()
		srv := &http.Server{Handler: p.webInflight.wrap(p.webHandler()), TLSConfig: p.webTLS(), ReadHeaderTimeout: 30 * time.Second,
			ErrorLog: slog.NewLogLogger(p.log.Handler(), slog.LevelDebug)}
		stop := func() {
			_ = srv.Close()      // listener and connections
			p.kubeH.EndAll()     // streams, upgraded sessions included, which Close does not reach
			p.tunnels.CloseAll() // reverse tunnels, hijacked connections too
		}
		comps = append(comps, runner.Task{Name: "proxy", Run: func(ctx context.Context) error {
			go func() { <-ctx.Done(); stop() }()
			err := srv.ServeTLS(webL, "", "")
			stop()
			// Handlers outlive Serve. Their last audit events must reach the audit log
			// before Close closes it, so wait for them (ended above; this is quick).
			wctx, cancel := context.WithTimeout(context.Background(), shutdownWait)
			defer cancel()
			if n := p.webInflight.wait(wctx); n > 0 {
				p.log.Warn("Requests still running at shutdown; their audit events may be lost.", "count", n, "waited", shutdownWait)
			}
			if errors.Is(err, http.ErrServerClosed) {
				return nil
			}
			return err
		}})
	}
	if p.cfg.ProxyEnabled() {
		addr := p.cfg.Proxy.TunnelPublicAddr
		if addr == "" {
			addr = tunnelAddr(p.Addr("web"), p.cfg.Keyport.NodeName)
		}
		comps = append(comps, runner.Task{Name: "proxy-heartbeat", Run: func(ctx context.Context) error {
			return p.runProxyHeartbeats(ctx, addr)
		}})
	}
	if p.cfg.Keyport.DiagAddr != "" {
		diagL, err := p.listen("diag", p.cfg.Keyport.DiagAddr)
		if err != nil {
			return err
		}
		comps = append(comps, runner.HTTP("diag", diagL, p.diagHandler()))
	}
	if p.kube != nil {
		comps = append(comps, runner.Task{Name: "kube-heartbeat", Run: func(ctx context.Context) error {
			return p.kube.RunHeartbeats(ctx, heartbeater{p.Auth})
		}})
	}
	comps = append(comps, runner.Task{Name: "admin-identity", Run: func(ctx context.Context) error {
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-p.opts.Clock.After(12 * time.Hour):
				if err := p.writeAdminIdentity(); err != nil {
					p.log.Warn("refreshing admin identity", "error", err)
				}
			}
		}
	}})
	if p.kube != nil {
		// Register the clusters before saying ready, so that `tctl kube ls` and
		// certificates routed to them work as soon as the process is up.
		if err := (heartbeater{p.Auth}).HeartbeatKubeClusters(ctx, p.kube.Clusters(), kube.HeartbeatTTL); err != nil {
			return fmt.Errorf("registering kube clusters: %w", err)
		}
	}
	p.log.Info("keyport started", "cluster", p.cfg.Auth.ClusterName, "auth", p.Addr("auth"), "web", p.Addr("web"), "diag", p.Addr("diag"), "storage", p.cfg.Keyport.Storage.Type)
	if ready != nil {
		close(ready)
	}
	return runner.All(ctx, p.log, comps)
}

func (p *Process) diagHandler() http.Handler {
	return runner.Diag(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if _, err := p.backend.CurrentRevision(ctx); err != nil {
			http.Error(w, "backend: not ready", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	}, p.reg, p.opts.Profiling)
}

// webHandler is the proxy's one port: the Auth API over gRPC, and the web API.
func (p *Process) webHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /webapi/ping", func(w http.ResponseWriter, _ *http.Request) {
		ping := p.Auth.Ping()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"cluster_name":%q,"version":%q,"host_ca_pin":%q,"proxy_public_addr":%q}`+"\n", ping.ClusterName, ping.Version, ping.HostCAPin, ping.ProxyPublicAddr)
	})
	pages := web.NewHandler(web.Config{Invites: p.Auth, SSO: p.Auth, ProxyAddr: p.cfg.PublicAddr(), Logger: p.log.With("component", "web")})
	mux.Handle("/web/", pages)
	mux.Handle("/v1/webapi/", pages)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc"):
			p.grpc.ServeHTTP(w, r)
		case strings.HasPrefix(r.URL.Path, proxy.KubePrefix):
			p.kubeH.ServeHTTP(w, r)
		case r.URL.Path == tunnel.Path:
			p.tunnels.ServeHTTP(w, r)
		default:
			mux.ServeHTTP(w, r)
		}
	})
}

func etcdTLS(st config.Storage) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if st.TLSCertFile != "" {
		kp, err := tls.LoadX509KeyPair(st.TLSCertFile, st.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("loading etcd client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{kp}
	}
	if st.TLSCAFile != "" {
		data, err := os.ReadFile(st.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("reading etcd CA: %w", err)
		}
		certs, err := tlsca.ParseCertsPEM(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", st.TLSCAFile, err)
		}
		pool := x509CertPool(certs)
		tc.RootCAs = pool
	}
	return tc, nil
}

// localClusters finds clusters for the proxy: registrations from the auth cache,
// forwarders from the Kubernetes Service in this process or, failing that, from the
// reverse tunnels of Kubernetes Services elsewhere.
type localClusters struct {
	auth    *auth.Server
	kube    *kube.Service
	tunnels *proxy.Tunnels
}

func (l *localClusters) KubeCluster(name string) (*types.KubeCluster, bool) {
	r, err := l.auth.Cache().Get(types.KindKubeCluster, name)
	if err != nil {
		return nil, false
	}
	kc, ok := r.(*types.KubeCluster)
	return kc, ok
}

func (l *localClusters) Forwarder(name string) (*kube.Cluster, bool) {
	if l.kube != nil {
		if c, ok := l.kube.Cluster(name); ok {
			return c, true
		}
	}
	if l.tunnels != nil {
		return l.tunnels.Forwarder(name)
	}
	return nil, false
}

// heartbeater sends the Kubernetes Service's heartbeats to the Auth Service in process.
type heartbeater struct{ auth *auth.Server }

func (h heartbeater) HeartbeatKubeClusters(ctx context.Context, clusters []*types.KubeCluster, ttl time.Duration) error {
	return h.auth.HeartbeatKubeClusters(ctx, auth.Actor{}, clusters, ttl)
}

// clusterReviewer lets the Auth Service's `kube can-i` ask any cluster this process
// forwards to: one of its own Kubernetes Service, or one behind a reverse tunnel.
type clusterReviewer struct{ clusters *localClusters }

// forwarder returns the cluster's forwarder, or why there is none.
func (r clusterReviewer) forwarder(cluster string) (*kube.Cluster, error) {
	c, ok := r.clusters.Forwarder(cluster)
	if !ok {
		return nil, errs.NotFoundf("kube cluster %q is not reachable from this process: no Kubernetes Service here serves it and no reverse tunnel to it is open", cluster)
	}
	return c, nil
}

func (r clusterReviewer) SubjectAccessReview(ctx context.Context, cluster, user string, groups []string, a auth.ResourceAttributes) (bool, string, error) {
	c, err := r.forwarder(cluster)
	if err != nil {
		return false, "", err
	}
	return c.SubjectAccessReview(ctx, user, groups, a.Verb, a.Group, a.Resource, a.Subresource, a.Namespace, a.Name)
}

func (r clusterReviewer) ResolveResource(ctx context.Context, cluster, user string, groups []string, resource string) (string, string, error) {
	c, err := r.forwarder(cluster)
	if err != nil {
		return "", "", err
	}
	return c.ResolveResource(ctx, user, groups, resource)
}

// kubeReviewer is clusterReviewer for a process with its own Kubernetes Service, which
// can also check service account tokens (the kubernetes join method) with its cluster.
type kubeReviewer struct {
	clusterReviewer
	kube *kube.Service
}

// TokenReview makes kubeReviewer an auth.KubeTokenReviewer.
func (k kubeReviewer) TokenReview(ctx context.Context, token string) (*auth.ServiceAccountReview, error) {
	r, err := k.kube.TokenReview(ctx, token)
	if err != nil {
		return nil, err
	}
	return &auth.ServiceAccountReview{Cluster: r.Cluster, Authenticated: r.Authenticated, Error: r.Error, Username: r.Username, Groups: r.Groups, Extra: r.Extra}, nil
}

// continueKeyItem holds the key with which every proxy of the cluster seals the continue
// tokens of filtered lists, so that a client's next page may go to another proxy.
const continueKeyItem = "/proxy/continue-token-key"

// sharedSecret returns the 32 random bytes stored at key, creating them if no process of
// the cluster has yet.
func sharedSecret(ctx context.Context, b backend.Backend, key string) ([]byte, error) {
	for range 3 {
		it, err := b.Get(ctx, []byte(key))
		if err == nil {
			return it.Value, nil
		}
		if !errs.IsNotFound(err) {
			return nil, fmt.Errorf("reading %s: %w", key, err)
		}
		secret := make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
			return nil, err
		}
		if _, err := b.Create(ctx, backend.Item{Key: []byte(key), Value: secret}); err == nil {
			return secret, nil
		} else if !errs.IsAlreadyExists(err) {
			return nil, fmt.Errorf("storing %s: %w", key, err)
		}
	}
	return nil, fmt.Errorf("storing %s: another process keeps replacing it", key)
}

// openRecordingStore opens the store auth_service.session_recording_uri names
// (recording.ParseURI): dir when it is empty.
func openRecordingStore(ctx context.Context, uri, dir string) (recording.Store, error) {
	fileDir, s3, err := recording.ParseURI(uri)
	switch {
	case err != nil:
		return nil, err
	case s3 != nil:
		return s3store.New(ctx, *s3)
	case fileDir != "":
		return recording.NewDirStore(fileDir)
	}
	return recording.NewDirStore(dir)
}

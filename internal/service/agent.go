package service

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
	"github.com/keyport/keyport/internal/client"
	"github.com/keyport/keyport/internal/clock"
	"github.com/keyport/keyport/internal/config"
	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/identityfile"
	"github.com/keyport/keyport/internal/kube"
	"github.com/keyport/keyport/internal/runner"
	"github.com/keyport/keyport/internal/tlsca"
	"github.com/keyport/keyport/internal/types"
)

// HostIdentityFile is where, under data_dir, a Kubernetes Service that joined a cluster
// keeps its host identity (key, host certificate with system role kube, CAs), so that a
// restart needs no new join token.
const HostIdentityFile = "host-identity"

// Names the agent uses with the Auth API.
const (
	agentRole       = "kube"
	agentJoinMethod = "token"
)

// agent is a process without auth_service: a Kubernetes Service that joins a cluster
// with a `kube` token, heartbeats its clusters over the Auth API, and keeps a reverse
// tunnel open to the proxy, which sends those clusters' traffic through it. It needs no
// inbound port.
type agent struct {
	p        *Process
	cfg      *config.File
	log      *slog.Logger
	clock    clock.Clock
	kube     *kube.Service
	authAddr string // the Auth API: proxy_server (its one port serves it) or auth_server

	id     atomic.Pointer[identityfile.Identity]
	up     atomic.Bool
	tunnel prometheus.Gauge

	mu     sync.Mutex
	clt    *client.Client
	cltFor *identityfile.Identity
	// store keeps the host identity: a file in data_dir, or a Secret.
	store identityStore
	// proxies are the live proxies' tunnel addresses, from the last ListProxies; api is
	// the one the Auth API client uses now (authAddr until a failover).
	proxies []string
	api     string
}

// newAgent builds the agent and makes sure it has a host identity: the one kept in
// data_dir, or a new one from joining with keyport.join_params.
func newAgent(ctx context.Context, p *Process) (*Process, error) {
	cfg := p.cfg
	if cfg.ProxyEnabled() {
		return nil, errs.BadParameterf("%s: proxy_service runs only beside auth_service; in a process that joins a cluster (auth_service.enabled: false), set proxy_service.enabled: false", cfg.Path)
	}
	if !cfg.KubeEnabled() {
		return nil, errs.BadParameterf("%s: a process without auth_service joins a cluster as a Kubernetes Service; enable kubernetes_service", cfg.Path)
	}
	a := &agent{p: p, cfg: cfg, log: p.log, clock: p.opts.Clock, authAddr: cfg.Keyport.ProxyServer}
	if a.authAddr == "" {
		a.authAddr = cfg.Keyport.AuthServer
	}
	if err := os.MkdirAll(cfg.Keyport.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data_dir: %w", err)
	}
	if err := os.Chmod(cfg.Keyport.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("securing data_dir: %w", err)
	}
	// Enrol the clusters first: a bad kubeconfig should not spend the join token.
	ks, err := kube.New(kube.Config{KubeconfigFile: cfg.Kube.KubeconfigFile, KubeClusterName: cfg.Kube.KubeClusterName,
		Labels: cfg.Kube.Labels, ServiceName: cfg.Keyport.NodeName, Logger: p.log.With("component", "kube"), Clock: a.clock})
	if err != nil {
		return nil, err
	}
	a.kube = ks
	if a.store, err = a.identityStore(); err != nil {
		return nil, err
	}
	id, err := a.loadOrJoin(ctx)
	if err != nil {
		return nil, err
	}
	a.id.Store(id)
	a.tunnel = prometheus.NewGauge(prometheus.GaugeOpts{Name: "keyport_kube_tunnel_up", Help: "1 while the reverse tunnel to the proxy is open."})
	p.reg.MustRegister(a.tunnel)
	p.agent = a
	return p, nil
}

func (a *agent) identityPath() string { return filepath.Join(a.cfg.Keyport.DataDir, HostIdentityFile) }

// loadOrJoin returns the stored host identity if it is still good, or joins.
func (a *agent) loadOrJoin(ctx context.Context) (*identityfile.Identity, error) {
	path := a.store.String()
	id, err := a.store.load(ctx)
	switch {
	case errs.IsNotFound(err):
		return a.join(ctx)
	case err != nil:
		return nil, err
	}
	if id.Identity == nil || id.Identity.SystemRole != agentRole {
		return nil, errs.BadParameterf("%s is not the host identity of a Kubernetes Service; remove it to join again", path)
	}
	if name := a.cfg.Keyport.NodeName; id.Identity.Username != name {
		return nil, errs.BadParameterf("%s holds the host identity of %q, but keyport.nodename is %q; set nodename back, or remove the file and join again with a new token",
			path, id.Identity.Username, name)
	}
	if err := checkPinned(id.HostCAs, a.cfg.Keyport.CAPins); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if !a.clock.Now().Before(id.Cert.NotAfter) {
		a.log.Warn("the stored host identity has expired; joining again", "expired", id.Cert.NotAfter.UTC().Format(time.RFC3339))
		nid, err := a.join(ctx)
		if err != nil {
			return nil, fmt.Errorf("the host identity in %s expired at %s and joining again failed: %w", path, id.Cert.NotAfter.UTC().Format(time.RFC3339), err)
		}
		return nid, nil
	}
	a.log.Info("using the stored host identity", "name", id.Identity.Username, "expires", id.Cert.NotAfter.UTC().Format(time.RFC3339))
	return id, nil
}

// join exchanges the kube join token for a host certificate. The server is checked
// against keyport.ca_pins (or, without pins, the system roots) inside the TLS
// handshake, before the token is sent.
func (a *agent) join(ctx context.Context) (*identityfile.Identity, error) {
	jp := a.cfg.Keyport.JoinParams
	method := agentJoinMethod
	var (
		token string
		err   error
	)
	switch jp.Method {
	case "", agentJoinMethod:
		token, err = resolveJoinToken(jp.TokenName)
	case types.JoinMethodKubernetes:
		method = types.JoinMethodKubernetes
		token, err = serviceAccountJoin(jp.TokenName)
	default:
		err = errs.BadParameterf("keyport.join_params.method %q is not supported for Kubernetes Services (want token or kubernetes)", jp.Method)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", a.cfg.Path, err)
	}
	trust := &firstContact{pins: a.cfg.Keyport.CAPins, addr: a.authAddr}
	cc, err := trust.clientConfig()
	if err != nil {
		return nil, err
	}
	clt, err := client.New(cc)
	if err != nil {
		return nil, err
	}
	defer func() { _ = clt.Close() }()
	if _, err := clt.Ping(ctx, &pb.PingRequest{}); err != nil {
		return nil, trust.explain(err)
	}
	key, err := tlsca.GenerateKey(tlsca.AlgECDSAP256, clock.Rand)
	if err != nil {
		return nil, err
	}
	certs, err := clt.JoinHost(ctx, &pb.JoinHostRequest{Token: token, JoinMethod: method, PublicKeyDer: mustPKIX(key.Public()),
		Hostname: a.cfg.Keyport.NodeName, Role: agentRole})
	if err != nil {
		return nil, fmt.Errorf("joining the cluster at %s: %w", a.authAddr, trust.explain(err))
	}
	id, err := hostIdentity(key, certs)
	if err != nil {
		return nil, err
	}
	if err := checkPinned(id.HostCAs, a.cfg.Keyport.CAPins); err != nil {
		return nil, err
	}
	if err := a.store.save(ctx, id); err != nil {
		return nil, err
	}
	a.log.Info("joined the cluster as a Kubernetes Service", "cluster", certs.GetClusterName(), "name", id.Identity.Username, "via", a.authAddr)
	return id, nil
}

// renew exchanges the current host certificate for a fresh one (JoinHost with the
// certificate itself and no token).
func (a *agent) renew(ctx context.Context) error {
	clt, err := a.client()
	if err != nil {
		return err
	}
	key, err := tlsca.GenerateKey(tlsca.AlgECDSAP256, clock.Rand)
	if err != nil {
		return err
	}
	certs, err := clt.JoinHost(ctx, &pb.JoinHostRequest{JoinMethod: agentJoinMethod, PublicKeyDer: mustPKIX(key.Public()), Hostname: a.cfg.Keyport.NodeName, Role: agentRole})
	if err != nil {
		return err
	}
	id, err := hostIdentity(key, certs)
	if err != nil {
		return err
	}
	if err := a.store.save(ctx, id); err != nil {
		return err
	}
	a.id.Store(id)
	a.log.Info("renewed the host certificate", "expires", id.Cert.NotAfter.UTC().Format(time.RFC3339))
	return nil
}

func hostIdentity(key crypto.Signer, certs *pb.Certs) (*identityfile.Identity, error) {
	cert, err := tlsca.ParseCertPEM(certs.GetTlsCertPem())
	if err != nil {
		return nil, fmt.Errorf("the auth server returned an unreadable certificate: %w", err)
	}
	if len(certs.GetHostCaPems()) == 0 {
		return nil, errs.BadParameterf("the auth server returned no host CA")
	}
	id := &identityfile.Identity{Key: key, CertPEM: certs.GetTlsCertPem(), Cert: cert, HostCAs: certs.GetHostCaPems(), UserCAs: certs.GetUserCaPems()}
	if id.Identity, err = tlsca.FromCertificate(cert); err != nil {
		return nil, err
	}
	if id.Identity.SystemRole != agentRole {
		return nil, errs.BadParameterf("the auth server returned a certificate with system role %q, not %q", id.Identity.SystemRole, agentRole)
	}
	return id, nil
}

func mustPKIX(pub crypto.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		panic(err) // keys come from tlsca.GenerateKey, which only makes marshalable ones
	}
	return der
}

// client is an Auth API client with the current host identity, rebuilt after renewal.
func (a *agent) client() (*client.Client, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	id := a.id.Load()
	if a.clt != nil && a.cltFor == id {
		return a.clt, nil
	}
	clt, err := client.New(client.Config{Addr: a.apiAddr(), Identity: id})
	if err != nil {
		return nil, err
	}
	if a.clt != nil {
		_ = a.clt.Close()
	}
	a.clt, a.cltFor = clt, id
	return clt, nil
}

// HeartbeatKubeClusters sends the heartbeats over the Auth API.
func (a *agent) HeartbeatKubeClusters(ctx context.Context, clusters []*types.KubeCluster, ttl time.Duration) error {
	clt, err := a.client()
	if err != nil {
		return err
	}
	req := &pb.HeartbeatKubeClustersRequest{TtlSeconds: int64(ttl / time.Second)}
	for _, c := range clusters {
		req.Clusters = append(req.Clusters, &pb.KubeCluster{Name: c.GetName(), Labels: c.Metadata.Labels, Service: c.Spec.Service})
	}
	if _, err = clt.HeartbeatKubeClusters(ctx, req); err != nil && ctx.Err() == nil {
		a.failover() // the next heartbeat goes through another live proxy
	}
	return err
}

// tunnelTLS is the client side of the tunnel: the current host certificate, and only
// the cluster's host CA trusted.
func (a *agent) tunnelTLS() (*tls.Config, error) {
	id := a.id.Load()
	kp, err := id.TLSCertificate()
	if err != nil {
		return nil, err
	}
	pool, err := id.HostCAPool()
	if err != nil {
		return nil, err
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{kp}, RootCAs: pool, ServerName: tlsca.ServerName}, nil
}

// proxyAddr is where the tunnel goes: proxy_server, or the public address the Auth
// Service reports for its proxy.
func (a *agent) proxyAddr(ctx context.Context) (string, error) {
	if a.cfg.Keyport.ProxyServer != "" {
		return a.cfg.Keyport.ProxyServer, nil
	}
	clt, err := a.client()
	if err != nil {
		return "", err
	}
	ping, err := clt.Ping(ctx, &pb.PingRequest{})
	if err != nil {
		return "", err
	}
	if ping.GetProxyPublicAddr() == "" {
		return "", errs.BadParameterf("%s: the auth server knows no proxy address; set keyport.proxy_server for the reverse tunnel", a.cfg.Path)
	}
	return ping.GetProxyPublicAddr(), nil
}

// serve runs the agent's components: heartbeats, the reverse tunnel, renewal of the
// host certificate and diagnostics. ready is closed when the tunnel is first up.
func (a *agent) serve(ctx context.Context, ready chan struct{}) error {
	proxyAddr, err := a.proxyAddr(ctx)
	if err != nil {
		return err
	}
	var comps []runner.Task
	if a.cfg.Keyport.DiagAddr != "" {
		diagL, err := a.p.listen("diag", a.cfg.Keyport.DiagAddr)
		if err != nil {
			return err
		}
		comps = append(comps, runner.HTTP("diag", diagL, a.diagHandler()))
	}
	// Register the clusters before the tunnel opens: the proxy routes a tunnel's traffic
	// only for clusters registered by the tunnel's own service.
	if err := a.HeartbeatKubeClusters(ctx, a.kube.Clusters(), kube.HeartbeatTTL); err != nil {
		a.log.Warn("first kube cluster heartbeat failed; retrying", "error", err)
	}
	var once sync.Once
	comps = append(comps,
		runner.Task{Name: "kube-heartbeat", Run: func(ctx context.Context) error { return a.kube.RunHeartbeats(ctx, a) }},
		runner.Task{Name: "kube-tunnels", Run: func(ctx context.Context) error {
			return a.runTunnels(ctx, proxyAddr, func() {
				if ready != nil {
					once.Do(func() { close(ready) })
				}
			})
		}},
		runner.Task{Name: "host-cert-renewal", Run: a.runRenewal},
	)
	a.log.Info("keyport started as a Kubernetes Service", "name", a.cfg.Keyport.NodeName, "auth", a.authAddr, "proxy", proxyAddr,
		"clusters", len(a.kube.Clusters()), "diag", a.p.Addr("diag"))
	defer func() {
		a.mu.Lock()
		if a.clt != nil {
			_ = a.clt.Close()
		}
		a.mu.Unlock()
	}()
	return runner.All(ctx, a.log, comps)
}

// runRenewal renews the host certificate at about two-thirds of its life, with jitter,
// retrying with backoff.
func (a *agent) runRenewal(ctx context.Context) error {
	retry := time.Minute
	for {
		id := a.id.Load()
		life := id.Cert.NotAfter.Sub(id.Cert.NotBefore)
		jitter := time.Duration(rand.Int64N(int64(life/10)+1)) - life/20
		wait := id.Cert.NotBefore.Add(life*2/3 + jitter).Sub(a.clock.Now())
		if wait > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-a.clock.After(wait):
			}
		}
		if err := a.renew(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			a.log.Warn("renewing the host certificate failed; retrying", "error", err, "in", retry, "expires", id.Cert.NotAfter.UTC().Format(time.RFC3339))
			select {
			case <-ctx.Done():
				return nil
			case <-a.clock.After(retry):
			}
			retry = min(retry*2, 30*time.Minute)
			continue
		}
		retry = time.Minute
	}
}

func (a *agent) diagHandler() http.Handler {
	return runner.Diag(func(w http.ResponseWriter, _ *http.Request) {
		if !a.up.Load() {
			http.Error(w, "reverse tunnel to the proxy: not connected", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	}, a.p.reg, a.p.opts.Profiling)
}

// firstContact is the trust check before the agent holds a host CA (SPEC section 5):
// with ca_pins, the server must present, after its certificate, a CA whose pin is
// listed and that issued it; without pins its certificate must verify against the
// system roots (a public https_keypairs certificate). It runs inside the TLS handshake,
// so the join token never reaches a server that fails it.
type firstContact struct {
	pins []string
	addr string

	mu  sync.Mutex
	err error
}

func (f *firstContact) clientConfig() (client.Config, error) {
	if len(f.pins) > 0 {
		return client.Config{Addr: f.addr, VerifyServer: f.verify}, nil
	}
	roots, err := x509.SystemCertPool()
	if err != nil {
		return client.Config{}, errs.BadParameterf("no keyport.ca_pins and no system roots to verify %s: %v", f.addr, err)
	}
	host, _, _ := net.SplitHostPort(f.addr)
	return client.Config{Addr: f.addr, RootCAs: roots, ServerName: host}, nil
}

func (f *firstContact) verify(raw [][]byte) error {
	refuse := func(err error) error {
		f.mu.Lock()
		f.err = err
		f.mu.Unlock()
		return err
	}
	var certs []*x509.Certificate
	for _, r := range raw {
		c, err := x509.ParseCertificate(r)
		if err != nil {
			return refuse(errs.AccessDeniedf("the server at %s presented an unreadable certificate: %v", f.addr, err))
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return refuse(errs.AccessDeniedf("the server at %s presented no certificate", f.addr))
	}
	var pinErr error
	for _, ca := range certs[1:] {
		if !ca.IsCA {
			continue
		}
		if pinErr = tlsca.CheckPins(ca, f.pins); pinErr != nil {
			continue
		}
		pool := x509.NewCertPool()
		pool.AddCert(ca)
		if _, err := certs[0].Verify(x509.VerifyOptions{Roots: pool, DNSName: tlsca.ServerName, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			return refuse(errs.AccessDeniedf("the server at %s presented a CA that matches keyport.ca_pins, but its certificate was not issued by that CA: %v", f.addr, err))
		}
		return nil
	}
	if pinErr != nil {
		return refuse(errs.AccessDeniedf("refusing %s before sending the join token: %v", f.addr, pinErr))
	}
	return refuse(errs.AccessDeniedf("refusing %s before sending the join token: it presented no CA certificate to check against keyport.ca_pins (is it a Keyport proxy or auth server?)", f.addr))
}

// explain replaces a failed call's connection error with the trust check's own reason.
func (f *firstContact) explain(err error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil && err != nil {
		return f.err
	}
	return err
}

// checkPinned makes sure a host CA the agent keeps is one the pins name.
func checkPinned(hostCAs [][]byte, pins []string) error {
	if len(pins) == 0 {
		return nil
	}
	for _, p := range hostCAs {
		certs, err := tlsca.ParseCertsPEM(p)
		if err != nil {
			return err
		}
		for _, c := range certs {
			if tlsca.CheckPins(c, pins) == nil {
				return nil
			}
		}
	}
	return errs.AccessDeniedf("the cluster's host CA matches none of keyport.ca_pins")
}

// resolveJoinToken returns join_params.token_name: the token itself, or the content of
// the file it names, so that the secret need not sit in keyport.yaml.
// Where a pod's service account token is: the default mount, or the file
// $KUBERNETES_TOKEN_PATH names (a projected token with the cluster name as audience, for
// tokens of type static_jwks or oidc).
const (
	defaultServiceAccountTokenPath = "/var/run/secrets/kubernetes.io/serviceaccount/token"
	serviceAccountTokenPathEnv     = "KUBERNETES_TOKEN_PATH"
)

// serviceAccountJoin is JoinHostRequest.token for join method kubernetes: the token
// resource's name and the pod's service account token, read now (the kubelet rotates
// it), as "<name>\n<JWT>".
func serviceAccountJoin(name string) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return "", errs.BadParameterf("keyport.join_params.token_name must name the kubernetes join token (`tctl tokens add --type=kube --join-method=kubernetes --name=…`)")
	}
	path := os.Getenv(serviceAccountTokenPathEnv)
	if path == "" {
		path = defaultServiceAccountTokenPath
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", errs.BadParameterf("join method kubernetes: reading the pod's service account token: %v (mount a projected token there, or set $%s to its path)", err, serviceAccountTokenPathEnv)
	}
	jwt := strings.TrimSpace(string(data))
	if jwt == "" || strings.ContainsAny(jwt, " \t\r\n") {
		return "", errs.BadParameterf("join method kubernetes: %s does not hold a service account token", path)
	}
	return name + "\n" + jwt, nil
}

func resolveJoinToken(v string) (string, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return "", errs.BadParameterf("keyport.join_params.token_name is needed to join the cluster (create a token with `tctl tokens add --type=kube`)")
	}
	if fi, err := os.Stat(v); err == nil && fi.Mode().IsRegular() {
		data, err := os.ReadFile(v)
		if err != nil {
			return "", fmt.Errorf("reading the join token file: %w", err)
		}
		if t := strings.TrimSpace(string(data)); t != "" {
			return t, nil
		}
		return "", errs.BadParameterf("the join token file %s is empty", v)
	}
	if strings.ContainsRune(v, '/') {
		return "", errs.BadParameterf("the join token file %s does not exist", v)
	}
	return v, nil
}

// Package testenv is the end-to-end harness: New starts a whole Keyport cluster in
// process, on listeners bound to 127.0.0.1:0 before the daemon starts (no port races),
// waits for its readiness signal (never on sleeps), and stops it in t.Cleanup. Tests then
// talk to it with the real client package, or run the built binaries against it.
package testenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyport/keyport/internal/client"
	"github.com/keyport/keyport/internal/config"
	"github.com/keyport/keyport/internal/identityfile"
	"github.com/keyport/keyport/internal/service"
)

// Cluster is a running cluster started without a testing.TB (Start), for commands such
// as `make bench`; Env wraps it for tests.
type Cluster struct {
	Dir      string
	Config   *config.File
	Process  *service.Process
	AuthAddr string
	WebAddr  string
	DiagAddr string

	cancel context.CancelFunc
	done   chan error
}

// Env is a running cluster owned by a test.
type Env struct {
	*Cluster
	t testing.TB
}

// Option changes the cluster's config before it starts.
type Option func(*options)

type options struct {
	yaml       string
	dataDir    string
	logger     *slog.Logger
	kube       string
	oidcClient *http.Client
	nodeName   string
	recordings string
}

// WithNodeName names the process (keyport.nodename; default test-node), e.g. for two
// processes on one backend.
func WithNodeName(n string) Option { return func(o *options) { o.nodeName = n } }

// WithOIDCClient gives the Auth Service the HTTP client it reaches OIDC issuers with
// (a test issuer's TLS certificate is in no system root).
func WithOIDCClient(c *http.Client) Option { return func(o *options) { o.oidcClient = c } }

// WithKube enables the Kubernetes Service: every context of kubeconfig becomes a kube
// cluster with the given labels.
func WithKube(kubeconfig string, labels map[string]string) Option {
	return func(o *options) {
		o.kube = fmt.Sprintf("kubernetes_service:\n  enabled: true\n  kubeconfig_file: %s\n", kubeconfig)
		if len(labels) > 0 {
			o.kube += "  labels:\n"
			for k, v := range labels {
				o.kube += fmt.Sprintf("    %q: %q\n", k, v)
			}
		}
	}
}

// WithStorage sets the keyport.storage block (YAML, indented for that block), e.g. for etcd.
func WithStorage(block string) Option { return func(o *options) { o.yaml = block } }

// WithRecordingURI sets auth_service.session_recording_uri.
func WithRecordingURI(uri string) Option { return func(o *options) { o.recordings = uri } }

// WithDataDir reuses a data directory, to test restarts.
func WithDataDir(dir string) Option { return func(o *options) { o.dataDir = dir } }

// WithLogs sends the daemon's logs to w (default: discarded).
func WithLogs(w io.Writer) Option {
	return WithLogger(slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})))
}

// WithLogger sends the daemon's logs to logger (default: discarded).
func WithLogger(logger *slog.Logger) Option { return func(o *options) { o.logger = logger } }

// ClusterName is the name of every test cluster.
const ClusterName = "keyport.example.com"

// New starts a cluster for a test and stops it in t.Cleanup.
func New(t testing.TB, opts ...Option) *Env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Start(ctx, t.TempDir(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	env := &Env{Cluster: c, t: t}
	t.Cleanup(env.Stop)
	return env
}

// Start starts a cluster in dir and waits (until ctx ends) for its readiness signal.
// The caller must call Stop.
func Start(ctx context.Context, dir string, opts ...Option) (_ *Cluster, err error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.dataDir == "" {
		o.dataDir = filepath.Join(dir, "data")
	}
	if o.nodeName == "" {
		o.nodeName = "test-node"
	}
	if o.logger == nil {
		o.logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	lis := map[string]net.Listener{}
	defer func() {
		if err != nil {
			for _, l := range lis {
				_ = l.Close()
			}
		}
	}()
	for _, name := range []string{"auth", "web", "diag"} {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lis[name] = l
	}
	storage := o.yaml
	if storage == "" {
		storage = "    type: sqlite\n"
	}
	yaml := fmt.Sprintf(`version: v3
keyport:
  nodename: %s
  data_dir: %s
  storage:
%s  diag_addr: %s
auth_service:
  cluster_name: %s
  listen_addr: %s
  authentication: {type: local, second_factor: otp}
  session_recording_uri: %q
proxy_service:
  web_listen_addr: %s
  public_addr: %s
%s`, o.nodeName, o.dataDir, storage, lis["diag"].Addr(), ClusterName, lis["auth"].Addr(), o.recordings, lis["web"].Addr(), lis["web"].Addr(), o.kube)
	cfgPath := filepath.Join(dir, "keyport.yaml")
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		return nil, err
	}
	cfg, err := config.Read(cfgPath)
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	p, err := service.New(runCtx, service.Options{Config: cfg, Logger: o.logger, Listeners: lis, OIDCClient: o.oidcClient})
	if err != nil {
		cancel()
		return nil, err
	}
	c := &Cluster{Dir: dir, Config: cfg, Process: p, cancel: cancel, done: make(chan error, 1),
		AuthAddr: lis["auth"].Addr().String(), WebAddr: lis["web"].Addr().String(), DiagAddr: lis["diag"].Addr().String()}
	ready := make(chan struct{})
	go func() {
		err := p.ServeWithReady(runCtx, ready)
		// Close writes the audit log's queued events and closes the backend: Stop
		// returns only after it, so that a test reading events.log or the data
		// directory afterwards sees everything.
		p.Close()
		c.done <- err
	}()
	select {
	case <-ready:
		return c, nil
	case err := <-c.done:
		cancel()
		return nil, fmt.Errorf("keyport stopped during start: %w", err)
	case <-ctx.Done():
		return nil, errors.Join(fmt.Errorf("keyport did not become ready: %w", ctx.Err()), c.Stop())
	}
}

// Stop stops the cluster and waits (bounded) for it; safe to call twice.
func (c *Cluster) Stop() error {
	if c.cancel == nil {
		return nil
	}
	c.cancel()
	c.cancel = nil
	select {
	case err := <-c.done:
		if err != nil && !strings.Contains(err.Error(), "closed") {
			return fmt.Errorf("keyport stopped with: %w", err)
		}
		return nil
	case <-time.After(30 * time.Second):
		return errors.New("keyport did not stop in 30s")
	}
}

// ConfigPath is the keyport.yaml of this cluster (for tctl -c).
func (c *Cluster) ConfigPath() string { return c.Config.Path }

// AdminIdentityPath is the local admin identity.
func (c *Cluster) AdminIdentityPath() string {
	return filepath.Join(c.Config.Keyport.DataDir, service.AdminIdentityFile)
}

// NewAdminClient connects to the auth listener with the local admin identity.
func (c *Cluster) NewAdminClient() (*client.Client, error) {
	id, err := identityfile.Read(c.AdminIdentityPath())
	if err != nil {
		return nil, err
	}
	return client.New(client.Config{Addr: c.AuthAddr, Identity: id})
}

// Stop stops the cluster and waits for it; safe to call twice.
func (e *Env) Stop() {
	if err := e.Cluster.Stop(); err != nil {
		e.t.Error(err)
	}
}

// AdminClient is a client with the local admin identity, to the auth listener.
func (e *Env) AdminClient() *client.Client {
	e.t.Helper()
	id, err := identityfile.Read(e.AdminIdentityPath())
	if err != nil {
		e.t.Fatal(err)
	}
	return e.Client(e.AuthAddr, id)
}

// Client connects to addr with identity id.
func (e *Env) Client(addr string, id *identityfile.Identity) *client.Client {
	e.t.Helper()
	clt, err := client.New(client.Config{Addr: addr, Identity: id})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = clt.Close() })
	return clt
}

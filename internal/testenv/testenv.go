// Package testenv is the end-to-end harness: New starts a whole Keyport cluster in
// process, on listeners bound to 127.0.0.1:0 before the daemon starts (no port races),
// waits for its readiness signal (never on sleeps), and stops it in t.Cleanup. Tests then
// talk to it with the real client package, or run the built binaries against it.
package testenv

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
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

// Env is a running cluster.
type Env struct {
	t        testing.TB
	Dir      string
	Config   *config.File
	Process  *service.Process
	AuthAddr string
	WebAddr  string
	DiagAddr string

	cancel context.CancelFunc
	done   chan error
}

// Option changes the cluster's config before it starts.
type Option func(*options)

type options struct {
	yaml    string
	dataDir string
	logs    io.Writer
	kube    string
}

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

// WithDataDir reuses a data directory, to test restarts.
func WithDataDir(dir string) Option { return func(o *options) { o.dataDir = dir } }

// WithLogs sends the daemon's logs to w (default: discarded).
func WithLogs(w io.Writer) Option { return func(o *options) { o.logs = w } }

// ClusterName is the name of every test cluster.
const ClusterName = "keyport.example.com"

// New starts a cluster.
func New(t testing.TB, opts ...Option) *Env {
	t.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	dir := t.TempDir()
	if o.dataDir == "" {
		o.dataDir = filepath.Join(dir, "data")
	}
	lis := map[string]net.Listener{}
	for _, name := range []string{"auth", "web", "diag"} {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lis[name] = l
	}
	storage := o.yaml
	if storage == "" {
		storage = "    type: sqlite\n"
	}
	yaml := fmt.Sprintf(`version: v3
keyport:
  nodename: test-node
  data_dir: %s
  storage:
%s  diag_addr: %s
auth_service:
  cluster_name: %s
  listen_addr: %s
  authentication: {type: local, second_factor: otp}
proxy_service:
  web_listen_addr: %s
  public_addr: %s
%s`, o.dataDir, storage, lis["diag"].Addr(), ClusterName, lis["auth"].Addr(), lis["web"].Addr(), lis["web"].Addr(), o.kube)
	cfgPath := filepath.Join(dir, "keyport.yaml")
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Read(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	logs := o.logs
	if logs == nil {
		logs = io.Discard
	}
	ctx, cancel := context.WithCancel(context.Background())
	p, err := service.New(ctx, service.Options{Config: cfg, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), Listeners: lis})
	if err != nil {
		cancel()
		for _, l := range lis {
			_ = l.Close()
		}
		t.Fatal(err)
	}
	ready := make(chan struct{})
	env := &Env{t: t, Dir: dir, Config: cfg, Process: p, cancel: cancel, done: make(chan error, 1),
		AuthAddr: lis["auth"].Addr().String(), WebAddr: lis["web"].Addr().String(), DiagAddr: lis["diag"].Addr().String()}
	go func() {
		defer p.Close()
		env.done <- p.ServeWithReady(ctx, ready)
	}()
	select {
	case <-ready:
	case err := <-env.done:
		cancel()
		t.Fatalf("keyport stopped during start: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("keyport did not become ready in 30s")
	}
	t.Cleanup(env.Stop)
	return env
}

// Stop stops the cluster and waits for it; safe to call twice.
func (e *Env) Stop() {
	if e.cancel == nil {
		return
	}
	e.cancel()
	e.cancel = nil
	select {
	case err := <-e.done:
		if err != nil && !strings.Contains(err.Error(), "closed") {
			e.t.Errorf("keyport stopped with: %v", err)
		}
	case <-time.After(30 * time.Second):
		e.t.Error("keyport did not stop in 30s")
	}
}

// ConfigPath is the keyport.yaml of this cluster (for tctl -c).
func (e *Env) ConfigPath() string { return e.Config.Path }

// AdminIdentityPath is the local admin identity.
func (e *Env) AdminIdentityPath() string {
	return filepath.Join(e.Config.Keyport.DataDir, service.AdminIdentityFile)
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

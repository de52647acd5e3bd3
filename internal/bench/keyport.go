package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/keyport/keyport/internal/client"
	"github.com/keyport/keyport/internal/config"
	"github.com/keyport/keyport/internal/identityfile"
	"github.com/keyport/keyport/internal/service"
)

// ClusterName is the Keyport cluster the bench starts.
const ClusterName = "bench.keyport.local"

// Keyport is a whole Keyport cluster (auth, proxy and Kubernetes Service) running in this
// process. It starts the way testenv.New does — listeners bound to 127.0.0.1:0 before
// the daemon starts, then its readiness signal — but needs no testing.TB, so that a
// command can run it.
type Keyport struct {
	Dir      string
	Process  *service.Process
	AuthAddr string
	WebAddr  string

	cancel context.CancelFunc
	done   chan error
}

// StartKeyport starts a cluster in dir with the Kubernetes Service enrolling every context
// of kubeconfig with labels. The caller must call Stop.
func StartKeyport(ctx context.Context, dir, kubeconfig string, labels map[string]string, logger *slog.Logger) (_ *Keyport, err error) {
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
	var kube strings.Builder
	fmt.Fprintf(&kube, "kubernetes_service:\n  enabled: true\n  kubeconfig_file: %s\n", kubeconfig)
	if len(labels) > 0 {
		kube.WriteString("  labels:\n")
		keys := make([]string, 0, len(labels))
		for k := range labels {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&kube, "    %q: %q\n", k, labels[k])
		}
	}
	yaml := fmt.Sprintf(`version: v3
keyport:
  nodename: bench-node
  data_dir: %s
  storage:
    type: sqlite
  diag_addr: %s
auth_service:
  cluster_name: %s
  listen_addr: %s
  authentication: {type: local, second_factor: otp}
proxy_service:
  web_listen_addr: %s
  public_addr: %s
%s`, filepath.Join(dir, "data"), lis["diag"].Addr(), ClusterName, lis["auth"].Addr(), lis["web"].Addr(), lis["web"].Addr(), kube.String())
	cfgPath := filepath.Join(dir, "keyport.yaml")
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		return nil, err
	}
	cfg, err := config.Read(cfgPath)
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	p, err := service.New(runCtx, service.Options{Config: cfg, Logger: logger, Listeners: lis})
	if err != nil {
		cancel()
		return nil, err
	}
	k := &Keyport{Dir: dir, Process: p, cancel: cancel, done: make(chan error, 1),
		AuthAddr: lis["auth"].Addr().String(), WebAddr: lis["web"].Addr().String()}
	ready := make(chan struct{})
	go func() {
		defer p.Close()
		k.done <- p.ServeWithReady(runCtx, ready)
	}()
	select {
	case <-ready:
		return k, nil
	case err := <-k.done:
		cancel()
		return nil, fmt.Errorf("keyport stopped during start: %w", err)
	case <-ctx.Done():
		return nil, errors.Join(fmt.Errorf("keyport did not become ready: %w", ctx.Err()), k.Stop())
	}
}

// Stop stops the cluster and waits (bounded) for it; safe to call twice.
func (k *Keyport) Stop() error {
	if k.cancel == nil {
		return nil
	}
	k.cancel()
	k.cancel = nil
	select {
	case err := <-k.done:
		if err != nil && !strings.Contains(err.Error(), "closed") {
			return fmt.Errorf("keyport stopped with: %w", err)
		}
		return nil
	case <-time.After(30 * time.Second):
		return errors.New("keyport did not stop in 30s")
	}
}

// AdminClient connects to the auth listener with the local admin identity.
func (k *Keyport) AdminClient() (*client.Client, error) {
	id, err := identityfile.Read(filepath.Join(k.Dir, "data", service.AdminIdentityFile))
	if err != nil {
		return nil, err
	}
	return client.New(client.Config{Addr: k.AuthAddr, Identity: id})
}

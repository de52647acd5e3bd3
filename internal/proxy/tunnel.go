package proxy

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/keyport/keyport/internal/kube"
	"github.com/keyport/keyport/internal/tlsca"
	"github.com/keyport/keyport/internal/tunnel"
	"github.com/keyport/keyport/internal/types"
)

// SystemRoleKube is the system role of a Kubernetes Service's host certificate; only
// such certificates may open a tunnel.
const SystemRoleKube = "kube"

// TunnelConfig configures the proxy's end of reverse tunnels.
type TunnelConfig struct {
	Auth Authenticator
	// Registered returns a cluster's registration (from heartbeats). A tunnel carries a
	// cluster's traffic only while the cluster is registered by the tunnel's own service
	// (kube_cluster spec.service = the host certificate's name).
	Registered func(name string) (*types.KubeCluster, bool)
	Logger     *slog.Logger
	// Context ends every tunnel when done.
	Context context.Context
	// Changes, when set, reports changes to locks (the cache's Subscribe); each one
	// closes the tunnels whose host identity is now locked.
	Changes <-chan struct{}
}

// Tunnels holds the reverse tunnels that Kubernetes Services behind NAT keep open to this
// proxy, keyed by the clusters they serve, and accepts new ones on tunnel.Path.
type Tunnels struct {
	cfg TunnelConfig

	stop     chan struct{} // closed by CloseAll
	stopOnce sync.Once

	mu        sync.Mutex
	byCluster map[string][]*openTunnel // newest last
}

// openTunnel is one open tunnel: the proxy's end of it, and the clusters it carries.
type openTunnel struct {
	id       *tlsca.Identity
	addr     string
	client   *tunnel.Client
	clusters map[string]*kube.Cluster
}

// NewTunnels returns an empty tunnel registry.
func NewTunnels(cfg TunnelConfig) *Tunnels {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Context == nil {
		cfg.Context = context.Background()
	}
	ts := &Tunnels{cfg: cfg, byCluster: map[string][]*openTunnel{}, stop: make(chan struct{})}
	if cfg.Changes != nil {
		go ts.enforceLocks()
	}
	return ts
}

// CloseAll closes every tunnel and refuses new ones: the process is stopping. The
// tunnels' handlers own hijacked connections, which http.Server.Close does not reach.
func (ts *Tunnels) CloseAll() { ts.stopOnce.Do(func() { close(ts.stop) }) }

// enforceLocks closes the tunnels of host identities that have been locked.
func (ts *Tunnels) enforceLocks() {
	for {
		select {
		case <-ts.cfg.Context.Done():
			return
		case <-ts.cfg.Changes:
		}
		ts.mu.Lock()
		var open []*openTunnel
		for _, list := range ts.byCluster {
			open = append(open, list...)
		}
		ts.mu.Unlock()
		for _, t := range open {
			if err := ts.cfg.Auth.CheckLock(t.id); err != nil {
				ts.cfg.Logger.Warn("closing a reverse tunnel: its host identity is locked", "service", t.id.Username, "error", err)
				_ = t.client.Close()
			}
		}
	}
}

// Forwarder returns the forwarder of a tunnelled cluster: the newest open tunnel of the
// service that registered it.
func (ts *Tunnels) Forwarder(name string) (*kube.Cluster, bool) {
	ts.mu.Lock()
	list := slices.Clone(ts.byCluster[name])
	ts.mu.Unlock()
	reg, registered := ts.cfg.Registered(name)
	if !registered {
		return nil, false
	}
	for i := len(list) - 1; i >= 0; i-- {
		t := list[i]
		if t.client.Err() != nil || t.id.Username != reg.Spec.Service {
			continue
		}
		return t.clusters[name], true
	}
	return nil, false
}

// Connected lists the clusters with an open tunnel.
func (ts *Tunnels) Connected() []string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	var out []string
	for name, list := range ts.byCluster {
		if len(list) > 0 {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// ServeHTTP accepts a tunnel: the caller must present a valid host certificate with
// system role kube and ask, in HTTP/1.1, to upgrade to tunnel.Protocol. The
// handler then owns the connection until the tunnel ends.
func (ts *Tunnels) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	select {
	case <-ts.stop:
		writeStatus(w, http.StatusServiceUnavailable, "the proxy is stopping")
		return
	default:
	}
	if err := tunnel.CheckRequest(r); err != nil {
		writeError(w, err)
		return
	}
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		writeStatus(w, http.StatusUnauthorized, "a reverse tunnel needs the Kubernetes Service's host certificate")
		return
	}
	id, err := ts.cfg.Auth.VerifyClientCert(r.TLS.PeerCertificates[0])
	if err != nil {
		writeStatus(w, http.StatusUnauthorized, err.Error())
		return
	}
	if id.SystemRole != SystemRoleKube {
		ts.cfg.Logger.Warn("refused a reverse tunnel from a certificate without system role kube", "user", id.Username, "system_role", id.SystemRole, "addr", r.RemoteAddr)
		writeStatus(w, http.StatusForbidden, "only a Kubernetes Service's host certificate (system role kube) may open a reverse tunnel")
		return
	}
	if err := ts.cfg.Auth.CheckLock(id); err != nil {
		writeStatus(w, http.StatusForbidden, err.Error())
		return
	}
	names, err := tunnel.Clusters(r)
	if err != nil {
		writeError(w, err)
		return
	}
	nc, err := tunnel.Accept(w)
	if err != nil {
		writeStatus(w, http.StatusInternalServerError, "cannot take over the connection for the tunnel: "+err.Error())
		return
	}
	t, err := ts.open(nc, id, r.RemoteAddr, names)
	if err != nil {
		ts.cfg.Logger.Warn("reverse tunnel failed to start", "service", id.Username, "addr", r.RemoteAddr, "error", err)
		_ = nc.Close()
		return
	}
	ts.add(t)
	ts.cfg.Logger.Info("reverse tunnel connected", "service", id.Username, "addr", r.RemoteAddr, "clusters", names)
	select {
	case <-t.client.Done():
	case <-ts.cfg.Context.Done():
	case <-ts.stop:
	}
	ts.remove(t)
	_ = t.client.Close()
	ts.cfg.Logger.Info("reverse tunnel closed", "service", id.Username, "addr", r.RemoteAddr, "clusters", names)
}

// open starts the proxy's end on a switched connection.
func (ts *Tunnels) open(nc net.Conn, id *tlsca.Identity, addr string, names []string) (*openTunnel, error) {
	ctx, cancel := context.WithTimeout(ts.cfg.Context, 30*time.Second)
	defer cancel()
	c, err := tunnel.NewClient(ctx, nc)
	if err != nil {
		return nil, err
	}
	t := &openTunnel{id: id, addr: addr, client: c, clusters: map[string]*kube.Cluster{}}
	for _, name := range names {
		t.clusters[name] = &kube.Cluster{
			Name:             name,
			Server:           &url.URL{Scheme: "http", Host: "tunnel", Path: tunnel.Prefix + name},
			Transport:        c,
			UpgradeTransport: c.Upgrades(),
		}
	}
	return t, nil
}

func (ts *Tunnels) add(t *openTunnel) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for name := range t.clusters {
		ts.byCluster[name] = append(ts.byCluster[name], t)
	}
}

func (ts *Tunnels) remove(t *openTunnel) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for name := range t.clusters {
		list := slices.DeleteFunc(ts.byCluster[name], func(o *openTunnel) bool { return o == t })
		if len(list) == 0 {
			delete(ts.byCluster, name)
		} else {
			ts.byCluster[name] = list
		}
	}
}

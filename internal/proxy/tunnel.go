package proxy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/kube"
	"github.com/keyport/keyport/internal/tlsca"
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
// proxy, keyed by the clusters they serve, and accepts new ones on kube.TunnelPath.
type Tunnels struct {
	cfg TunnelConfig

	stop     chan struct{} // closed by CloseAll
	stopOnce sync.Once

	mu        sync.Mutex
	byCluster map[string][]*tunnel // newest last
}

// tunnel is one open tunnel: an HTTP/2 client connection over a connection the
// Kubernetes Service opened.
type tunnel struct {
	id       *tlsca.Identity
	addr     string
	cc       *http.ClientConn
	clusters map[string]*kube.Cluster
	done     chan struct{}
	once     sync.Once
}

// NewTunnels returns an empty tunnel registry.
func NewTunnels(cfg TunnelConfig) *Tunnels {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Context == nil {
		cfg.Context = context.Background()
	}
	ts := &Tunnels{cfg: cfg, byCluster: map[string][]*tunnel{}, stop: make(chan struct{})}
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
		var open []*tunnel
		for _, list := range ts.byCluster {
			open = append(open, list...)
		}
		ts.mu.Unlock()
		for _, t := range open {
			if err := ts.cfg.Auth.CheckLock(t.id); err != nil {
				ts.cfg.Logger.Warn("closing a reverse tunnel: its host identity is locked", "service", t.id.Username, "error", err)
				_ = t.cc.Close()
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
		if t.cc.Err() != nil || t.id.Username != reg.Spec.Service {
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
// system role kube and ask, in HTTP/1.1, to upgrade to kube.TunnelProtocol. The
// handler then owns the connection until the tunnel ends.
func (ts *Tunnels) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	select {
	case <-ts.stop:
		writeStatus(w, http.StatusServiceUnavailable, "the proxy is stopping")
		return
	default:
	}
	if r.Method != http.MethodGet || !strings.EqualFold(r.Header.Get("Upgrade"), kube.TunnelProtocol) {
		writeStatus(w, http.StatusBadRequest, "a reverse tunnel is opened with GET "+kube.TunnelPath+" and Upgrade: "+kube.TunnelProtocol)
		return
	}
	if r.ProtoMajor != 1 {
		writeStatus(w, http.StatusBadRequest, "a reverse tunnel needs HTTP/1.1 (offer ALPN http/1.1 only)")
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
	names, err := tunnelClusterNames(r.Header.Get(kube.HeaderTunnelClusters))
	if err != nil {
		writeError(w, err)
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		writeStatus(w, http.StatusInternalServerError, "cannot take over the connection for the tunnel: "+err.Error())
		return
	}
	_ = conn.SetDeadline(time.Time{})
	if _, err := brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + kube.TunnelProtocol + "\r\n\r\n"); err != nil {
		_ = conn.Close()
		return
	}
	if err := brw.Flush(); err != nil {
		_ = conn.Close()
		return
	}
	nc := net.Conn(conn)
	if brw.Reader.Buffered() > 0 {
		nc = &readerConn{Conn: conn, r: io.MultiReader(brw.Reader, conn)}
	}
	t, err := ts.open(nc, id, r.RemoteAddr, names)
	if err != nil {
		ts.cfg.Logger.Warn("reverse tunnel failed to start", "service", id.Username, "addr", r.RemoteAddr, "error", err)
		_ = conn.Close()
		return
	}
	ts.add(t)
	ts.cfg.Logger.Info("reverse tunnel connected", "service", id.Username, "addr", r.RemoteAddr, "clusters", names)
	select {
	case <-t.done:
	case <-ts.cfg.Context.Done():
	case <-ts.stop:
	}
	ts.remove(t)
	_ = t.cc.Close()
	ts.cfg.Logger.Info("reverse tunnel closed", "service", id.Username, "addr", r.RemoteAddr, "clusters", names)
}

// open starts the HTTP/2 client side on a switched connection.
func (ts *Tunnels) open(nc net.Conn, id *tlsca.Identity, addr string, names []string) (*tunnel, error) {
	var dialed bool
	tr := &http.Transport{
		Protocols: kube.TunnelProtocols(),
		HTTP2:     kube.TunnelHTTP2(),
		DialContext: func(context.Context, string, string) (net.Conn, error) {
			if dialed {
				return nil, errors.New("the tunnel connection is gone")
			}
			dialed = true
			return nc, nil
		},
	}
	ctx, cancel := context.WithTimeout(ts.cfg.Context, 30*time.Second)
	defer cancel()
	cc, err := tr.NewClientConn(ctx, "http", "tunnel:80")
	if err != nil {
		return nil, err
	}
	t := &tunnel{id: id, addr: addr, cc: cc, clusters: map[string]*kube.Cluster{}, done: make(chan struct{})}
	cc.SetStateHook(func(cc *http.ClientConn) {
		if cc.Err() != nil {
			t.once.Do(func() { close(t.done) })
		}
	})
	if cc.Err() != nil {
		t.once.Do(func() { close(t.done) })
	}
	for _, name := range names {
		t.clusters[name] = &kube.Cluster{
			Name:             name,
			Server:           &url.URL{Scheme: "http", Host: "tunnel", Path: kube.TunnelPrefix + name},
			Transport:        t,
			UpgradeTransport: tunnelUpgrade{t},
		}
	}
	return t, nil
}

func (ts *Tunnels) add(t *tunnel) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for name := range t.clusters {
		ts.byCluster[name] = append(ts.byCluster[name], t)
	}
}

func (ts *Tunnels) remove(t *tunnel) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for name := range t.clusters {
		list := slices.DeleteFunc(ts.byCluster[name], func(o *tunnel) bool { return o == t })
		if len(list) == 0 {
			delete(ts.byCluster, name)
		} else {
			ts.byCluster[name] = list
		}
	}
}

// tunnelClusterNames parses the clusters a tunnel announces.
func tunnelClusterNames(h string) ([]string, error) {
	var out []string
	for _, n := range strings.Split(h, ",") {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		if len(n) > 253 || strings.ContainsAny(n, "/?#%\\ ") || n == "." || n == ".." {
			return nil, errs.BadParameterf("%q is not a kube cluster name", n)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return nil, errs.BadParameterf("a reverse tunnel must name its kube clusters in %s", kube.HeaderTunnelClusters)
	}
	return out, nil
}

// RoundTrip sends an ordinary request as an HTTP/2 stream of the tunnel.
func (t *tunnel) RoundTrip(r *http.Request) (*http.Response, error) {
	return t.cc.RoundTrip(r)
}

// tunnelUpgrade sends a connection upgrade through the tunnel: HTTP/2 cannot carry
// Upgrade, so the request travels as a stream whose request body is the client's side of
// the upgraded connection and whose response body is the API server's side.
type tunnelUpgrade struct{ t *tunnel }

func (u tunnelUpgrade) RoundTrip(r *http.Request) (*http.Response, error) {
	upgrade := r.Header.Get("Upgrade")
	out := r.Clone(r.Context())
	for _, h := range []string{"Connection", "Proxy-Connection", "Keep-Alive", "Te", "Transfer-Encoding", "Upgrade"} {
		out.Header.Del(h)
	}
	out.Header.Set(kube.HeaderUpgrade, upgrade)
	pr, pw := io.Pipe()
	out.Body = pr
	out.ContentLength = -1
	resp, err := u.t.cc.RoundTrip(out)
	if err != nil {
		_ = pw.CloseWithError(err)
		return nil, err
	}
	if resp.Header.Get(kube.HeaderUpgradeStatus) != "101" {
		// The API server (or the service) refused the upgrade: an ordinary response.
		_ = pw.Close()
		return resp, nil
	}
	resUpgrade := resp.Header.Get(kube.HeaderUpgrade)
	resp.Header.Del(kube.HeaderUpgradeStatus)
	resp.Header.Del(kube.HeaderUpgrade)
	resp.Header.Set("Connection", "Upgrade")
	resp.Header.Set("Upgrade", resUpgrade)
	// Present it as the HTTP/1.1 101 it was, with no body length: ReverseProxy writes
	// it to the client as is, and an unknown length would add "Connection: close".
	resp.StatusCode = http.StatusSwitchingProtocols
	resp.Status = "101 Switching Protocols"
	resp.Proto, resp.ProtoMajor, resp.ProtoMinor = "HTTP/1.1", 1, 1
	resp.ContentLength = 0
	resp.Header.Del("Content-Length")
	resp.Body = &streamConn{r: resp.Body, w: pw}
	return resp, nil
}

// streamConn is an upgraded connection carried by one HTTP/2 stream.
type streamConn struct {
	r io.ReadCloser
	w *io.PipeWriter
}

func (s *streamConn) Read(p []byte) (int, error)  { return s.r.Read(p) }
func (s *streamConn) Write(p []byte) (int, error) { return s.w.Write(p) }

// CloseWrite ends the request body: the client finished sending, and the API server
// still gets to answer.
func (s *streamConn) CloseWrite() error { return s.w.Close() }

func (s *streamConn) Close() error {
	_ = s.w.CloseWithError(io.ErrClosedPipe)
	return s.r.Close()
}

// readerConn reads what the HTTP/1.1 server had buffered before the connection itself.
type readerConn struct {
	net.Conn
	r io.Reader
}

func (c *readerConn) Read(p []byte) (int, error) { return c.r.Read(p) }

package kube

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/keyport/keyport/internal/bufpool"
	"github.com/keyport/keyport/internal/clock"
	"github.com/keyport/keyport/internal/kubestatus"
)

// The reverse tunnel. A Kubernetes Service that reaches the proxy only outbound opens a
// TLS connection to the proxy's one port with its host certificate and asks, in
// HTTP/1.1, to switch it to TunnelProtocol. After the proxy's 101 the roles turn around:
// the proxy is the HTTP/2 client and the service the HTTP/2 server (prior knowledge,
// inside the TLS the service opened). Ordinary requests are HTTP/2 streams. Connection
// upgrades (exec, attach, port-forward over SPDY or WebSocket) cannot be HTTP/2
// requests, so the proxy sends them as a streaming request that carries the upgrade in
// HeaderUpgrade; the service performs the upgrade against the API server and answers 200
// with HeaderUpgradeStatus 101, and from then on the stream's two bodies are the two
// directions of the upgraded connection.
const (
	// TunnelPath is where the proxy accepts tunnels.
	TunnelPath = "/v1/tunnel"
	// TunnelProtocol is the Upgrade token of a tunnel.
	TunnelProtocol = "keyport-tunnel"
	// HeaderTunnelClusters lists, comma-separated, the kube clusters a tunnel serves.
	HeaderTunnelClusters = "Keyport-Kube-Clusters"
	// HeaderUpgrade carries a request's Upgrade value through the tunnel, where HTTP/2
	// forbids the Upgrade and Connection headers.
	HeaderUpgrade = "Keyport-Upgrade"
	// HeaderUpgradeStatus is 101 on a tunnelled response whose upgrade succeeded.
	HeaderUpgradeStatus = "Keyport-Upgrade-Status"
	// TunnelPrefix starts the path of every tunnelled request: /v1/kube/<cluster>/<API path>.
	TunnelPrefix = "/v1/kube/"
)

// TunnelHTTP2 is the HTTP/2 tuning both ends of a tunnel use: pings keep NAT mappings
// alive and find a dead peer within about 45 s, and one tunnel carries many watches.
func TunnelHTTP2() *http.HTTP2Config {
	return &http.HTTP2Config{MaxConcurrentStreams: 10000, SendPingTimeout: 30 * time.Second, PingTimeout: 15 * time.Second}
}

// TunnelProtocols is HTTP/2 with prior knowledge: the tunnel's TLS is already set up.
func TunnelProtocols() *http.Protocols {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	return p
}

// TunnelConfig says where a Kubernetes Service opens its tunnel.
type TunnelConfig struct {
	// ProxyAddr is the proxy's web address (host:port).
	ProxyAddr string
	// TLS returns the client TLS config for each new connection, so that a renewed
	// host certificate is used from the next reconnection on.
	TLS    func() (*tls.Config, error)
	Logger *slog.Logger
	Clock  clock.Clock
	// OnState, when set, is told when the tunnel comes up (true) and goes down (false).
	OnState func(up bool)
}

// Backoff between reconnections.
const (
	tunnelMinBackoff = 500 * time.Millisecond
	tunnelMaxBackoff = 30 * time.Second
	// tunnelStable is how long a tunnel must have lasted for the backoff to start over.
	tunnelStable = 30 * time.Second
)

// RunTunnel keeps a reverse tunnel to the proxy open until ctx ends, reconnecting with
// exponential backoff and jitter when it drops or cannot be opened.
func (s *Service) RunTunnel(ctx context.Context, cfg TunnelConfig) error {
	if cfg.Logger == nil {
		cfg.Logger = s.cfg.Logger
	}
	if cfg.Clock == nil {
		cfg.Clock = s.cfg.Clock
	}
	backoff := tunnelMinBackoff
	for {
		start := cfg.Clock.Now()
		err := s.serveTunnel(ctx, cfg)
		if ctx.Err() != nil {
			return nil
		}
		if cfg.Clock.Now().Sub(start) >= tunnelStable {
			backoff = tunnelMinBackoff
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		cfg.Logger.Warn("reverse tunnel to the proxy is down; reconnecting", "proxy", cfg.ProxyAddr, "error", err, "in", wait.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return nil
		case <-cfg.Clock.After(wait):
		}
		backoff = min(backoff*2, tunnelMaxBackoff)
	}
}

// serveTunnel opens one tunnel and serves it until it ends.
func (s *Service) serveTunnel(ctx context.Context, cfg TunnelConfig) error {
	conn, br, err := s.openTunnel(ctx, cfg)
	if err != nil {
		return err
	}
	c := &bufferedConn{Conn: conn, r: br}
	l := newOneConnListener(c)
	srv := &http.Server{
		Handler:   s.TunnelHandler(),
		Protocols: TunnelProtocols(),
		HTTP2:     TunnelHTTP2(),
		ErrorLog:  slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug),
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateClosed || st == http.StateHijacked {
				_ = l.Close()
			}
		},
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-ctx.Done():
		case <-stop:
		}
		_ = srv.Close()
		_ = l.Close()
	}()
	cfg.Logger.Info("reverse tunnel to the proxy is up", "proxy", cfg.ProxyAddr, "clusters", s.names())
	if cfg.OnState != nil {
		cfg.OnState(true)
		defer cfg.OnState(false)
	}
	err = srv.Serve(l)
	_ = srv.Close()
	if errors.Is(err, net.ErrClosed) || errors.Is(err, http.ErrServerClosed) {
		err = errors.New("the connection closed")
	}
	return err
}

// openTunnel dials the proxy and asks it to switch the connection to the tunnel.
func (s *Service) openTunnel(ctx context.Context, cfg TunnelConfig) (net.Conn, *bufio.Reader, error) {
	tc, err := cfg.TLS()
	if err != nil {
		return nil, nil, err
	}
	tc = tc.Clone()
	tc.NextProtos = []string{"http/1.1"}
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}, Config: tc}
	nc, err := d.DialContext(ctx, "tcp", cfg.ProxyAddr)
	if err != nil {
		return nil, nil, fmt.Errorf("connecting to the proxy at %s: %w", cfg.ProxyAddr, err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = nc.Close()
		}
	}()
	_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	req, err := http.NewRequest(http.MethodGet, "https://"+cfg.ProxyAddr+TunnelPath, nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", TunnelProtocol)
	req.Header.Set(HeaderTunnelClusters, strings.Join(s.names(), ","))
	if err := req.Write(nc); err != nil {
		return nil, nil, fmt.Errorf("asking the proxy at %s for a tunnel: %w", cfg.ProxyAddr, err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the proxy's answer to the tunnel request: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		defer resp.Body.Close()
		return nil, nil, fmt.Errorf("the proxy at %s refused the tunnel: %s", cfg.ProxyAddr, statusMessage(resp))
	}
	if !strings.EqualFold(resp.Header.Get("Upgrade"), TunnelProtocol) {
		return nil, nil, fmt.Errorf("the proxy at %s switched to %q instead of %q", cfg.ProxyAddr, resp.Header.Get("Upgrade"), TunnelProtocol)
	}
	_ = nc.SetDeadline(time.Time{})
	ok = true
	return nc, br, nil
}

// statusMessage reads the message of a refusal: a Kubernetes Status, or the plain body.
func statusMessage(resp *http.Response) string {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	var st metav1.Status
	if json.Unmarshal(data, &st) == nil && st.Message != "" {
		return fmt.Sprintf("%d %s", resp.StatusCode, st.Message)
	}
	if msg := strings.TrimSpace(string(data)); msg != "" {
		return fmt.Sprintf("%d %s", resp.StatusCode, msg)
	}
	return resp.Status
}

func (s *Service) names() []string {
	var out []string
	for _, c := range s.Clusters() {
		out = append(out, c.GetName())
	}
	return out
}

type tunnelKey int

const (
	keyTunnelCluster tunnelKey = iota
	keyTunnelPath
)

// TunnelHandler serves what the proxy sends through the tunnel: requests the proxy has
// already authenticated and authorised, carrying Keyport's impersonation headers. It is
// served only on the tunnel this service opened, never on a listener. A request without
// Impersonate-User is refused, so that nothing reaches the API server with the
// service's own rights.
func (s *Service) TunnelHandler() http.Handler {
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			c := pr.In.Context().Value(keyTunnelCluster).(*Cluster)
			pr.SetURL(c.Server)
			pr.Out.URL.Path = strings.TrimSuffix(c.Server.Path, "/") + pr.In.Context().Value(keyTunnelPath).(string)
			pr.Out.URL.RawPath = ""
			pr.Out.Host = c.Server.Host
		},
		Transport: roundTripperFunc(func(r *http.Request) (*http.Response, error) {
			return r.Context().Value(keyTunnelCluster).(*Cluster).Transport.RoundTrip(r)
		}),
		FlushInterval: -1,
		BufferPool:    tunnelBuffers,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				return
			}
			c := r.Context().Value(keyTunnelCluster).(*Cluster)
			s.cfg.Logger.Warn("kube cluster unreachable", "cluster", c.Name, "error", err)
			writeStatus(w, http.StatusBadGateway, "kube cluster \""+c.Name+"\" is unreachable from its Kubernetes Service: "+err.Error())
		},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		after, ok := strings.CutPrefix(r.URL.Path, TunnelPrefix)
		name, rest, _ := strings.Cut(after, "/")
		if !ok || name == "" {
			writeStatus(w, http.StatusNotFound, "not a Kubernetes path")
			return
		}
		c, ok := s.Cluster(name)
		if !ok {
			writeStatus(w, http.StatusNotFound, "kube cluster \""+name+"\" is not served by this Kubernetes Service")
			return
		}
		if users := r.Header.Values("Impersonate-User"); len(users) != 1 || users[0] == "" {
			writeStatus(w, http.StatusForbidden, "the Kubernetes Service forwards only requests the proxy has authorised (with one Impersonate-User)")
			return
		}
		// The proxy already removed the client's; the API server must see only the
		// service's own credentials, which client-go would not set over an existing one.
		r.Header.Del("Authorization")
		ctx := context.WithValue(context.WithValue(r.Context(), keyTunnelCluster, c), keyTunnelPath, "/"+rest)
		if up := r.Header.Get(HeaderUpgrade); up != "" {
			s.serveUpgrade(w, r.WithContext(ctx), c, "/"+rest, up)
			return
		}
		rp.ServeHTTP(w, r.WithContext(ctx))
	})
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// hopHeaders are connection-specific: never copied between the HTTP/2 tunnel and an
// HTTP/1.1 connection to the API server.
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// serveUpgrade performs a connection upgrade against the API server and then carries
// the upgraded connection's bytes on this stream: the request body to the API server,
// the API server's bytes back as the response body.
func (s *Service) serveUpgrade(w http.ResponseWriter, r *http.Request, c *Cluster, path, upgrade string) {
	ctx := r.Context()
	u := *c.Server
	u.Path = strings.TrimSuffix(c.Server.Path, "/") + path
	u.RawPath = ""
	u.RawQuery = r.URL.RawQuery
	out, err := http.NewRequestWithContext(ctx, r.Method, u.String(), nil)
	if err != nil {
		writeStatus(w, http.StatusBadRequest, err.Error())
		return
	}
	out.Header = r.Header.Clone()
	for _, h := range hopHeaders {
		out.Header.Del(h)
	}
	out.Header.Del(HeaderUpgrade)
	out.Header.Set("Connection", "Upgrade")
	out.Header.Set("Upgrade", upgrade)
	resp, err := c.UpgradeTransport.RoundTrip(out)
	if err != nil {
		if ctx.Err() == nil {
			writeStatus(w, http.StatusBadGateway, "kube cluster \""+c.Name+"\" is unreachable from its Kubernetes Service: "+err.Error())
		}
		return
	}
	defer resp.Body.Close()
	h := w.Header()
	for k, v := range resp.Header {
		h[k] = v
	}
	for _, k := range hopHeaders {
		h.Del(k)
	}
	fl := http.NewResponseController(w)
	if resp.StatusCode != http.StatusSwitchingProtocols {
		// Refused (RBAC, bad request): an ordinary response.
		w.WriteHeader(resp.StatusCode)
		_, _ = copyFlush(w, fl, resp.Body)
		return
	}
	backend, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		writeStatus(w, http.StatusBadGateway, "the API server switched protocols without a writable connection")
		return
	}
	h.Set(HeaderUpgradeStatus, "101")
	h.Set(HeaderUpgrade, resp.Header.Get("Upgrade"))
	w.WriteHeader(http.StatusOK)
	if err := fl.Flush(); err != nil {
		return
	}
	var once sync.Once
	closeBackend := func() { once.Do(func() { _ = backend.Close() }) }
	defer closeBackend()
	go func() {
		// The proxy's side of the connection.
		_, err := io.Copy(backend, r.Body)
		if err == nil {
			// The client finished sending: pass the half-close on where possible.
			if cw, ok := backend.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
				return
			}
		}
		closeBackend()
	}()
	go func() {
		<-ctx.Done()
		closeBackend()
	}()
	_, _ = copyFlush(w, fl, backend)
}

// copyFlush copies src to w, flushing after every read so that streams are not held.
func copyFlush(w io.Writer, fl *http.ResponseController, src io.Reader) (int64, error) {
	buf := make([]byte, 32*1024)
	var n int64
	for {
		nr, rerr := src.Read(buf)
		if nr > 0 {
			nw, werr := w.Write(buf[:nr])
			n += int64(nw)
			if werr != nil {
				return n, werr
			}
			if err := fl.Flush(); err != nil {
				return n, err
			}
		}
		if rerr != nil {
			if rerr == io.EOF {
				return n, nil
			}
			return n, rerr
		}
	}
}

// writeStatus answers with a Kubernetes Status object.
func writeStatus(w http.ResponseWriter, code int, msg string) { kubestatus.Write(w, code, msg) }

// bufferedConn reads first what the HTTP/1.1 exchange read ahead: the proxy may send its
// HTTP/2 preface right behind the 101.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// oneConnListener hands one connection to an http.Server, then blocks until closed.
type oneConnListener struct {
	conn   chan net.Conn
	addr   net.Addr
	closed chan struct{}
	once   sync.Once
}

func newOneConnListener(c net.Conn) *oneConnListener {
	l := &oneConnListener{conn: make(chan net.Conn, 1), addr: c.LocalAddr(), closed: make(chan struct{})}
	l.conn <- c
	return l
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conn:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *oneConnListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *oneConnListener) Addr() net.Addr { return l.addr }

// tunnelBuffers are the tunnel forwarder's copy buffers, pooled instead of 32 KiB
// allocated per request, and 8 KiB because a watch holds its buffer while it is open.
var tunnelBuffers = bufpool.New(8 << 10)

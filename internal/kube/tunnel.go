package kube

import (
	"context"
	"crypto/tls"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httputil"
	"strings"
	"time"

	"github.com/keyport/keyport/internal/bufpool"
	"github.com/keyport/keyport/internal/clock"
	"github.com/keyport/keyport/internal/kubestatus"
	"github.com/keyport/keyport/internal/tunnel"
)

// The Kubernetes Service's side of the reverse tunnel (package tunnel has the protocol):
// keeping a tunnel open to the proxy, and what it forwards of the requests the proxy
// sends through it.

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
	tc, err := cfg.TLS()
	if err != nil {
		return err
	}
	conn, err := tunnel.Dial(ctx, cfg.ProxyAddr, tc, s.names())
	if err != nil {
		return err
	}
	cfg.Logger.Info("reverse tunnel to the proxy is up", "proxy", cfg.ProxyAddr, "clusters", s.names())
	if cfg.OnState != nil {
		cfg.OnState(true)
		defer cfg.OnState(false)
	}
	return tunnel.Serve(ctx, conn, s.TunnelHandler(), cfg.Logger)
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
		after, ok := strings.CutPrefix(r.URL.Path, tunnel.Prefix)
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
		if r.Header.Get(tunnel.HeaderUpgrade) != "" {
			target := *c.Server
			target.Path = strings.TrimSuffix(c.Server.Path, "/") + "/" + rest
			target.RawPath, target.RawQuery = "", r.URL.RawQuery
			if err := tunnel.ServeUpgrade(w, r.WithContext(ctx), c.UpgradeTransport, &target); err != nil {
				writeStatus(w, http.StatusBadGateway, "kube cluster \""+c.Name+"\" is unreachable from its Kubernetes Service: "+err.Error())
			}
			return
		}
		rp.ServeHTTP(w, r.WithContext(ctx))
	})
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// writeStatus answers with a Kubernetes Status object.
func writeStatus(w http.ResponseWriter, code int, msg string) { kubestatus.Write(w, code, msg) }

// tunnelBuffers are the tunnel forwarder's copy buffers, pooled instead of 32 KiB
// allocated per request, and 8 KiB because a watch holds its buffer while it is open.
var tunnelBuffers = bufpool.New(8 << 10)

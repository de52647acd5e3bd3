package service

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
	"github.com/keyport/keyport/internal/kube"
)

// proxyRefresh is how often an agent asks which proxies are alive.
const proxyRefresh = 5 * time.Second

// runTunnels keeps a reverse tunnel to every live proxy: to bootstrap (keyport.
// proxy_server, or the proxy the Auth Service names) always, and to each proxy the Auth
// API lists, refreshed every proxyRefresh; a listed proxy that stops heartbeating loses
// its tunnel. Any proxy can so reach this service's clusters, and when one dies the
// others already hold tunnels. onUp runs when a first tunnel is up.
func (a *agent) runTunnels(ctx context.Context, bootstrap string, onUp func()) error {
	type running struct {
		cancel context.CancelFunc
		up     atomic.Bool
	}
	var (
		wg      sync.WaitGroup
		n       atomic.Int64
		tunnels = map[string]*running{}
	)
	set := func(r *running, up bool) {
		if r.up.Swap(up) == up {
			return
		}
		delta := int64(-1)
		if up {
			delta = 1
		}
		v := n.Add(delta)
		a.up.Store(v > 0)
		a.tunnel.Set(float64(v))
		if up {
			onUp()
		}
	}
	start := func(addr string) {
		tctx, cancel := context.WithCancel(ctx)
		r := &running{cancel: cancel}
		tunnels[addr] = r
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer set(r, false)
			_ = a.kube.RunTunnel(tctx, kube.TunnelConfig{ProxyAddr: addr, TLS: a.tunnelTLS, Logger: a.log.With("component", "tunnel", "proxy", addr),
				Clock: a.clock, OnState: func(up bool) { set(r, up) }})
		}()
	}
	defer wg.Wait()
	start(bootstrap)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-a.clock.After(proxyRefresh):
		}
		addrs, err := a.listProxies(ctx)
		if err != nil || len(addrs) == 0 {
			continue // keep the tunnels there are
		}
		for _, addr := range addrs {
			if tunnels[addr] == nil {
				a.log.Info("opening a tunnel to another proxy", "proxy", addr)
				start(addr)
			}
		}
		for addr, r := range tunnels {
			// The tunnel to keyport.proxy_server stays: it may be a load balancer's
			// address, which no proxy lists; a second tunnel to one proxy is harmless
			// (a proxy uses the newest open tunnel of a cluster).
			if addr != bootstrap && !slices.Contains(addrs, addr) {
				a.log.Info("closing the tunnel to a proxy that is gone", "proxy", addr)
				r.cancel()
				delete(tunnels, addr)
			}
		}
	}
}

// listProxies asks the Auth API for the live proxies' tunnel addresses. When the proxy
// the client uses does not answer, the next call goes to another live one.
func (a *agent) listProxies(ctx context.Context) ([]string, error) {
	clt, err := a.client()
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	resp, err := clt.ListProxies(cctx, &pb.ListProxiesRequest{})
	if err != nil {
		a.failover()
		return nil, err
	}
	var addrs []string
	for _, p := range resp.GetProxies() {
		addrs = append(addrs, p.GetAddr())
	}
	a.mu.Lock()
	a.proxies = addrs
	a.mu.Unlock()
	return addrs, nil
}

// apiAddr is where the Auth API client goes: keyport.proxy_server (or auth_server)
// until a failover moved it to another live proxy. Callers hold a.mu.
func (a *agent) apiAddr() string {
	if a.api != "" {
		return a.api
	}
	return a.authAddr
}

// failover moves the Auth API client to the next live proxy it knows, so that
// heartbeats and renewals go on when the proxy it used dies.
func (a *agent) failover() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.proxies) == 0 {
		return
	}
	cur := a.apiAddr()
	next := a.proxies[0]
	if i := slices.Index(a.proxies, cur); i >= 0 {
		next = a.proxies[(i+1)%len(a.proxies)]
	}
	if next == cur {
		return
	}
	a.log.Warn("the Auth API does not answer through this proxy; using another", "from", cur, "to", next)
	a.api = next
	if a.clt != nil {
		_ = a.clt.Close()
		a.clt = nil
	}
}

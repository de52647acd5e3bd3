package service

import (
	"context"
	"net"
	"time"

	"github.com/keyport/keyport/internal/auth"
)

// With several keyport processes on one backend, each proxy heartbeats where Kubernetes
// Services can reach it, and agents keep a reverse tunnel to every live proxy (see
// agent.go), so that whichever proxy a request reaches holds a tunnel to its cluster.
const (
	proxyHeartbeatEvery = 3 * time.Second
	proxyHeartbeatTTL   = 10 * time.Second
)

// tunnelAddr is the address agents dial for a tunnel to this proxy: its web listener, or
// the node name with the listener's port when it listens on every address.
func tunnelAddr(listen, nodeName string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		return net.JoinHostPort(nodeName, port)
	}
	return listen
}

// runProxyHeartbeats records this proxy and the clusters its tunnels carry until ctx
// ends.
func (p *Process) runProxyHeartbeats(ctx context.Context, addr string) error {
	for {
		hb := auth.ProxyInfo{Name: p.cfg.Keyport.NodeName, Addr: addr, Clusters: p.tunnels.Connected()}
		if err := p.Auth.HeartbeatProxy(ctx, hb, proxyHeartbeatTTL); err != nil && ctx.Err() == nil {
			p.log.Warn("proxy heartbeat failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-p.opts.Clock.After(proxyHeartbeatEvery):
		}
	}
}

package auth

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/keyport/keyport/internal/backend"
	"github.com/keyport/keyport/internal/errs"
)

// proxyPrefix holds the proxies' heartbeats: with several keyport processes on one
// backend, each proxy says where Kubernetes Services can open a reverse tunnel to it,
// and which clusters its tunnels carry now.
const proxyPrefix = "/proxies/"

// ProxyInfo is one live proxy.
type ProxyInfo struct {
	Name string `json:"name"`
	// Addr is where a Kubernetes Service dials this proxy (its own web port, not a
	// load balancer's).
	Addr string `json:"addr"`
	// Clusters are the kube clusters whose tunnels end on this proxy.
	Clusters []string  `json:"clusters,omitempty"`
	Expires  time.Time `json:"expires"`
}

// HeartbeatProxy records a live proxy until ttl passes.
func (s *Server) HeartbeatProxy(ctx context.Context, p ProxyInfo, ttl time.Duration) error {
	if p.Name == "" || p.Addr == "" {
		return errs.BadParameterf("a proxy heartbeat needs a name and an address")
	}
	p.Expires = s.cfg.Clock.Now().Add(ttl).UTC()
	data, err := json.Marshal(p)
	if err != nil {
		return err
	}
	_, err = s.cfg.Backend.Put(ctx, backend.Item{Key: []byte(proxyPrefix + p.Name), Value: data, Expires: p.Expires})
	return err
}

// Proxies lists the live proxies, by name.
func (s *Server) Proxies(ctx context.Context) ([]ProxyInfo, error) {
	items, err := s.cfg.Backend.GetRange(ctx, []byte(proxyPrefix), 0)
	if err != nil {
		return nil, err
	}
	out := make([]ProxyInfo, 0, len(items))
	for _, it := range items {
		var p ProxyInfo
		if err := json.Unmarshal(it.Value, &p); err != nil {
			return nil, fmt.Errorf("decoding proxy heartbeat %s: %w", it.Key, err)
		}
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Package auth is the Auth Service: it owns the cluster's certificate authorities, the
// stored resources (roles, users, bots, join tokens, locks, kube cluster heartbeats, bot
// instances), certificate issuance for users, bots and Keyport's own services, bot joining
// and renewal with generation counters, the authorisation of every API call by the
// caller's roles, and the audit of all of it. Package authapi is its edge: the gRPC Auth API, which
// authorises every call before it reaches a method here.
package auth

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/keyport/keyport/internal/audit"
	"github.com/keyport/keyport/internal/backend"
	"github.com/keyport/keyport/internal/clock"
	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/oidcjoin"
	"github.com/keyport/keyport/internal/recording"
	"github.com/keyport/keyport/internal/tlsca"
	"github.com/keyport/keyport/internal/types"
	"github.com/keyport/keyport/internal/version"
)

// CA types.
const (
	HostCA = "host"
	UserCA = "user"
)

// System roles carried by certificates of Keyport's own processes and of the local admin.
const (
	SystemAdmin = "admin"
	SystemAuth  = "auth"
	SystemProxy = "proxy"
	SystemKube  = "kube"
)

// Defaults.
const (
	DefaultUserTTL     = 12 * time.Hour
	DefaultBotTTL      = time.Hour
	MaxBotTTL          = 24 * time.Hour
	DefaultTokenTTL    = time.Hour
	DefaultInviteTTL   = time.Hour
	caTTL              = 10 * 365 * 24 * time.Hour
	usedTokenRetention = 24 * time.Hour
	expiredTokenGrace  = 24 * time.Hour
)

// Config configures the Auth Service.
type Config struct {
	ClusterName     string
	Backend         backend.Backend
	Clock           clock.Clock
	Rand            io.Reader
	Logger          *slog.Logger
	Audit           audit.Emitter
	CAKeyAlgorithm  string
	ProxyPublicAddr string
	SecondFactor    string
	// JoinRate is how many join attempts one source may make per minute (default 30).
	JoinRate int
	// Login limits password logins (users_login.go); zero fields take the defaults.
	Login LoginPolicy
	// OIDCClient fetches the discovery documents and key sets of the issuers that the
	// github, gitlab and oidc join methods trust; nil trusts the system roots.
	OIDCClient *http.Client
	// Recordings is the store of session recordings (OpenRecording); nil keeps none.
	Recordings recording.Store
}

// Server is the Auth Service.
type Server struct {
	cfg   Config
	cache *Cache

	mu     sync.RWMutex
	hostCA *tlsca.CA
	userCA *tlsca.CA

	// live is the proxy's recorder (sessions.go).
	live liveSessions

	joinLimiter  *limiter
	loginLimiter *limiter
	ssoLimiter   *limiter // starts and callbacks of SSO logins, per source
	verified     verifiedCerts
	kubeReviewer KubeReviewer
	oidc         *oidcjoin.Verifier
}

// New opens the Auth Service over its backend: it creates the CAs and the built-in roles
// at first start, checks the cluster name on later starts, and starts the cache.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
	}
	if cfg.Rand == nil {
		cfg.Rand = clock.Rand
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Audit == nil {
		cfg.Audit = audit.Discard{}
	}
	if cfg.ClusterName == "" {
		return nil, errs.BadParameterf("auth: cluster name is required")
	}
	if cfg.JoinRate == 0 {
		cfg.JoinRate = 30
	}
	cfg.Login.setDefaults()
	s := &Server{cfg: cfg, joinLimiter: newLimiter(cfg.Clock, cfg.JoinRate, time.Minute),
		loginLimiter: newLimiter(cfg.Clock, cfg.Login.Rate, time.Minute),
		ssoLimiter:   newLimiter(cfg.Clock, ssoRate, time.Minute),
		oidc:         oidcjoin.New(oidcjoin.Config{Client: cfg.OIDCClient, Clock: cfg.Clock})}
	if err := s.initCluster(ctx); err != nil {
		return nil, err
	}
	cache, err := NewCache(ctx, cfg.Backend, cfg.Clock, cfg.Logger)
	if err != nil {
		return nil, err
	}
	s.cache = cache
	return s, nil
}

// Close stops the cache.
func (s *Server) Close() error {
	s.cache.Close()
	return nil
}

// Cache returns the watch-fed view of roles, users, bots and locks.
func (s *Server) Cache() *Cache { return s.cache }

// ClusterName returns the cluster's name.
func (s *Server) ClusterName() string { return s.cfg.ClusterName }

// ProxyPublicAddr returns the address clients are told to reach the proxy on.
func (s *Server) ProxyPublicAddr() string { return s.cfg.ProxyPublicAddr }

// Now returns the time on the Auth Service's clock.
func (s *Server) Now() time.Time { return s.cfg.Clock.Now() }

// SearchAudit returns the audit events that match f.
func (s *Server) SearchAudit(ctx context.Context, f audit.Filter) ([]audit.Event, error) {
	return audit.Search(ctx, s.cfg.Backend, f)
}

// storedCA is how a CA sits in the backend.
type storedCA struct {
	CertPEM   string `json:"cert_pem"`
	KeyPEM    string `json:"key_pem"`
	Algorithm string `json:"algorithm"`
}

const (
	keyClusterName = "/cluster/name"
	keyCAPrefix    = "/cas/"
)

func (s *Server) initCluster(ctx context.Context) error {
	b := s.cfg.Backend
	_, err := b.Create(ctx, backend.Item{Key: []byte(keyClusterName), Value: []byte(s.cfg.ClusterName)})
	switch {
	case errs.IsAlreadyExists(err):
		it, err := b.Get(ctx, []byte(keyClusterName))
		if err != nil {
			return fmt.Errorf("reading cluster name: %w", err)
		}
		if string(it.Value) != s.cfg.ClusterName {
			return errs.BadParameterf("the storage belongs to cluster %q, but auth_service.cluster_name is %q", it.Value, s.cfg.ClusterName)
		}
	case err != nil:
		return fmt.Errorf("storing cluster name: %w", err)
	}
	for _, typ := range []string{HostCA, UserCA} {
		ca, err := s.loadOrCreateCA(ctx, typ)
		if err != nil {
			return err
		}
		if typ == HostCA {
			s.hostCA = ca
		} else {
			s.userCA = ca
		}
	}
	for _, r := range []*types.Role{types.NewEditorRole(), types.NewAccessRole(), types.NewAuditorRole()} {
		if err := s.createIfMissing(ctx, r); err != nil {
			return err
		}
	}
	return nil
}

// loadOrCreateCA reads a CA, creating it if no process has yet. Create is atomic, so two
// auth processes starting together on one etcd agree on one CA.
func (s *Server) loadOrCreateCA(ctx context.Context, typ string) (*tlsca.CA, error) {
	key := []byte(keyCAPrefix + typ)
	it, err := s.cfg.Backend.Get(ctx, key)
	if errs.IsNotFound(err) {
		ca, err := tlsca.NewCA(s.cfg.ClusterName, typ, s.cfg.CAKeyAlgorithm, s.cfg.Rand, s.cfg.Clock.Now(), caTTL)
		if err != nil {
			return nil, err
		}
		keyPEM, err := tlsca.EncodeKeyPEM(ca.Signer)
		if err != nil {
			return nil, err
		}
		data, _ := json.Marshal(storedCA{CertPEM: string(ca.CertPEM), KeyPEM: string(keyPEM), Algorithm: tlsca.KeyAlgorithm(ca.Signer.Public())})
		if _, err := s.cfg.Backend.Create(ctx, backend.Item{Key: key, Value: data}); err == nil {
			s.cfg.Logger.Info("created certificate authority", "type", typ, "algorithm", tlsca.KeyAlgorithm(ca.Signer.Public()))
			return ca, nil
		} else if !errs.IsAlreadyExists(err) {
			return nil, fmt.Errorf("storing %s CA: %w", typ, err)
		}
		it, err = s.cfg.Backend.Get(ctx, key)
		if err != nil {
			return nil, fmt.Errorf("reading %s CA: %w", typ, err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("reading %s CA: %w", typ, err)
	}
	var sc storedCA
	if err := json.Unmarshal(it.Value, &sc); err != nil {
		return nil, fmt.Errorf("decoding %s CA: %w", typ, err)
	}
	return tlsca.LoadCA([]byte(sc.CertPEM), []byte(sc.KeyPEM))
}

// HostCA and UserCA return the CAs.
func (s *Server) HostCA() *tlsca.CA { s.mu.RLock(); defer s.mu.RUnlock(); return s.hostCA }

// UserCA returns the user CA.
func (s *Server) UserCA() *tlsca.CA { s.mu.RLock(); defer s.mu.RUnlock(); return s.userCA }

// HostCAPin is the pin clients check (SPEC section 5).
func (s *Server) HostCAPin() string { return tlsca.Pin(s.HostCA().Cert) }

// Pools returns cert pools of the user and host CAs.
func (s *Server) Pools() (user, host *x509.CertPool) {
	user, host = x509.NewCertPool(), x509.NewCertPool()
	user.AddCert(s.UserCA().Cert)
	host.AddCert(s.HostCA().Cert)
	return user, host
}

// Ping describes the cluster without authentication.
type Ping struct {
	ClusterName     string
	Version         string
	HostCAPin       string
	ProxyPublicAddr string
	ServerTime      time.Time
}

// Ping returns what any client may know.
func (s *Server) Ping() Ping {
	return Ping{ClusterName: s.cfg.ClusterName, Version: version.Version, HostCAPin: s.HostCAPin(), ProxyPublicAddr: s.cfg.ProxyPublicAddr, ServerTime: s.cfg.Clock.Now()}
}

// CAInfo is the public part of a CA for `tctl status`.
type CAInfo struct {
	Type, Fingerprint, Algorithm, RotationState, Pin string
	CertPEM                                          []byte
}

// CAs lists the CAs' public parts.
func (s *Server) CAs() []CAInfo {
	var out []CAInfo
	for _, c := range []struct {
		typ string
		ca  *tlsca.CA
	}{{HostCA, s.HostCA()}, {UserCA, s.UserCA()}} {
		out = append(out, CAInfo{Type: c.typ, Fingerprint: tlsca.Fingerprint(c.ca.Cert), Algorithm: tlsca.KeyAlgorithm(c.ca.Cert.PublicKey),
			RotationState: "standby", Pin: tlsca.Pin(c.ca.Cert), CertPEM: c.ca.CertPEM})
	}
	return out
}

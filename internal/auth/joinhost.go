package auth

import (
	"context"
	"crypto"
	"crypto/subtle"
	"slices"
	"time"

	"github.com/keyport/keyport/internal/audit"
	"github.com/keyport/keyport/internal/backend"
	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/tlsca"
	"github.com/keyport/keyport/internal/types"
)

// HostCertTTL is how long a joined Kubernetes Service's host certificate lives. The
// service renews it (JoinHost with the certificate itself) at about two-thirds of that.
const HostCertTTL = 30 * 24 * time.Hour

// Audit event types of host joins.
const (
	eventHostJoin        = "host.join"
	eventHostJoinFailure = "host.join.failure"
	eventHostRenew       = "host.renew"
)

// useJoinToken consumes a single-use join token of the `token` method: it finds the token
// by the hash of secret, checks it in constant time, its expiry and that it grants role,
// and makes it used. Whoever creates the used-token tombstone first owns the token, so
// two joins racing with one secret cannot both succeed. hint says how to get a new one.
func (s *Server) useJoinToken(ctx context.Context, secret, role, hint string) (*types.Token, error) {
	if secret == "" {
		return nil, errs.AccessDeniedf("no join token given")
	}
	used := func() error {
		return errs.AccessDeniedf("the join token has already been used; create a new one with %s", hint)
	}
	h := HashToken(secret)
	it, err := s.cfg.Backend.Get(ctx, resourceKey(types.KindToken, h))
	if errs.IsNotFound(err) {
		if _, uerr := s.cfg.Backend.Get(ctx, []byte(usedTokenPrefix+h)); uerr == nil {
			return nil, used()
		}
		return nil, errs.AccessDeniedf("the join token is not valid")
	}
	if err != nil {
		return nil, err
	}
	r, err := decodeItem(it)
	if err != nil {
		return nil, err
	}
	tok, ok := r.(*types.Token)
	// The lookup was by hash; compare again in constant time so that no code path
	// depends on how much of the secret matched.
	if !ok || subtle.ConstantTimeCompare([]byte(tok.GetName()), []byte(h)) != 1 || tok.Spec.JoinMethod != types.JoinMethodToken {
		return nil, errs.AccessDeniedf("the join token is not valid")
	}
	if tok.Metadata.Expires != nil && !s.cfg.Clock.Now().Before(*tok.Metadata.Expires) {
		return nil, errs.AccessDeniedf("the join token expired at %s; create a new one", tok.Metadata.Expires.UTC().Format(time.RFC3339))
	}
	if !slices.Contains(tok.Spec.Roles, role) {
		return nil, errs.AccessDeniedf("the join token is not a %s token; create one with %s", role, hint)
	}
	if _, err := s.cfg.Backend.Create(ctx, backend.Item{Key: []byte(usedTokenPrefix + h), Value: []byte(role + ":" + tok.Spec.BotName),
		Expires: s.cfg.Clock.Now().Add(usedTokenRetention)}); err != nil {
		if errs.IsAlreadyExists(err) {
			return nil, used()
		}
		return nil, err
	}
	_ = s.cfg.Backend.Delete(ctx, it.Key)
	return tok, nil
}

// JoinHost exchanges a `kube` join token for the host certificate of a Kubernetes Service
// running in another process (system role kube, named hostname). Called with no token by
// a Kubernetes Service holding a valid host certificate, it renews that certificate
// under the same name: the proto has no separate renewal call, and a host needs no
// generation counter because its certificate is not handed to anyone else.
func (s *Server) JoinHost(ctx context.Context, actor Actor, secret, joinMethod, role, hostname string, pub crypto.PublicKey) ([]byte, error) {
	if id := actor.Identity; secret == "" && id != nil && id.SystemRole == SystemKube {
		if err := s.CheckLock(id); err != nil {
			return nil, err
		}
		cert, err := s.IssueHostCert(pub, id.Username, SystemKube, nil, nil, HostCertTTL)
		if err != nil {
			return nil, err
		}
		s.emit(ctx, actor, audit.Event{Type: eventHostRenew, Success: true, Fields: map[string]any{"hostname": id.Username, "role": SystemKube}})
		return cert, nil
	}
	if !s.joinLimiter.Allow(sourceHost(actor.Addr)) {
		s.emit(ctx, actor, audit.Event{Type: eventHostJoinFailure, Message: "rate limited"})
		return nil, errs.LimitExceededf("too many join attempts from %s; wait a minute", sourceHost(actor.Addr))
	}
	fail := func(err error) ([]byte, error) {
		s.emit(ctx, actor, audit.Event{Type: eventHostJoinFailure, Message: err.Error(), Fields: map[string]any{"hostname": hostname}})
		return nil, err
	}
	if role != "" && role != SystemKube {
		return fail(errs.BadParameterf("hosts may join only as role %q, not %q", SystemKube, role))
	}
	if err := checkHostname(hostname); err != nil {
		return fail(err)
	}
	fields := map[string]any{"hostname": hostname, "role": SystemKube}
	switch joinMethod {
	case "", types.JoinMethodToken:
		joinMethod = types.JoinMethodToken
		if _, err := s.useJoinToken(ctx, secret, types.TokenRoleKube, "`tctl tokens add --type=kube`"); err != nil {
			return fail(err)
		}
	case types.JoinMethodKubernetes:
		kj, err := s.checkServiceAccountJoin(ctx, secret, types.TokenRoleKube)
		if err != nil {
			return fail(err)
		}
		fields["token"], fields["service_account"], fields["pod"], fields["kube_cluster"] = kj.token.GetName(), kj.serviceAccount, kj.pod, kj.cluster
	default:
		return fail(errs.BadParameterf("join method %q is not supported for Kubernetes Services (want token or kubernetes)", joinMethod))
	}
	if err := s.CheckLock(&tlsca.Identity{Username: hostname, SystemRole: SystemKube}); err != nil {
		return fail(err)
	}
	cert, err := s.IssueHostCert(pub, hostname, SystemKube, nil, nil, HostCertTTL)
	if err != nil {
		return nil, err
	}
	fields["join_method"] = joinMethod
	s.emit(ctx, actor, audit.Event{Type: eventHostJoin, Success: true, User: hostname, Fields: fields})
	return cert, nil
}

// checkHostname accepts the names a host certificate and a kube_cluster's service may
// carry: DNS-label characters and dots.
func checkHostname(h string) error {
	if h == "" {
		return errs.BadParameterf("a joining host must give its name (keyport.nodename)")
	}
	if len(h) > 253 {
		return errs.BadParameterf("host name %.20q… is longer than 253 characters", h)
	}
	for _, c := range h {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_'
		if !ok {
			return errs.BadParameterf("host name %q: only letters, digits, '-', '_' and '.' are allowed", h)
		}
	}
	return nil
}

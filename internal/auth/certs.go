package auth

import (
	"context"
	"crypto"
	"net"
	"slices"
	"time"

	"github.com/keyport/keyport/internal/audit"
	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/tlsca"
	"github.com/keyport/keyport/internal/types"
)

// SignUser issues a certificate for a local user (`tctl auth sign`, `tsh login`), with the
// user's roles and traits, TTL capped by the roles' max_session_ttl.
//
// requests are approved access requests of the user whose roles (and resource
// restrictions) the certificate also carries, ending no later than their access does
// (`tsh login --request-id`). A user renewing their own login without naming requests
// keeps the ones their certificate carries, checked again (`tsh kube login` and `tsh kube
// credentials` so pick them up); one that has ended or was deleted fails the renewal.
func (s *Server) SignUser(ctx context.Context, actor Actor, userName string, pub crypto.PublicKey, ttl time.Duration, kubeCluster string, requests []string) ([]byte, error) {
	r, err := s.GetResource(ctx, types.KindUser, userName)
	if err != nil {
		return nil, err
	}
	user := r.(*types.User)
	id := tlsca.Identity{Username: userName, Roles: slices.Clone(user.Spec.Roles), Traits: user.Spec.Traits, KubeCluster: kubeCluster}
	self := actor.Identity
	ownLogin := self != nil && self.SystemRole == "" && !self.IsBot() && self.Username == userName
	if len(requests) > 0 && !ownLogin {
		return nil, errs.AccessDeniedf("access requests go into their own user's login (tsh login --request-id), not into certificates signed for others")
	}
	if ownLogin && requests == nil {
		requests = self.ActiveRequests
	}
	until, err := s.withRequests(ctx, &id, requests)
	if err != nil {
		return nil, err
	}
	if err := s.CheckLock(&id); err != nil {
		return nil, err
	}
	if kubeCluster != "" {
		if _, err := s.cache.Get(types.KindKubeCluster, kubeCluster); err != nil {
			return nil, errs.NotFoundf("kube cluster %q is not registered with this cluster (see `tctl kube ls`)", kubeCluster)
		}
	}
	if self := actor.Identity; self != nil && self.SystemRole == "" && !self.IsBot() && self.Username == userName {
		// A user renewing their own login (tsh kube credentials): the new certificate
		// lives as long as the one it was asked with, and no longer.
		if left := self.Expires.Sub(s.cfg.Clock.Now()); ttl <= 0 || ttl > left {
			ttl = left
		}
	}
	if ttl <= 0 {
		ttl = DefaultUserTTL
	}
	for _, role := range s.cache.Roles(user.Spec.Roles) {
		if m := time.Duration(role.Spec.Options.MaxSessionTTL); m > 0 && m < ttl {
			ttl = m
		}
	}
	now := s.cfg.Clock.Now()
	if !until.IsZero() && until.Sub(now) < ttl {
		ttl = until.Sub(now)
	}
	cert, err := s.UserCA().Issue(s.cfg.Rand, now, tlsca.CertRequest{PublicKey: pub, Identity: id, NotAfter: now.Add(ttl)})
	if err != nil {
		return nil, err
	}
	s.emit(ctx, actor, audit.Event{Type: audit.CertIssue, Success: true, Fields: map[string]any{"for_user": userName, "ttl": ttl.String(), "kube_cluster": kubeCluster, "access_requests": id.ActiveRequests}})
	return cert, nil
}

// IssueHostCert issues a certificate for one of Keyport's own processes (auth, proxy,
// kube) or for the local admin, from the host CA. Server certificates get the names and
// IPs they answer on.
func (s *Server) IssueHostCert(pub crypto.PublicKey, name, systemRole string, dnsNames []string, ips []net.IP, ttl time.Duration) ([]byte, error) {
	now := s.cfg.Clock.Now()
	return s.HostCA().Issue(s.cfg.Rand, now, tlsca.CertRequest{
		PublicKey: pub,
		Identity:  tlsca.Identity{Username: name, SystemRole: systemRole},
		NotAfter:  now.Add(ttl),
		DNSNames:  dnsNames,
		IPs:       ips,
	})
}

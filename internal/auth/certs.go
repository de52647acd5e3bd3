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
func (s *Server) SignUser(ctx context.Context, actor Actor, userName string, pub crypto.PublicKey, ttl time.Duration, kubeCluster string) ([]byte, error) {
	r, err := s.GetResource(ctx, types.KindUser, userName)
	if err != nil {
		return nil, err
	}
	user := r.(*types.User)
	id := tlsca.Identity{Username: userName, Roles: user.Spec.Roles, Traits: user.Spec.Traits, KubeCluster: kubeCluster}
	if err := s.CheckLock(&id); err != nil {
		return nil, err
	}
	if kubeCluster != "" {
		if _, err := s.cache.Get(types.KindKubeCluster, kubeCluster); err != nil {
			return nil, errs.NotFoundf("kube cluster %q is not registered with this cluster (see `tctl kube ls`)", kubeCluster)
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
	cert, err := s.UserCA().Issue(s.cfg.Rand, now, tlsca.CertRequest{PublicKey: pub, Identity: id, NotAfter: now.Add(ttl)})
	if err != nil {
		return nil, err
	}
	s.emit(ctx, actor, audit.Event{Type: audit.CertIssue, Success: true, Fields: map[string]any{"for_user": userName, "ttl": ttl.String(), "kube_cluster": kubeCluster}})
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

// CreateUser makes a local user and an invite with which the user sets a password.
func (s *Server) CreateUser(ctx context.Context, actor Actor, user *types.User) (invite string, exp time.Time, err error) {
	if _, err := s.PutResource(ctx, actor, user, CreateOnly, 0); err != nil {
		return "", time.Time{}, err
	}
	s.emit(ctx, actor, audit.Event{Type: audit.UserCreate, Success: true, Fields: map[string]any{"name": user.GetName(), "roles": user.Spec.Roles}})
	return s.newInvite(ctx, user.GetName())
}

// ResetUser issues a new invite for an existing user.
func (s *Server) ResetUser(ctx context.Context, actor Actor, name string) (string, time.Time, error) {
	if _, err := s.GetResource(ctx, types.KindUser, name); err != nil {
		return "", time.Time{}, err
	}
	_ = s.cfg.Backend.Delete(ctx, []byte(passwordPrefix+name))
	s.emit(ctx, actor, audit.Event{Type: audit.UserReset, Success: true, Fields: map[string]any{"name": name}})
	return s.newInvite(ctx, name)
}

// CreateLock stores a lock; every process sees it through its cache within moments.
func (s *Server) CreateLock(ctx context.Context, actor Actor, target types.LockTarget, message string, expires *time.Time) (*types.Lock, error) {
	id, err := randomHex(s.cfg.Rand, 16)
	if err != nil {
		return nil, err
	}
	id = id[0:8] + "-" + id[8:12] + "-" + id[12:16] + "-" + id[16:20] + "-" + id[20:32]
	l := types.NewLock(id, target, message)
	now := s.cfg.Clock.Now().UTC()
	l.Spec.CreatedAt = &now
	l.Spec.CreatedBy = actor.Name()
	l.Spec.Expires = expires
	if _, err := s.PutResource(ctx, actor, l, CreateOnly, 0); err != nil {
		return nil, err
	}
	s.emit(ctx, actor, audit.Event{Type: audit.LockCreate, Success: true, Message: message, Fields: map[string]any{"target": target.String(), "lock": id}})
	return l, nil
}

// HeartbeatKubeClusters records the clusters a Kubernetes Service serves, expiring unless
// renewed.
func (s *Server) HeartbeatKubeClusters(ctx context.Context, actor Actor, clusters []*types.KubeCluster, ttl time.Duration) error {
	if ttl <= 0 {
		ttl = time.Minute
	}
	exp := s.cfg.Clock.Now().Add(ttl).UTC()
	for _, kc := range clusters {
		kc.Metadata.Expires = &exp
		if err := kc.CheckAndSetDefaults(); err != nil {
			return err
		}
		it, err := itemFor(kc)
		if err != nil {
			return err
		}
		if _, err := s.cfg.Backend.Put(ctx, it); err != nil {
			return err
		}
	}
	return nil
}

// KubeClusters lists the registered clusters, sorted by name.
func (s *Server) KubeClusters() []*types.KubeCluster {
	var out []*types.KubeCluster
	for _, r := range s.cache.List(types.KindKubeCluster) {
		out = append(out, r.(*types.KubeCluster))
	}
	slices.SortFunc(out, func(a, b *types.KubeCluster) int {
		switch {
		case a.GetName() < b.GetName():
			return -1
		case a.GetName() > b.GetName():
			return 1
		}
		return 0
	})
	return out
}

func sourceHost(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

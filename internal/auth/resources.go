package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/keyport/keyport/internal/audit"
	"github.com/keyport/keyport/internal/backend"
	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/types"
)

// ResourcePrefix is where resources live: /resources/<kind>/<name>.
const ResourcePrefix = "/resources/"

func resourceKey(kind, name string) []byte {
	return []byte(ResourcePrefix + kind + "/" + name)
}

// itemFor encodes r as a backend item, expiring when its metadata says.
func itemFor(r types.Resource) (backend.Item, error) {
	data, err := types.MarshalStorage(r)
	if err != nil {
		return backend.Item{}, err
	}
	it := backend.Item{Key: resourceKey(r.GetKind(), r.GetName()), Value: data}
	if exp := r.GetMetadata().Expires; exp != nil {
		it.Expires = *exp
		if r.GetKind() == types.KindToken {
			// Keep expired tokens a while so that a late join hears "expired", not "invalid".
			it.Expires = exp.Add(expiredTokenGrace)
		}
	}
	return it, nil
}

func decodeItem(it *backend.Item) (types.Resource, error) {
	r, err := types.UnmarshalStorage(it.Value)
	if err != nil {
		return nil, fmt.Errorf("decoding stored resource: %w", err)
	}
	r.GetMetadata().Revision = it.Revision
	return r, nil
}

// GetResource reads one resource from the backend.
func (s *Server) GetResource(ctx context.Context, kind, name string) (types.Resource, error) {
	it, err := s.cfg.Backend.Get(ctx, resourceKey(kind, name))
	if errs.IsNotFound(err) {
		return nil, errs.NotFoundf("%s %q not found", kind, name)
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s %q: %w", kind, name, err)
	}
	return decodeItem(it)
}

// ListResources reads every resource of kind.
func (s *Server) ListResources(ctx context.Context, kind string) ([]types.Resource, error) {
	items, err := s.cfg.Backend.GetRange(ctx, []byte(ResourcePrefix+kind+"/"), 0)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", kind, err)
	}
	out := make([]types.Resource, 0, len(items))
	for i := range items {
		r, err := decodeItem(&items[i])
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// createIfMissing stores r unless a resource of its kind and name exists.
func (s *Server) createIfMissing(ctx context.Context, r types.Resource) error {
	if err := r.CheckAndSetDefaults(); err != nil {
		return err
	}
	it, err := itemFor(r)
	if err != nil {
		return err
	}
	if _, err := s.cfg.Backend.Create(ctx, it); err != nil && !errs.IsAlreadyExists(err) {
		return fmt.Errorf("creating %s %q: %w", r.GetKind(), r.GetName(), err)
	}
	return nil
}

// WriteMode says how PutResource treats an existing resource.
type WriteMode int

// Write modes.
const (
	// CreateOnly fails with "already exists" (tctl create without -f).
	CreateOnly WriteMode = iota
	// Upsert overwrites (tctl create -f).
	Upsert
	// Conditional overwrites only if the stored revision is the one given (tctl edit).
	Conditional
)

// PutResource validates and stores r. It reports whether r was created (rather than
// updated). Resources that are views or have side effects go through their own paths.
func (s *Server) PutResource(ctx context.Context, actor Actor, r types.Resource, mode WriteMode, expectedRevision int64) (created bool, err error) {
	if err := r.CheckAndSetDefaults(); err != nil {
		return false, err
	}
	kind, name := r.GetKind(), r.GetName()
	switch kind {
	case types.KindKubeCluster:
		return false, errs.BadParameterf("kube_cluster resources are read-only: they come from Kubernetes Service heartbeats")
	case types.KindToken:
		return s.putToken(ctx, actor, r.(*types.Token), mode)
	case types.KindBot:
		if mode == CreateOnly {
			if err := s.createBotResources(ctx, actor, r.(*types.Bot)); err != nil {
				return false, err
			}
			return true, nil
		}
		if err := s.checkRolesExist(ctx, r.(*types.Bot).Spec.Roles); err != nil {
			return false, err
		}
	case types.KindUser:
		if err := s.checkRolesExist(ctx, r.(*types.User).Spec.Roles); err != nil {
			return false, err
		}
	}
	it, err := itemFor(r)
	if err != nil {
		return false, err
	}
	b := s.cfg.Backend
	switch mode {
	case CreateOnly:
		if _, err := b.Create(ctx, it); err != nil {
			if errs.IsAlreadyExists(err) {
				return false, errs.AlreadyExistsf("%s '%s' already exists", kind, name)
			}
			return false, fmt.Errorf("creating %s %q: %w", kind, name, err)
		}
		created = true
	case Upsert:
		_, err := b.Get(ctx, it.Key)
		created = errs.IsNotFound(err)
		if _, err := b.Put(ctx, it); err != nil {
			return false, fmt.Errorf("writing %s %q: %w", kind, name, err)
		}
	case Conditional:
		if _, err := b.CompareAndSwap(ctx, it, expectedRevision); err != nil {
			if errs.IsCompareFailed(err) {
				return false, errs.CompareFailedf("%s '%s' was changed by someone else since you read it; read it again and retry", kind, name)
			}
			if errs.IsNotFound(err) {
				return false, errs.NotFoundf("%s '%s' no longer exists", kind, name)
			}
			return false, err
		}
	}
	typ := audit.ResourceUpdate
	if created {
		typ = audit.ResourceCreate
	}
	s.emit(ctx, actor, audit.Event{Type: typ, Success: true, Fields: map[string]any{"kind": kind, "name": name}})
	return created, nil
}

// DeleteResource removes a resource (and, for bots, what backs them).
func (s *Server) DeleteResource(ctx context.Context, actor Actor, kind, name string) error {
	b := s.cfg.Backend
	switch kind {
	case types.KindBot:
		user, role := types.BotResourceNames(name)
		if err := b.Delete(ctx, resourceKey(kind, name)); err != nil {
			return notFoundOr(err, kind, name)
		}
		_ = b.Delete(ctx, resourceKey(types.KindUser, user))
		_ = b.Delete(ctx, resourceKey(types.KindRole, role))
		if err := b.DeleteRange(ctx, []byte(botInstancePrefix+name+"/")); err != nil {
			return fmt.Errorf("deleting bot instances: %w", err)
		}
	case types.KindRole:
		if err := s.checkRoleUnused(ctx, name); err != nil {
			return err
		}
		if err := b.Delete(ctx, resourceKey(kind, name)); err != nil {
			return notFoundOr(err, kind, name)
		}
	default:
		if err := b.Delete(ctx, resourceKey(kind, name)); err != nil {
			return notFoundOr(err, kind, name)
		}
		if kind == types.KindUser {
			// A user made later under the same name must not inherit these.
			_ = b.Delete(ctx, []byte(passwordPrefix+name))
			_ = s.deleteInvitesOf(ctx, name)
		}
	}
	s.emit(ctx, actor, audit.Event{Type: audit.ResourceDelete, Success: true, Fields: map[string]any{"kind": kind, "name": name}})
	return nil
}

func notFoundOr(err error, kind, name string) error {
	if errs.IsNotFound(err) {
		return errs.NotFoundf("%s '%s' not found", kind, name)
	}
	return err
}

// checkRolesExist refuses references to roles that do not exist.
func (s *Server) checkRolesExist(ctx context.Context, roles []string) error {
	for _, r := range roles {
		if _, err := s.GetResource(ctx, types.KindRole, r); err != nil {
			if errs.IsNotFound(err) {
				return errs.BadParameterf("role '%s' does not exist", r)
			}
			return err
		}
	}
	return nil
}

// checkRoleUnused refuses to delete a role that users or bots still name.
func (s *Server) checkRoleUnused(ctx context.Context, role string) error {
	for _, kind := range []string{types.KindUser, types.KindBot} {
		rs, err := s.ListResources(ctx, kind)
		if err != nil {
			return err
		}
		for _, r := range rs {
			var roles []string
			switch v := r.(type) {
			case *types.User:
				roles = v.Spec.Roles
			case *types.Bot:
				roles = v.Spec.Roles
			}
			for _, x := range roles {
				if x == role {
					return errs.BadParameterf("role '%s' is still used by %s '%s'", role, kind, r.GetName())
				}
			}
		}
	}
	return nil
}

// hashToken is how join and invite secrets are stored: only their SHA-256.
func HashToken(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// putToken stores a token created from a file. A token-method token's name is its
// secret, so it is stored under the secret's hash and the name is replaced by it.
func (s *Server) putToken(ctx context.Context, actor Actor, t *types.Token, mode WriteMode) (bool, error) {
	if t.Spec.JoinMethod == types.JoinMethodToken {
		t.Metadata.Name = HashToken(t.Metadata.Name)
	}
	// A secret (method token) expires in an hour unless it says otherwise; the other
	// methods' tokens hold rules or a bound key and are meant to last (pods rejoin
	// whenever they are rescheduled). `tctl tokens add` gives them the --ttl asked for.
	if t.Metadata.Expires == nil && t.Spec.JoinMethod == types.JoinMethodToken {
		exp := s.cfg.Clock.Now().Add(DefaultTokenTTL).UTC()
		t.Metadata.Expires = &exp
	}
	if t.Spec.BotName != "" {
		if _, err := s.GetResource(ctx, types.KindBot, t.Spec.BotName); err != nil {
			return false, err
		}
	}
	it, err := itemFor(t)
	if err != nil {
		return false, err
	}
	if mode == CreateOnly {
		if _, err := s.cfg.Backend.Create(ctx, it); errs.IsAlreadyExists(err) {
			return false, errs.AlreadyExistsf("token already exists")
		} else if err != nil {
			return false, err
		}
	} else if _, err := s.cfg.Backend.Put(ctx, it); err != nil {
		return false, err
	}
	s.emit(ctx, actor, audit.Event{Type: audit.TokenCreate, Success: true, Fields: map[string]any{"roles": t.Spec.Roles, "bot_name": t.Spec.BotName, "join_method": t.Spec.JoinMethod}})
	return true, nil
}

// CreateToken makes a join token. For the token method it returns the secret, which is
// shown once and stored only as a hash.
func (s *Server) CreateToken(ctx context.Context, actor Actor, role, botName, joinMethod, name string, allow []string, ttl time.Duration) (secret string, t *types.Token, err error) {
	if ttl <= 0 {
		ttl = DefaultTokenTTL
	}
	exp := s.cfg.Clock.Now().Add(ttl).UTC()
	t = &types.Token{Header: types.Header{Kind: types.KindToken, Version: types.V2, Metadata: types.Metadata{Expires: &exp}},
		Spec: types.TokenSpec{Roles: []string{role}, BotName: botName, JoinMethod: joinMethod}}
	if joinMethod == "" || joinMethod == types.JoinMethodToken {
		t.Spec.JoinMethod = types.JoinMethodToken
		secret, err = randomHex(s.cfg.Rand, 32)
		if err != nil {
			return "", nil, err
		}
		t.Metadata.Name = secret
	} else {
		t.Metadata.Name = name
		rules := make([]types.KubernetesJoinRule, 0, len(allow))
		for _, a := range allow {
			rules = append(rules, types.KubernetesJoinRule{ServiceAccount: a})
		}
		t.Spec.Kubernetes = &types.KubernetesJoin{Allow: rules}
	}
	if err := t.CheckAndSetDefaults(); err != nil {
		return "", nil, err
	}
	if _, err := s.putToken(ctx, actor, t, CreateOnly); err != nil {
		return "", nil, err
	}
	return secret, t, nil
}

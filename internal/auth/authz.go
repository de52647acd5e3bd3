package auth

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/keyport/keyport/internal/audit"
	"github.com/keyport/keyport/internal/clock"
	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/tlsca"
	"github.com/keyport/keyport/internal/types"
)

// Rule verbs (SPEC section 6, `rules`).
const (
	VerbList   = "list"
	VerbRead   = "read"
	VerbCreate = "create"
	VerbUpdate = "update"
	VerbDelete = "delete"
)

// Actor is who is calling: the verified identity of the caller's certificate, and the
// address it came from.
type Actor struct {
	Identity *tlsca.Identity
	Addr     string
}

// Name is the actor's user name for audit events.
func (a Actor) Name() string {
	if a.Identity == nil {
		return ""
	}
	return a.Identity.Username
}

// Authorize checks that the actor's roles allow verb on resources of kind: some role's
// allow rule matches and no role's deny rule does. Keyport's own services and the local
// admin identity are allowed what their system role needs.
func (s *Server) Authorize(a Actor, kind, verb string) error {
	id := a.Identity
	if id == nil {
		return errs.NotAuthenticatedf("this call needs a client certificate")
	}
	if l := s.cache.LockFor(id); l != nil {
		return errs.AccessDeniedf("%s", lockMessage(l))
	}
	switch id.SystemRole {
	case SystemAdmin, SystemAuth:
		return nil
	case SystemProxy, SystemKube:
		if verb == VerbRead || verb == VerbList {
			return nil
		}
		if kind == types.KindKubeCluster && id.SystemRole == SystemKube {
			return nil
		}
		return errs.AccessDeniedf("access denied: %s service may not %s %s", id.SystemRole, verb, kind)
	}
	roles := s.cache.Roles(id.Roles)
	allowed := false
	for _, r := range roles {
		if ruleMatches(r.Spec.Deny.Rules, kind, verb) {
			return errs.AccessDeniedf("access denied to %s %s: role %s denies it", verb, kind, r.GetName())
		}
		if ruleMatches(r.Spec.Allow.Rules, kind, verb) {
			allowed = true
		}
	}
	if !allowed {
		return errs.AccessDeniedf("access denied to %s %s: no role of %s has a rule allowing it", verb, kind, id.Username)
	}
	return nil
}

func ruleMatches(rules []types.Rule, kind, verb string) bool {
	for _, r := range rules {
		if (slices.Contains(r.Resources, types.Wildcard) || slices.Contains(r.Resources, kind)) &&
			(slices.Contains(r.Verbs, types.Wildcard) || slices.Contains(r.Verbs, verb)) {
			return true
		}
	}
	return false
}

func lockMessage(l *types.Lock) string {
	what, who, _ := strings.Cut(l.Spec.Target.String(), "=")
	msg := fmt.Sprintf("access denied: %s %q is locked", strings.ReplaceAll(what, "_", " "), who)
	if l.Spec.Message != "" {
		msg += ": " + l.Spec.Message
	}
	return msg
}

// CheckLock returns an access-denied error naming the lock when id is locked.
func (s *Server) CheckLock(id *tlsca.Identity) error {
	if l := s.cache.LockFor(id); l != nil {
		return errs.AccessDeniedf("%s", lockMessage(l))
	}
	return nil
}

func (s *Server) emit(ctx context.Context, a Actor, e audit.Event) {
	if a.Identity != nil {
		if e.User == "" {
			e.User = a.Identity.Username
		}
		if e.Roles == nil {
			e.Roles = a.Identity.Roles
		}
		if e.BotName == "" {
			e.BotName = a.Identity.BotName
			e.BotInstanceID = a.Identity.BotInstanceID
		}
	}
	if a.Addr != "" {
		if e.Fields == nil {
			e.Fields = map[string]any{}
		}
		e.Fields["addr"] = a.Addr
	}
	s.cfg.Audit.Emit(ctx, e)
}

// limiter is a fixed-window counter per key, enough to blunt guessing of tokens and
// passwords from one source.
type limiter struct {
	clock  clock.Clock
	limit  int
	window time.Duration

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	start time.Time
	n     int
}

func newLimiter(clk clock.Clock, limit int, window time.Duration) *limiter {
	return &limiter{clock: clk, limit: limit, window: window, buckets: map[string]*bucket{}}
}

// Allow counts one attempt for key and reports whether it is within the limit.
func (l *limiter) Allow(key string) bool {
	now := l.clock.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buckets) > 10000 {
		for k, b := range l.buckets {
			if now.Sub(b.start) > l.window {
				delete(l.buckets, k)
			}
		}
	}
	b := l.buckets[key]
	if b == nil || now.Sub(b.start) > l.window {
		b = &bucket{start: now}
		l.buckets[key] = b
	}
	b.n++
	return b.n <= l.limit
}

func randomHex(r io.Reader, n int) (string, error) {
	if r == nil {
		r = rand.Reader
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return "", err
	}
	return hex.EncodeToString(buf), nil
}

package auth

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/keyport/keyport/internal/audit"
	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/tlsca"
	"github.com/keyport/keyport/internal/types"
)

// locks.go holds locks: creating one, and the check every call and request makes.

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

// CheckLock returns an access-denied error naming the lock when id is locked.
func (s *Server) CheckLock(id *tlsca.Identity) error {
	if l := s.cache.LockFor(id); l != nil {
		return errs.AccessDeniedf("%s", lockMessage(l))
	}
	return nil
}

func lockMessage(l *types.Lock) string {
	what, who, _ := strings.Cut(l.Spec.Target.String(), "=")
	msg := fmt.Sprintf("access denied: %s %q is locked", strings.ReplaceAll(what, "_", " "), who)
	if l.Spec.Message != "" {
		msg += ": " + l.Spec.Message
	}
	return msg
}

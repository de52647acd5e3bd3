package auth

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/keyport/keyport/internal/access"
	"github.com/keyport/keyport/internal/audit"
	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/recording"
	"github.com/keyport/keyport/internal/types"
)

// LiveSessions is the proxy's recorder, seen from the Auth API: the sessions it records
// now, and following one.
type LiveSessions interface {
	Live() []recording.Meta
	Follow(ctx context.Context, id string, offset int64, wait time.Duration) (recording.Meta, []byte, bool, error)
}

// joinWait is how long a JoinSession call waits for new output before it answers empty.
const joinWait = 2 * time.Second

type liveSessions struct {
	mu sync.RWMutex
	l  LiveSessions
}

// SetLiveSessions connects the proxy's recorder (the process's own proxy).
func (s *Server) SetLiveSessions(l LiveSessions) {
	s.live.mu.Lock()
	s.live.l = l
	s.live.mu.Unlock()
}

func (s *Server) liveSessions() LiveSessions {
	s.live.mu.RLock()
	defer s.live.mu.RUnlock()
	return s.live.l
}

// mayJoin: the actor's roles' allow.join_sessions cover the session's owner's roles.
func (s *Server) mayJoin(a Actor, m recording.Meta) error {
	if a.Identity == nil {
		return errs.AccessDeniedf("joining a session needs an identity")
	}
	if a.Identity.SystemRole == SystemAdmin {
		return nil
	}
	if !access.CanJoinSession(s.cache.Roles(a.Identity.Roles), m.Roles, types.SessionKindKube, types.SessionModeWatch) {
		return errs.AccessDeniedf("no role of yours has allow.join_sessions for %s's session (roles %v, kind %s, mode %s)",
			m.User, m.Roles, types.SessionKindKube, types.SessionModeWatch)
	}
	return nil
}

// ActiveSessions lists the live sessions on this process's proxy that a may join.
func (s *Server) ActiveSessions(_ context.Context, a Actor) []recording.Meta {
	l := s.liveSessions()
	if l == nil {
		return nil
	}
	var out []recording.Meta
	for _, m := range l.Live() {
		if s.mayJoin(a, m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// JoinSession returns the recording of a live session from offset on, read-only, to a
// user whose join_sessions allow it. The first call (offset 0) is audited as
// session.join; a refusal is audited too.
func (s *Server) JoinSession(ctx context.Context, a Actor, id string, offset int64) ([]byte, bool, error) {
	l := s.liveSessions()
	if l == nil {
		return nil, true, errs.NotFoundf("this process runs no proxy, so it has no live sessions")
	}
	if !recording.ValidID(id) {
		return nil, true, errs.BadParameterf("%q is not a session ID", id)
	}
	if offset < 0 {
		return nil, true, errs.BadParameterf("offset must not be negative")
	}
	// Check first, without waiting: a refused caller learns nothing of the output.
	meta, _, ended, err := l.Follow(ctx, id, 1<<62, 0)
	if errors.Is(err, recording.ErrNotFound) {
		if offset > 0 {
			return nil, true, nil // it ended while the caller followed it
		}
		return nil, true, errs.NotFoundf("session %s is not live on this proxy (it ended, or runs on another proxy)", id)
	}
	if err := s.mayJoin(a, meta); err != nil {
		if offset == 0 {
			s.emit(ctx, a, audit.Event{Type: audit.SessionJoin, Message: err.Error(),
				Fields: map[string]any{"session_id": id, "session_user": meta.User, "mode": types.SessionModeWatch}})
		}
		return nil, true, err
	}
	if offset == 0 {
		s.emit(ctx, a, audit.Event{Type: audit.SessionJoin, Success: true,
			Fields: map[string]any{"session_id": id, "session_user": meta.User, "cluster": meta.Cluster,
				"namespace": meta.Namespace, "pod": meta.Pod, "mode": types.SessionModeWatch}})
	}
	if ended {
		return nil, true, nil
	}
	_, data, ended, err := l.Follow(ctx, id, offset, joinWait)
	if errors.Is(err, recording.ErrNotFound) {
		return nil, true, nil
	}
	return data, ended, err
}

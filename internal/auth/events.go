package auth

import (
	"context"

	"github.com/keyport/keyport/internal/audit"
)

// events.go holds how the Auth Service writes its audit events.

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

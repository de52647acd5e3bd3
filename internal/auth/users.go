package auth

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"time"

	"github.com/keyport/keyport/internal/audit"
	"github.com/keyport/keyport/internal/backend"
	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/types"
)

const (
	invitePrefix   = "/invites/"
	passwordPrefix = "/passwords/"
)

// invite is a one-time link with which a user sets a password (and enrols OTP).
type invite struct {
	User    string    `json:"user"`
	Expires time.Time `json:"expires"`
	// OTPSecret is the TOTP secret offered on the invite page, made when the page is
	// first shown so that a reload shows the same QR code (see Invite).
	OTPSecret string `json:"otp_secret,omitempty"`
}

// newInvite stores an invite under the hash of its secret and returns the URL. The user's
// older invites and any password they had stop working: an invite is how a password is
// set, and a new one (tctl users add/reset) means the old credentials are void.
func (s *Server) newInvite(ctx context.Context, user string) (string, time.Time, error) {
	secret, err := randomHex(s.cfg.Rand, 32)
	if err != nil {
		return "", time.Time{}, err
	}
	if err := s.deleteInvitesOf(ctx, user); err != nil {
		return "", time.Time{}, err
	}
	if err := s.cfg.Backend.Delete(ctx, []byte(passwordPrefix+user)); err != nil && !errs.IsNotFound(err) {
		return "", time.Time{}, fmt.Errorf("clearing the password of %q: %w", user, err)
	}
	exp := s.cfg.Clock.Now().Add(DefaultInviteTTL).UTC()
	data, _ := json.Marshal(invite{User: user, Expires: exp})
	if _, err := s.cfg.Backend.Put(ctx, backend.Item{Key: []byte(invitePrefix + HashToken(secret)), Value: data, Expires: exp}); err != nil {
		return "", time.Time{}, err
	}
	return s.InviteURL(secret), exp, nil
}

// InviteURL is where the invite page for secret lives on the proxy.
func (s *Server) InviteURL(secret string) string {
	addr := s.cfg.ProxyPublicAddr
	if host, port, err := net.SplitHostPort(addr); err == nil && port == "443" {
		addr = host
	}
	return "https://" + addr + "/web/invite/" + secret
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

package auth

import (
	"context"
	"encoding/json"
	"net"
	"time"

	"github.com/keyport/keyport/internal/backend"
)

const (
	invitePrefix   = "/invites/"
	passwordPrefix = "/passwords/"
)

// invite is a one-time link with which a user sets a password (and enrols OTP).
type invite struct {
	User    string    `json:"user"`
	Expires time.Time `json:"expires"`
}

// newInvite stores an invite under the hash of its secret and returns the URL.
func (s *Server) newInvite(ctx context.Context, user string) (string, time.Time, error) {
	secret, err := randomHex(s.cfg.Rand, 32)
	if err != nil {
		return "", time.Time{}, err
	}
	exp := s.cfg.Clock.Now().Add(DefaultInviteTTL).UTC()
	data, _ := json.Marshal(invite{User: user, Expires: exp})
	if _, err := s.cfg.Backend.Put(ctx, backend.Item{Key: []byte(invitePrefix + hashToken(secret)), Value: data, Expires: exp}); err != nil {
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

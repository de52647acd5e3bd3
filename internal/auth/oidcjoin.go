package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/keyport/keyport/internal/backend"
	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/oidcjoin"
	"github.com/keyport/keyport/internal/types"
)

// usedIDTokenPrefix keeps the jti of every ID token that joined, until it expires, so
// that an ID token joins once.
const usedIDTokenPrefix = "/used_id_tokens/"

// ciJoin is a checked github, gitlab or oidc join.
type ciJoin struct {
	token  *types.Token
	claims map[string]any
	rule   int
}

// checkCIJoin validates a join with method github, gitlab or oidc. encoded is
// "<token name>\n<ID token>" (the separator of the kubernetes method). The token
// resource names the issuer and the rules; the ID token must verify against the
// issuer's published keys, carry the audience (the cluster name unless the token sets
// another), be within its validity, match one rule, and not have joined before.
func (s *Server) checkCIJoin(ctx context.Context, method, encoded string) (*ciJoin, map[string]any, error) {
	detail := map[string]any{}
	name, raw, ok := strings.Cut(encoded, KubernetesJoinSeparator)
	name, raw = strings.TrimSpace(name), strings.TrimSpace(raw)
	if !ok || name == "" || raw == "" {
		return nil, detail, errs.AccessDeniedf("join method %s needs the token's name and the platform's ID token (tbot: onboarding.token names the token)", method)
	}
	detail["token"] = name
	tok, err := s.namedJoinToken(ctx, name, method)
	if err != nil {
		return nil, detail, err
	}
	issuer, audience := tok.Spec.Issuer(), tok.Spec.Audience()
	if audience == "" {
		audience = s.cfg.ClusterName
	}
	claims, err := s.oidc.Verify(ctx, issuer, audience, raw)
	if err != nil {
		detail["reason"] = string(oidcjoin.ReasonOf(err))
		return nil, detail, fmt.Errorf("join token %q: %w", name, err)
	}
	rules := tok.Spec.ClaimRules()
	i := oidcjoin.Match(rules, claims)
	if i < 0 {
		detail["reason"] = string(oidcjoin.NoRuleMatched)
		detail["claims"] = claims
		detail["mismatch"] = oidcjoin.Mismatch(rules, claims)
		return nil, detail, errs.AccessDeniedf("no allow rule of join token %q matches this ID token (%s)", name, oidcjoin.Describe(rules, claims))
	}
	if jti, ok := claims["jti"].(string); ok && jti != "" {
		exp, _ := claims["exp"].(float64)
		sum := sha256.Sum256([]byte(issuer + "\x00" + jti))
		it := backend.Item{Key: []byte(usedIDTokenPrefix + hex.EncodeToString(sum[:])), Value: []byte(name),
			Expires: time.Unix(int64(exp), 0).Add(oidcjoin.DefaultSkew + time.Minute)}
		if _, err := s.cfg.Backend.Create(ctx, it); errs.IsAlreadyExists(err) {
			detail["reason"] = "replayed"
			return nil, detail, errs.AccessDeniedf("this ID token (jti %q) has already been used to join: each join needs a fresh one", jti)
		} else if err != nil {
			return nil, detail, err
		}
	}
	return &ciJoin{token: tok, claims: claims, rule: i}, detail, nil
}

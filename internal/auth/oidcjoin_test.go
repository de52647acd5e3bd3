package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/keyport/keyport/internal/audit"
	"github.com/keyport/keyport/internal/clock"
	"github.com/keyport/keyport/internal/testenv/oidcissuer"
	"github.com/keyport/keyport/internal/tlsca"
	"github.com/keyport/keyport/internal/types"
)

// ciTokens creates bot ci and one token per CI join method, trusting is.
func ciTokens(t *testing.T, s *Server, is *oidcissuer.Issuer) {
	t.Helper()
	ctx := context.Background()
	if _, _, err := s.CreateBot(ctx, Actor{}, types.NewBot("ci", "access"), time.Hour); err != nil {
		t.Fatal(err)
	}
	bot := func(name, method string, spec types.TokenSpec) {
		putJoinToken(t, s, name, types.TokenRoleBot, "ci", method, spec)
	}
	bot("gh", types.JoinMethodGitHub, types.TokenSpec{GitHub: &types.GitHubJoin{EnterpriseServerHost: is.Host,
		Allow: []types.GitHubRule{{Repository: "org/repo-*", Ref: "refs/heads/main"}, {Repository: "org/deploy", Environment: "prod"}}}})
	bot("gl", types.JoinMethodGitLab, types.TokenSpec{GitLab: &types.GitLabJoin{Domain: is.Host,
		Allow: []types.GitLabRule{{ProjectPath: "group/app", RefProtected: "true"}}}})
	bot("any", types.JoinMethodOIDC, types.TokenSpec{OIDC: &types.OIDCJoin{Issuer: is.URL, Audience: "keyport",
		Allow: []types.OIDCRule{{Claims: map[string]string{"sub": "org:acme:project:*"}}}}})
}

func TestCIJoin(t *testing.T) {
	ctx := context.Background()
	ghes := oidcissuer.Start(t, oidcissuer.Options{PathPrefix: "/_services/token"})
	rec := &audit.Recorder{}
	s, clk := newTestServer(t, Config{OIDCClient: ghes.Client, Audit: rec})
	clk.Advance(time.Until(clk.Now()) * -1)
	ciTokens(t, s, ghes)
	key, _ := tlsca.GenerateKey(tlsca.AlgECDSAP256, clock.Rand)

	gh := oidcissuer.GitHubClaims("org/repo-a", "refs/heads/main", "")
	gh["aud"] = s.ClusterName()
	res, err := s.JoinBot(ctx, "10.0.0.1:1", types.JoinMethodGitHub, "gh\n"+ghes.Sign(gh), "runner", key.Public(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	insts, err := s.BotInstances(ctx, "ci")
	if err != nil || len(insts) != 1 {
		t.Fatalf("instances %v %v", insts, err)
	}
	if bi := insts[0]; bi.ID != res.InstanceID || bi.JoinMethod != "github" || bi.JoinToken != "gh" || bi.JoinClaims["repository"] != "org/repo-a" || bi.JoinClaims["ref"] != "refs/heads/main" {
		t.Fatalf("instance %+v", bi)
	}
	var joined *audit.Event
	for _, e := range rec.Events() {
		if e.Type == audit.BotJoin {
			joined = &e
		}
	}
	if joined == nil || joined.Fields["claims"].(map[string]any)["workflow"] != "deploy" {
		t.Fatalf("bot.join event %+v", joined)
	}

	gl := oidcissuer.GitLabClaims("group/app", "main", true)
	gl["aud"] = s.ClusterName()
	if _, err := s.JoinBot(ctx, "10.0.0.1:1", types.JoinMethodGitLab, "gl\n"+ghes.Sign(gl), "runner", key.Public(), time.Hour); err == nil {
		t.Fatal("a GitLab token whose issuer is the GHES path joined")
	}
}

// TestCIJoinRefusals is the refusal table: each case its own message, an audit event,
// and no certificate (no bot instance).
func TestCIJoinRefusals(t *testing.T) {
	ctx := context.Background()
	is := oidcissuer.Start(t, oidcissuer.Options{})
	other := oidcissuer.Start(t, oidcissuer.Options{})
	rec := &audit.Recorder{}
	s, clk := newTestServer(t, Config{OIDCClient: is.Client, Audit: rec, JoinRate: 1000})
	clk.Advance(time.Until(clk.Now()) * -1)
	// One token per method: GitLab and generic OIDC trust the same loopback issuer (a
	// GitLab domain is an issuer at the root), GitHub the GHES layout of another one.
	ctx2 := context.Background()
	if _, _, err := s.CreateBot(ctx2, Actor{}, types.NewBot("ci", "access"), time.Hour); err != nil {
		t.Fatal(err)
	}
	put := func(name, method string, spec types.TokenSpec) {
		putJoinToken(t, s, name, types.TokenRoleBot, "ci", method, spec)
	}
	put("gl", types.JoinMethodGitLab, types.TokenSpec{GitLab: &types.GitLabJoin{Domain: is.Host,
		Allow: []types.GitLabRule{{ProjectPath: "group/app", RefProtected: "true"}, {ProjectPath: "group/repo-*", Environment: "prod"}}}})
	put("any", types.JoinMethodOIDC, types.TokenSpec{OIDC: &types.OIDCJoin{Issuer: is.URL, Audience: "keyport",
		Allow: []types.OIDCRule{{Claims: map[string]string{"sub": "org:acme:project:*"}}}}})
	key, _ := tlsca.GenerateKey(tlsca.AlgECDSAP256, clock.Rand)
	foreign, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, kid := is.Key()

	good := func() map[string]any {
		c := oidcissuer.GitLabClaims("group/app", "main", true)
		c["aud"] = s.ClusterName()
		return is.Claims(c)
	}
	with := func(kv ...any) map[string]any {
		c := good()
		for i := 0; i+1 < len(kv); i += 2 {
			c[kv[i].(string)] = kv[i+1]
		}
		return c
	}
	now := time.Now()
	replayed := is.Sign(good())
	if _, err := s.JoinBot(ctx, "10.0.0.2:1", "gitlab", "gl\n"+replayed, "h", key.Public(), time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateLock(ctx, Actor{}, types.LockTarget{Bot: "locked"}, "compromised runner", nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.CreateBot(ctx, Actor{}, types.NewBot("locked", "access"), time.Hour); err != nil {
		t.Fatal(err)
	}
	putJoinToken(t, s, "gl-locked", types.TokenRoleBot, "locked", types.JoinMethodGitLab,
		types.TokenSpec{GitLab: &types.GitLabJoin{Domain: is.Host, Allow: []types.GitLabRule{{ProjectPath: "group/app"}}}})

	cases := []struct {
		name, method, token, msg string
	}{
		{"wrong audience", "gitlab", "gl\n" + is.Sign(with("aud", "other-cluster")), `does not include "keyport.example.com"`},
		{"wrong issuer", "gitlab", "gl\n" + other.Sign(without(good(), "iss")), "but the join token trusts"},
		{"expired", "gitlab", "gl\n" + is.Sign(with("exp", now.Add(-2*time.Minute).Unix())), "expired at"},
		{"not yet valid", "gitlab", "gl\n" + is.Sign(with("nbf", now.Add(10*time.Minute).Unix())), "not valid before"},
		{"unknown key id after a refresh", "gitlab", "gl\n" + oidcissuer.SignWith(foreign, "rotated-away", "ES256", good()), `key id "rotated-away"`},
		{"alg none", "gitlab", "gl\n" + noneToken(t, good()), `"none" is refused`},
		{"HS256 signed with the issuer's public key", "gitlab", "gl\n" + oidcissuer.SignWith(is.PublicKeyDER(), kid, "HS256", good()), `"HS256" is refused`},
		{"a signature by another key under the issuer's key id", "gitlab", "gl\n" + oidcissuer.SignWith(foreign, kid, "ES256", good()), "does not verify"},
		{"a project that matches no rule", "gitlab", "gl\n" + is.Sign(with("project_path", "group/other")), `no allow rule of join token "gl" matches this ID token`},
		{"an unprotected ref", "gitlab", "gl\n" + is.Sign(with("ref_protected", "false")), `ref_protected "false"`},
		{"an environment that matches no rule", "gitlab", "gl\n" + is.Sign(with("project_path", "group/repo-x", "environment", "staging")), `environment "staging"`},
		{"a glob that must not match (repo-* vs repo)", "gitlab", "gl\n" + is.Sign(with("project_path", "group/repo", "environment", "prod")), `project_path "group/repo"`},
		{"a generic claim that matches no rule", "oidc", "any\n" + is.Sign(with("aud", "keyport", "sub", "org:other:project:x")), `sub "org:other:project:x"`},
		{"a token for a locked bot", "gitlab", "gl-locked\n" + is.Sign(good()), `bot "locked" is locked: compromised runner`},
		{"a replayed ID token", "gitlab", "gl\n" + replayed, "has already been used to join"},
		{"the wrong method for the token", "github", "gl\n" + is.Sign(good()), "is for join method gitlab, not github"},
		{"no such token", "gitlab", "nope\n" + is.Sign(good()), `there is no join token named "nope"`},
		{"no ID token", "gitlab", "gl", "needs the token's name and the platform's ID token"},
		{"not a JWT", "gitlab", "gl\nnot-a-jwt", "not a JWT"},
	}
	seen := map[string]string{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := rec.Count(audit.BotJoinFailure)
			insts, _ := s.BotInstances(ctx, "")
			res, err := s.JoinBot(ctx, "10.0.0.3:1", c.method, c.token, "h", key.Public(), time.Hour)
			if err == nil || res != nil {
				t.Fatal("joined")
			}
			if !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("message %q lacks %q", err, c.msg)
			}
			if prev, dup := seen[err.Error()]; dup {
				t.Errorf("same message as %q: %v", prev, err)
			}
			seen[err.Error()] = c.name
			if rec.Count(audit.BotJoinFailure) != before+1 {
				t.Error("no bot.join.failure event")
			}
			if after, _ := s.BotInstances(ctx, ""); len(after) != len(insts) {
				t.Error("a bot instance was created")
			}
		})
	}
	if len(cases) < 15 {
		t.Fatalf("only %d refusals", len(cases))
	}
}

func without(c map[string]any, k string) map[string]any {
	delete(c, k)
	return c
}

func noneToken(t *testing.T, claims map[string]any) string {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	parts := strings.Split(oidcissuer.SignWith(k, "", "ES256", claims), ".")
	return "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0." + parts[1] + "."
}

// BenchmarkGitHubJoin is the github join with the issuer's key set cached: ID token
// verification, rule matching, the jti record, the instance and the certificate.
func BenchmarkGitHubJoin(b *testing.B) {
	ctx := context.Background()
	ghes := oidcissuer.Start(b, oidcissuer.Options{PathPrefix: "/_services/token"})
	s, clk := newTestServer(b, Config{OIDCClient: ghes.Client, JoinRate: 1 << 30})
	clk.Advance(time.Until(clk.Now()) * -1)
	if _, _, err := s.CreateBot(ctx, Actor{}, types.NewBot("ci", "access"), time.Hour); err != nil {
		b.Fatal(err)
	}
	putJoinToken(b, s, "gh", types.TokenRoleBot, "ci", types.JoinMethodGitHub,
		types.TokenSpec{GitHub: &types.GitHubJoin{EnterpriseServerHost: ghes.Host, Allow: []types.GitHubRule{{Repository: "org/*", Ref: "refs/heads/main"}}}})
	key, _ := tlsca.GenerateKey(tlsca.AlgECDSAP256, clock.Rand)
	c := oidcissuer.GitHubClaims("org/repo", "refs/heads/main", "")
	c["aud"] = s.ClusterName()
	tokens := make([]string, b.N+1)
	for i := range tokens {
		tokens[i] = "gh\n" + ghes.Sign(c)
	}
	if _, err := s.JoinBot(ctx, "10.0.0.1:1", "github", tokens[b.N], "h", key.Public(), time.Hour); err != nil {
		b.Fatal(err) // warms the discovery document and key set
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.JoinBot(ctx, "10.0.0.1:1", "github", tokens[i], "h", key.Public(), time.Hour); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "joins/s")
}

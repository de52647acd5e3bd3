package auth

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/keyport/keyport/internal/backend"
	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/testenv/oidcissuer"
	"github.com/keyport/keyport/internal/types"
)

// The ID token checks: the connector's audience, the login's nonce, the issuer, expiry
// and signature. Each refusal says which.
func TestVerifyIDToken(t *testing.T) {
	is := oidcissuer.Start(t, oidcissuer.Options{})
	ctx := oidc.ClientContext(context.Background(), is.Client)
	v := oidc.NewVerifier(is.URL, oidc.NewRemoteKeySet(ctx, is.URL+"/.well-known/jwks"), &oidc.Config{ClientID: "keyport", SupportedSigningAlgs: []string{"ES256"}})
	good := map[string]any{"aud": "keyport", "sub": "u1", "nonce": "n1", "email": "alice@example.com"}
	with := func(k string, val any) map[string]any {
		c := map[string]any{}
		for k, v := range good {
			c[k] = v
		}
		c[k] = val
		return c
	}
	for _, tc := range []struct {
		name   string
		claims map[string]any
		nonce  string
		want   string
	}{
		{"valid", good, "n1", ""},
		{"another audience", with("aud", "another-client"), "n1", `expected audience "keyport"`},
		{"another login's nonce", good, "n2", "nonce is not this login's"},
		{"another issuer", with("iss", "https://evil.example.com"), "n1", "id token issued by a different provider"},
		{"expired", with("exp", time.Now().Add(-time.Hour).Unix()), "n1", "token is expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			claims, err := verifyIDToken(ctx, v, is.Sign(tc.claims), tc.nonce)
			if tc.want == "" {
				if err != nil || claims["email"] != "alice@example.com" {
					t.Fatalf("claims %v, err %v", claims, err)
				}
				return
			}
			if !errs.Is(err, errs.AccessDenied) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want access denied containing %q", err, tc.want)
			}
		})
	}
	// A token signed by another key.
	forged := oidcissuer.SignWith(mustKey(t), "other", "ES256", is.Claims(good))
	if _, err := verifyIDToken(ctx, v, forged, "n1"); !errs.Is(err, errs.AccessDenied) {
		t.Errorf("a token signed with another key: %v", err)
	}
}

func mustKey(t *testing.T) any {
	t.Helper()
	other := oidcissuer.Start(t, oidcissuer.Options{})
	k, _ := other.Key()
	return k
}

func TestMapClaims(t *testing.T) {
	c := &types.OIDCConnector{Spec: types.OIDCConnectorSpec{UsernameClaim: "email", ClaimsToRoles: []types.ClaimMapping{
		{Claim: "groups", Value: "platform", Roles: []string{"sso-kube"}},
		{Claim: "groups", Value: "^admin-.*$", Roles: []string{"editor", "sso-kube"}},
		{Claim: "email", Value: "*@example.com", Roles: []string{"auditor"}},
	}}}
	res, err := mapClaims(c, map[string]any{"email": "alice@example.com", "groups": []any{"platform", "admin-db"}, "aud": "keyport", "email_verified": true})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(res.Roles, ",") != "sso-kube,editor,auditor" || len(res.Mappings) != 3 {
		t.Errorf("roles %v, mappings %v", res.Roles, res.Mappings)
	}
	if strings.Join(res.Traits["groups"], ",") != "platform,admin-db" || res.Traits["aud"] != nil || res.Traits["email_verified"] != nil {
		t.Errorf("traits %v", res.Traits)
	}
	if _, err := mapClaims(c, map[string]any{"sub": "x"}); err == nil || !strings.Contains(err.Error(), `no "email" claim`) {
		t.Errorf("no user name claim: %v", err)
	}
}

func TestCheckLoopbackRedirect(t *testing.T) {
	for u, ok := range map[string]bool{
		"http://127.0.0.1:4000/callback": true, "http://localhost:4000/cb": true, "http://[::1]:4000/": true,
		"https://127.0.0.1:4000/callback": false, "http://evil.example.com:80/": false, "http://127.0.0.1/callback": false,
		"http://user@127.0.0.1:4000/": false, "javascript:alert(1)": false,
	} {
		if err := checkLoopbackRedirect(u); (err == nil) != ok {
			t.Errorf("%s: err %v, want ok=%v", u, err, ok)
		}
	}
}

// The GitHub flow against a stand-in for github.com and its API (the real one is not
// reachable from tests): the code exchange carries the PKCE verifier, and teams map to
// roles and traits.
func TestGithubLogin(t *testing.T) {
	var gotVerifier string
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login/oauth/access_token", func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		gotVerifier = r.PostForm.Get("code_verifier")
		if r.PostForm.Get("code") != "the-code" {
			http.Error(w, `{"error":"bad_verification_code"}`, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"access_token":"gho_token","token_type":"bearer"}`))
	})
	mux.HandleFunc("GET /user", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer gho_token" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte(`{"login":"octocat","id":42}`))
	})
	mux.HandleFunc("GET /user/teams", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`[{"slug":"platform","organization":{"login":"acme"}},{"slug":"web","organization":{"login":"acme"}}]`))
	})
	gh := httptest.NewServer(mux)
	defer gh.Close()
	s, _ := newTestServer(t, Config{OIDCClient: gh.Client()})
	c := &types.GithubConnector{Header: types.Header{Kind: types.KindGithub, Metadata: types.Metadata{Name: "github"}}, Spec: types.GithubConnectorSpec{
		ClientID: "id", ClientSecret: "secret", RedirectURL: "https://proxy.example.com/v1/webapi/github/callback",
		EndpointURL: "http://127.0.0.1", APIEndpointURL: gh.URL,
		TeamsToRoles: []types.TeamMapping{{Organization: "acme", Team: "platform", Roles: []string{"editor"}}, {Organization: "other", Team: "x", Roles: []string{"auditor"}}}}}
	c.Spec.EndpointURL = gh.URL
	res, id, err := s.githubLogin(context.Background(), c, &ssoRequest{Verifier: "the-verifier"}, "the-code")
	if err != nil {
		t.Fatal(err)
	}
	if gotVerifier != "the-verifier" || id != "42" || res.User != "octocat" || strings.Join(res.Roles, ",") != "editor" ||
		strings.Join(res.Traits["github_teams"], ",") != "acme/platform,acme/web" {
		t.Errorf("verifier %q, id %q, result %+v", gotVerifier, id, res)
	}
	if _, _, err := s.githubLogin(context.Background(), c, &ssoRequest{Verifier: "v"}, "a-used-code"); !errs.Is(err, errs.AccessDenied) {
		t.Errorf("a refused code: %v", err)
	}
}

// Only the client holding the secret collects a result; an SSO login never takes over a
// local user; a request whose connector is missing is refused.
func TestSSORequestGuards(t *testing.T) {
	s, _ := newTestServer(t, Config{})
	ctx := context.Background()
	secret := []byte("the client's secret")
	sum := sha256.Sum256(secret)
	r := ssoRequest{Kind: types.KindOIDC, Connector: "dex", SecretHash: sum[:], Status: ssoDone, Result: &SSOResult{User: "alice"}}
	data, _ := json.Marshal(r)
	if _, err := s.cfg.Backend.Create(ctx, backendItem(ssoRequestPrefix+"st", data)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.FinishSSOLogin(ctx, "10.0.0.1:1", "st", []byte("guess")); !errs.Is(err, errs.AccessDenied) {
		t.Errorf("the wrong secret: %v", err)
	}
	if res, err := s.FinishSSOLogin(ctx, "10.0.0.1:1", "st", secret); err != nil || res.User != "alice" {
		t.Errorf("the right secret: %v, %v", res, err)
	}
	if _, err := s.FinishSSOLogin(ctx, "10.0.0.1:1", "st", secret); !errs.Is(err, errs.AccessDenied) {
		t.Errorf("a second collection: %v", err)
	}

	if _, _, err := s.CreateUser(ctx, Actor{}, types.NewUser("alice@example.com", "access")); err != nil {
		t.Fatal(err)
	}
	err := s.putSSOUser(ctx, &ssoRequest{Kind: types.KindOIDC, Connector: "dex", TTL: time.Hour}, &SSOResult{User: "alice@example.com", Roles: []string{"access"}}, "sub-1")
	if !errs.Is(err, errs.AlreadyExists) || !strings.Contains(err.Error(), "cannot take it over") {
		t.Errorf("taking over a local user: %v", err)
	}
	_, _, err = s.CreateSSOAuthRequest(ctx, Actor{}, SSOAuthRequest{Kind: types.KindOIDC, Connector: "nope", ClientRedirectURL: "http://127.0.0.1:1/cb", SecretHash: sum[:], Test: true})
	if !errs.IsNotFound(err) {
		t.Errorf("a missing connector: %v", err)
	}
	if _, err := s.ValidateSSOCallback(ctx, "10.0.0.1:1", types.KindOIDC, "never-issued", "code", ""); !errs.Is(err, errs.AccessDenied) {
		t.Errorf("an unknown state: %v", err)
	}
}

func backendItem(key string, value []byte) backend.Item {
	return backend.Item{Key: []byte(key), Value: value}
}

// Starting SSO logins and delivering callbacks are rate-limited per source.
func TestSSORateLimit(t *testing.T) {
	s, _ := newTestServer(t, Config{})
	ctx := context.Background()
	sum := sha256.Sum256([]byte("x"))
	var err error
	for range ssoRate + 1 {
		_, _, err = s.CreateSSOAuthRequest(ctx, Actor{Addr: "10.0.0.9:1234"}, SSOAuthRequest{Kind: types.KindOIDC, Connector: "nope",
			ClientRedirectURL: "http://127.0.0.1:1/cb", SecretHash: sum[:], Test: true})
	}
	if !errs.Is(err, errs.LimitExceeded) {
		t.Errorf("start %d: %v", ssoRate+1, err)
	}
	for range ssoRate + 1 {
		_, err = s.ValidateSSOCallback(ctx, "10.0.0.9:1234", types.KindOIDC, "st", "code", "")
	}
	if !errs.Is(err, errs.LimitExceeded) {
		t.Errorf("callback %d: %v", ssoRate+1, err)
	}
}

package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/keyport/keyport/internal/access"
	"github.com/keyport/keyport/internal/audit"
	"github.com/keyport/keyport/internal/backend"
	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/types"
)

// sso.go holds single sign-on: `tsh login --auth=NAME` and `tctl sso test NAME` through an
// oidc or github connector. The flow, with every secret checked where it is spent:
//
//  1. The client (tsh, tctl) listens on a loopback port and asks CreateSSOAuthRequest for
//     a login with its public key, that port's URL and the SHA-256 of a secret of its
//     own. The Auth Service stores the request under a fresh random state, with a nonce
//     and a PKCE verifier, for ssoRequestTTL, and returns the provider's authorization
//     URL.
//  2. The browser signs in at the provider, which redirects it to the proxy's callback
//     with the state and a code. ValidateSSOCallback takes the request by its state, once
//     (a replayed callback finds it used), exchanges the code with the PKCE verifier,
//     verifies the ID token (issuer, audience = client_id, expiry, signature, nonce), maps
//     claims or teams to roles and traits, creates or refreshes the temporary user and
//     issues the certificate; the browser is sent on to the client's loopback URL.
//  3. The client calls FinishSSOLogin with the request ID and its secret and receives the
//     certificate (or, for a test, the mapping), once.

// ssoRequestPrefix stores pending SSO requests by their state.
const ssoRequestPrefix = "/sso_requests/"

// ssoRate is how many SSO logins one source may start, and how many callbacks it may
// deliver, per minute: enough for an office behind one address, not for filling the
// backend with pending requests.
const ssoRate = 60

// ssoRequestTTL is how long a person has to complete the provider's sign-in.
const ssoRequestTTL = 10 * time.Minute

// SSO request states.
const (
	ssoPending = "pending"
	ssoDone    = "done"
	ssoFailed  = "failed"
)

type ssoRequest struct {
	Kind, Connector   string
	Test              bool
	PublicKeyDER      []byte
	ClientRedirectURL string
	SecretHash        []byte
	Nonce, Verifier   string
	TTL               time.Duration
	Created           time.Time
	Status            string
	Error             string `json:",omitempty"`
	Result            *SSOResult
}

// SSOResult is what a completed SSO login gives its client: the certificate (none for
// a test) and the mapping that produced it.
type SSOResult struct {
	User     string              `json:"user"`
	Roles    []string            `json:"roles"`
	Traits   map[string][]string `json:"traits"`
	CertPEM  []byte              `json:"cert_pem,omitempty"`
	Claims   map[string]any      `json:"claims,omitempty"`
	Expires  time.Time           `json:"expires"`
	Mappings []string            `json:"mappings,omitempty"` // which entries of the connector matched
}

// SSOAuthRequest is what CreateSSOAuthRequest asks for.
type SSOAuthRequest struct {
	Kind, Connector   string
	PublicKeyDER      []byte
	ClientRedirectURL string
	// SecretHash is the SHA-256 of a secret the client keeps, which FinishSSOLogin wants.
	SecretHash []byte
	TTL        time.Duration
	// Test (tctl sso test) maps the login and issues nothing.
	Test bool
}

// CreateSSOAuthRequest starts an SSO login or test and returns its ID and the URL the
// browser must open.
func (s *Server) CreateSSOAuthRequest(ctx context.Context, a Actor, req SSOAuthRequest) (id, authURL string, err error) {
	if src := sourceHost(a.Addr); !s.ssoLimiter.Allow("start\x00" + src) {
		return "", "", errs.LimitExceededf("too many SSO logins started from %s; wait a minute and try again", src)
	}
	if req.Kind != types.KindOIDC && req.Kind != types.KindGithub {
		return "", "", errs.BadParameterf("SSO connector kind %q is not oidc or github", req.Kind)
	}
	if err := checkLoopbackRedirect(req.ClientRedirectURL); err != nil {
		return "", "", err
	}
	if len(req.SecretHash) != sha256.Size {
		return "", "", errs.BadParameterf("an SSO request needs the SHA-256 of the client's secret")
	}
	if !req.Test {
		if _, err := ParsePublicKey(req.PublicKeyDER); err != nil {
			return "", "", err
		}
	}
	conn, err := s.GetResource(ctx, req.Kind, req.Connector)
	if errs.IsNotFound(err) {
		return "", "", errs.NotFoundf("no %s connector named %q (see tctl get %s)", req.Kind, req.Connector, req.Kind)
	}
	if err != nil {
		return "", "", err
	}
	state, err := randomToken(s.cfg.Rand, 32)
	if err != nil {
		return "", "", err
	}
	nonce, err := randomToken(s.cfg.Rand, 32)
	if err != nil {
		return "", "", err
	}
	verifier := oauth2.GenerateVerifier()
	r := ssoRequest{Kind: req.Kind, Connector: req.Connector, Test: req.Test, PublicKeyDER: req.PublicKeyDER, ClientRedirectURL: req.ClientRedirectURL,
		SecretHash: req.SecretHash, Nonce: nonce, Verifier: verifier, TTL: req.TTL, Created: s.cfg.Clock.Now().UTC(), Status: ssoPending}
	switch c := conn.(type) {
	case *types.OIDCConnector:
		oc, _, err := s.oidcConfig(ctx, c)
		if err != nil {
			return "", "", err
		}
		authURL = oc.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier))
	case *types.GithubConnector:
		authURL = githubConfig(c).AuthCodeURL(state, oauth2.S256ChallengeOption(verifier))
	}
	data, err := json.Marshal(r)
	if err != nil {
		return "", "", err
	}
	if _, err := s.cfg.Backend.Create(ctx, backend.Item{Key: []byte(ssoRequestPrefix + state), Value: data, Expires: r.Created.Add(ssoRequestTTL)}); err != nil {
		return "", "", err
	}
	return state, authURL, nil
}

// checkLoopbackRedirect: the browser is sent back only to the client's own machine.
func checkLoopbackRedirect(v string) error {
	u, err := url.Parse(v)
	if err != nil || u.Scheme != "http" || u.User != nil || u.Port() == "" {
		return errs.BadParameterf("the client's redirect URL must be http://127.0.0.1:PORT/… (a loopback listener), not %q", v)
	}
	if ip := net.ParseIP(u.Hostname()); (ip == nil || !ip.IsLoopback()) && u.Hostname() != "localhost" {
		return errs.BadParameterf("the client's redirect URL must be on a loopback address, not %q", u.Hostname())
	}
	return nil
}

func randomToken(r interface{ Read([]byte) (int, error) }, n int) (string, error) {
	b := make([]byte, n)
	if _, err := r.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// oidcConfig discovers the provider's endpoints.
func (s *Server) oidcConfig(ctx context.Context, c *types.OIDCConnector) (*oauth2.Config, *oidc.Provider, error) {
	ctx = oidc.ClientContext(ctx, s.ssoClient())
	provider, err := oidc.NewProvider(ctx, c.Spec.IssuerURL)
	if err != nil {
		return nil, nil, errs.BadParameterf("oidc connector %q: cannot read the provider's discovery document at %s: %v", c.GetName(), c.Spec.IssuerURL, err)
	}
	scopes := []string{oidc.ScopeOpenID}
	for _, sc := range c.Spec.Scope {
		if !slices.Contains(scopes, sc) {
			scopes = append(scopes, sc)
		}
	}
	return &oauth2.Config{ClientID: c.Spec.ClientID, ClientSecret: c.Spec.ClientSecret, RedirectURL: c.Spec.RedirectURL,
		Endpoint: provider.Endpoint(), Scopes: scopes}, provider, nil
}

func githubConfig(c *types.GithubConnector) *oauth2.Config {
	base := strings.TrimSuffix(c.Spec.EndpointURL, "/")
	return &oauth2.Config{ClientID: c.Spec.ClientID, ClientSecret: c.Spec.ClientSecret, RedirectURL: c.Spec.RedirectURL,
		Endpoint: oauth2.Endpoint{AuthURL: base + "/login/oauth/authorize", TokenURL: base + "/login/oauth/access_token"},
		Scopes:   []string{"read:org"}}
}

func (s *Server) ssoClient() *http.Client {
	if s.cfg.OIDCClient != nil {
		return s.cfg.OIDCClient
	}
	return &http.Client{Timeout: 15 * time.Second}
}

// ErrSSOState is the refusal of a callback whose state names no pending request.
var ErrSSOState = errors.New("unknown, expired or already used SSO login state")

// ValidateSSOCallback completes the provider's side of a login: see the file comment. It
// returns the URL to send the browser to (the client's loopback listener). An unknown or
// used state is refused outright; any later failure is recorded on the request, so that
// the client can show it, and the browser is still sent on.
func (s *Server) ValidateSSOCallback(ctx context.Context, addr, kind, state, code, idpError string) (string, error) {
	actor := Actor{Addr: addr}
	if src := sourceHost(addr); !s.ssoLimiter.Allow("callback\x00" + src) {
		return "", errs.LimitExceededf("too many SSO callbacks from %s; wait a minute and try again", src)
	}
	it, err := s.cfg.Backend.Get(ctx, []byte(ssoRequestPrefix+state))
	if errs.IsNotFound(err) || state == "" {
		s.emit(ctx, actor, audit.Event{Type: audit.UserLoginFailure, Message: ErrSSOState.Error(), Fields: map[string]any{"method": "sso"}})
		return "", errs.AccessDeniedf("%v: start the login again (tsh login --auth=…)", ErrSSOState)
	}
	if err != nil {
		return "", err
	}
	var r ssoRequest
	if err := json.Unmarshal(it.Value, &r); err != nil {
		return "", fmt.Errorf("decoding SSO request: %w", err)
	}
	if r.Status != ssoPending || r.Kind != kind {
		s.emit(ctx, actor, audit.Event{Type: audit.UserLoginFailure, Message: ErrSSOState.Error(), Fields: map[string]any{"method": "sso", "connector": r.Connector}})
		return "", errs.AccessDeniedf("%v: start the login again (tsh login --auth=…)", ErrSSOState)
	}
	// Take the request first, so that a replayed callback finds it used.
	r.Status = ssoFailed
	r.Error = "the login did not complete"
	data, _ := json.Marshal(r)
	if _, err := s.cfg.Backend.CompareAndSwap(ctx, backend.Item{Key: it.Key, Value: data, Expires: it.Expires}, it.Revision); err != nil {
		if errs.IsCompareFailed(err) {
			return "", errs.AccessDeniedf("%v: start the login again (tsh login --auth=…)", ErrSSOState)
		}
		return "", err
	}
	res, lerr := s.completeSSO(ctx, actor, &r, code, idpError)
	if lerr != nil {
		r.Error = lerr.Error()
		s.emit(ctx, actor, audit.Event{Type: audit.UserLoginFailure, Message: lerr.Error(), Fields: map[string]any{"method": r.Kind, "connector": r.Connector, "test": r.Test}})
	} else {
		r.Status, r.Error, r.Result = ssoDone, "", res
	}
	data, _ = json.Marshal(r)
	if _, err := s.cfg.Backend.Put(ctx, backend.Item{Key: it.Key, Value: data, Expires: it.Expires}); err != nil {
		return "", err
	}
	status := "ok"
	if lerr != nil {
		status = "error"
	}
	return r.ClientRedirectURL + "?status=" + status, nil
}

func (s *Server) completeSSO(ctx context.Context, actor Actor, r *ssoRequest, code, idpError string) (*SSOResult, error) {
	if idpError != "" {
		return nil, errs.AccessDeniedf("the identity provider refused the login: %s", idpError)
	}
	if code == "" {
		return nil, errs.BadParameterf("the identity provider's callback carries no code")
	}
	conn, err := s.GetResource(ctx, r.Kind, r.Connector)
	if err != nil {
		return nil, err
	}
	var res *SSOResult
	var identity string
	switch c := conn.(type) {
	case *types.OIDCConnector:
		res, identity, err = s.oidcLogin(ctx, c, r, code)
	case *types.GithubConnector:
		res, identity, err = s.githubLogin(ctx, c, r, code)
	}
	if err != nil {
		return nil, err
	}
	if len(res.Roles) == 0 {
		return nil, errs.AccessDeniedf("%s connector %q maps %s to no role: no entry of its %s matches (tctl sso test %s shows the claims)",
			r.Kind, r.Connector, res.User, map[string]string{types.KindOIDC: "claims_to_roles", types.KindGithub: "teams_to_roles"}[r.Kind], r.Connector)
	}
	for _, role := range res.Roles {
		if _, err := s.cache.Get(types.KindRole, role); err != nil {
			return nil, errs.NotFoundf("%s connector %q maps %s to role %q, which does not exist", r.Kind, r.Connector, res.User, role)
		}
	}
	if r.Test {
		return res, nil
	}
	if err := s.putSSOUser(ctx, r, res, identity); err != nil {
		return nil, err
	}
	pub, err := ParsePublicKey(r.PublicKeyDER)
	if err != nil {
		return nil, err
	}
	actor.Identity = nil
	cert, err := s.SignUser(ctx, actor, res.User, pub, r.TTL, "", nil)
	if err != nil {
		return nil, err
	}
	res.CertPEM = cert
	res.Claims = nil
	s.emit(ctx, Actor{Addr: actor.Addr}, audit.Event{Type: audit.UserLogin, Success: true, User: res.User, Roles: res.Roles,
		Fields: map[string]any{"method": r.Kind, "connector": r.Connector, "identity": identity}})
	return res, nil
}

// oidcLogin exchanges the code and verifies the ID token.
func (s *Server) oidcLogin(ctx context.Context, c *types.OIDCConnector, r *ssoRequest, code string) (*SSOResult, string, error) {
	oc, provider, err := s.oidcConfig(ctx, c)
	if err != nil {
		return nil, "", err
	}
	cctx := oidc.ClientContext(ctx, s.ssoClient())
	tok, err := oc.Exchange(cctx, code, oauth2.VerifierOption(r.Verifier))
	if err != nil {
		return nil, "", errs.AccessDeniedf("the identity provider refused the code (used already, expired, or not this login's): %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return nil, "", errs.AccessDeniedf("the identity provider returned no ID token")
	}
	claims, err := verifyIDToken(cctx, provider.Verifier(&oidc.Config{ClientID: c.Spec.ClientID}), raw, r.Nonce)
	if err != nil {
		return nil, "", err
	}
	res, err := mapClaims(c, claims)
	if err != nil {
		return nil, "", err
	}
	sub, _ := claims["sub"].(string)
	return res, sub, nil
}

// verifyIDToken checks an ID token's signature, issuer, audience (the connector's
// client_id), expiry and nonce, and returns its claims.
func verifyIDToken(ctx context.Context, v *oidc.IDTokenVerifier, raw, nonce string) (map[string]any, error) {
	idt, err := v.Verify(ctx, raw)
	if err != nil {
		return nil, errs.AccessDeniedf("the ID token is not valid for this connector: %v", err)
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(nonce)) != 1 {
		return nil, errs.AccessDeniedf("the ID token's nonce is not this login's: the token was issued for another login")
	}
	claims := map[string]any{}
	if err := idt.Claims(&claims); err != nil {
		return nil, errs.AccessDeniedf("the ID token's claims are unreadable: %v", err)
	}
	return claims, nil
}

// mapClaims applies claims_to_roles; every string or list-of-strings claim becomes a
// trait of its name.
func mapClaims(c *types.OIDCConnector, claims map[string]any) (*SSOResult, error) {
	name, _ := claims[c.Spec.UsernameClaim].(string)
	if name == "" {
		return nil, errs.AccessDeniedf("the ID token has no %q claim for the user name (the connector's username_claim)", c.Spec.UsernameClaim)
	}
	res := &SSOResult{User: name, Traits: map[string][]string{}, Claims: claims}
	for k, v := range claims {
		if protocolClaims[k] {
			continue
		}
		if vals := claimStrings(v); len(vals) > 0 {
			res.Traits[k] = vals
		}
	}
	for i, m := range c.Spec.ClaimsToRoles {
		for _, v := range claimStrings(claims[m.Claim]) {
			if access.MatchPattern(m.Value, v) {
				res.Mappings = append(res.Mappings, fmt.Sprintf("claims_to_roles[%d]: %s=%s -> %s", i, m.Claim, v, strings.Join(m.Roles, ", ")))
				for _, r := range m.Roles {
					if !slices.Contains(res.Roles, r) {
						res.Roles = append(res.Roles, r)
					}
				}
				break
			}
		}
	}
	return res, nil
}

// protocolClaims are the ID token's own bookkeeping, which say nothing about the person
// and do not become traits.
var protocolClaims = map[string]bool{"iss": true, "aud": true, "exp": true, "nbf": true, "iat": true, "jti": true,
	"nonce": true, "at_hash": true, "c_hash": true, "azp": true, "auth_time": true, "acr": true, "amr": true, "sid": true}

func claimStrings(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, x := range v {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	case []string:
		return v
	}
	return nil
}

// putSSOUser creates or refreshes the temporary user an SSO login stands for. A local
// user of the same name is never taken over.
func (s *Server) putSSOUser(ctx context.Context, r *ssoRequest, res *SSOResult, identity string) error {
	if existing, err := s.GetResource(ctx, types.KindUser, res.User); err == nil {
		if u := existing.(*types.User); u.Spec.CreatedBy == nil {
			return errs.AlreadyExistsf("a local user named %q exists; an SSO login cannot take it over", res.User)
		}
	} else if !errs.IsNotFound(err) {
		return err
	}
	ttl := r.TTL
	if ttl <= 0 {
		ttl = DefaultUserTTL
	}
	for _, role := range s.cache.Roles(res.Roles) {
		if m := time.Duration(role.Spec.Options.MaxSessionTTL); m > 0 && m < ttl {
			ttl = m
		}
	}
	now := s.cfg.Clock.Now().UTC()
	exp := now.Add(ttl).Truncate(time.Second).Add(time.Second)
	res.Expires = exp
	u := types.NewUser(res.User, res.Roles...)
	u.Spec.Traits = res.Traits
	u.Metadata.Expires = &exp
	u.Spec.CreatedBy = &types.CreatedBy{Connector: types.ConnectorRef{Type: r.Kind, ID: r.Connector, Identity: identity}, Time: now.Format(time.RFC3339)}
	if err := u.CheckAndSetDefaults(); err != nil {
		return fmt.Errorf("the SSO user: %w", err)
	}
	_, err := s.PutResource(ctx, Actor{}, u, Upsert, 0)
	return err
}

// FinishSSOLogin hands a completed login's result to the client that started it, once.
func (s *Server) FinishSSOLogin(ctx context.Context, addr, id string, secret []byte) (*SSOResult, error) {
	key := []byte(ssoRequestPrefix + id)
	it, err := s.cfg.Backend.Get(ctx, key)
	if errs.IsNotFound(err) {
		return nil, errs.AccessDeniedf("%v", ErrSSOState)
	}
	if err != nil {
		return nil, err
	}
	var r ssoRequest
	if err := json.Unmarshal(it.Value, &r); err != nil {
		return nil, fmt.Errorf("decoding SSO request: %w", err)
	}
	sum := sha256.Sum256(secret)
	if subtle.ConstantTimeCompare(sum[:], r.SecretHash) != 1 {
		s.emit(ctx, Actor{Addr: addr}, audit.Event{Type: audit.UserLoginFailure, Message: "SSO result asked for without the client's secret", Fields: map[string]any{"method": r.Kind}})
		return nil, errs.AccessDeniedf("this SSO login belongs to another client")
	}
	switch r.Status {
	case ssoPending:
		return nil, errs.NotFoundf("the SSO login has not completed yet")
	case ssoFailed:
		_ = s.cfg.Backend.Delete(ctx, key)
		return nil, errs.AccessDeniedf("SSO login failed: %s", r.Error)
	}
	if err := s.cfg.Backend.Delete(ctx, key); err != nil {
		return nil, err
	}
	return r.Result, nil
}

// SortedTraits returns trait names in order, for printing.
func SortedTraits(t map[string][]string) []string {
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

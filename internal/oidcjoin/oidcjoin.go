// Package oidcjoin verifies the OIDC ID tokens that CI platforms give their jobs —
// GitHub Actions, GitLab CI, or any other issuer — for the secretless join methods
// github, gitlab and oidc, and matches their claims against a join token's allow rules.
//
// Verification is go-oidc's (discovery, a JWKS cache that is fetched again when a token
// names a key id it has not seen, issuer and audience checks, signature algorithms)
// with Keyport's rules on top: only asymmetric algorithms, exp required, nbf and iat
// checked with a bounded clock skew, and a message that says which check failed.
package oidcjoin

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"

	"github.com/keyport/keyport/internal/clock"
	"github.com/keyport/keyport/internal/errs"
)

// Algorithms are the signature algorithms an ID token may use: asymmetric only. A token
// signed with HS256 (whose key a verifier would have to share) or not signed at all is
// refused before any key is looked at.
var Algorithms = []string{
	oidc.RS256, oidc.RS384, oidc.RS512, oidc.ES256, oidc.ES384, oidc.ES512,
	oidc.PS256, oidc.PS384, oidc.PS512, oidc.EdDSA,
}

// DefaultSkew is how far the issuer's clock may be ahead of or behind ours.
const DefaultSkew = 30 * time.Second

// discoveryTTL is how long an issuer's discovery document is reused.
const discoveryTTL = time.Hour

// Reason says which check refused a token; it is the audit event's reason.
type Reason string

// Refusal reasons.
const (
	Malformed      Reason = "malformed"
	Algorithm      Reason = "algorithm"
	WrongIssuer    Reason = "issuer"
	WrongAudience  Reason = "audience"
	Signature      Reason = "signature"
	Expired        Reason = "expired"
	NotYetValid    Reason = "not_yet_valid"
	IssuedInFuture Reason = "issued_in_future"
	Discovery      Reason = "discovery"
	NoRuleMatched  Reason = "no_rule_matched"
)

// Error is a refused ID token.
type Error struct {
	Reason Reason
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

func refuse(r Reason, format string, args ...any) error {
	return errs.Wrap(errs.AccessDenied, &Error{Reason: r, Msg: fmt.Sprintf(format, args...)})
}

// ReasonOf returns the reason of a refusal made here, or "".
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

// Config configures a Verifier.
type Config struct {
	// Client fetches discovery documents and key sets. The default trusts the system
	// roots (and SSL_CERT_FILE) and times out after 10 seconds.
	Client *http.Client
	Clock  clock.Clock
	// Skew is the clock skew allowed on exp, nbf and iat; DefaultSkew when zero.
	Skew time.Duration
}

// Verifier verifies ID tokens of any number of issuers, caching each issuer's discovery
// document and keys. It is safe for concurrent use.
type Verifier struct {
	cfg Config

	mu        sync.Mutex
	providers map[string]*provider
}

type provider struct {
	p       *oidc.Provider
	fetched time.Time
}

// New returns a Verifier.
func New(cfg Config) *Verifier {
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
	}
	if cfg.Skew == 0 {
		cfg.Skew = DefaultSkew
	}
	return &Verifier{cfg: cfg, providers: map[string]*provider{}}
}

// Verify checks raw as an ID token of issuer for audience and returns its claims.
func (v *Verifier) Verify(ctx context.Context, issuer, audience, raw string) (map[string]any, error) {
	hdr, payload, err := peekSigned(raw, "ID token")
	if err != nil {
		return nil, err
	}
	if payload.Issuer != issuer {
		return nil, refuse(WrongIssuer, "the ID token was issued by %q, but the join token trusts %q", payload.Issuer, issuer)
	}
	p, err := v.provider(ctx, issuer)
	if err != nil {
		return nil, err
	}
	verifier := p.Verifier(&oidc.Config{ClientID: audience, SupportedSigningAlgs: Algorithms, SkipExpiryCheck: true, Now: v.cfg.Clock.Now})
	tok, err := verifier.Verify(oidc.ClientContext(ctx, v.cfg.Client), raw)
	if err != nil {
		msg := err.Error()
		switch {
		case strings.Contains(msg, "expected audience"):
			return nil, refuse(WrongAudience, "the ID token's audience %q does not include %q (request the token with that audience)", payload.Audience, audience)
		case strings.Contains(msg, "failed to verify signature"), strings.Contains(msg, "failed to verify id token signature"):
			return nil, refuse(Signature, "the ID token's signature does not verify with any key %s publishes (key id %q; its key set was fetched again)", issuer, hdr.Kid)
		default:
			return nil, refuse(Malformed, "the ID token is invalid: %s", strings.TrimPrefix(msg, "oidc: "))
		}
	}
	if err := checkTimes(payload, v.cfg.Clock.Now(), v.cfg.Skew); err != nil {
		return nil, err
	}
	claims := map[string]any{}
	if err := tok.Claims(&claims); err != nil {
		return nil, refuse(Malformed, "the ID token's claims: %v", err)
	}
	return claims, nil
}

// VerifyStatic checks raw against a fixed key set (a Kubernetes cluster's service
// account keys, stored in a join token) for audience, with the same algorithm and time
// rules as Verify; the issuer is not checked (the keys say who signed).
func (v *Verifier) VerifyStatic(jwks, audience, raw string) (map[string]any, error) {
	hdr, payload, err := peekSigned(raw, "token")
	if err != nil {
		return nil, err
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(jwks), &set); err != nil {
		return nil, fmt.Errorf("the join token's key set: %w", err)
	}
	var keys []jose.JSONWebKey
	if hdr.Kid != "" {
		keys = set.Key(hdr.Kid)
		if len(keys) == 0 {
			return nil, refuse(Signature, "the token is signed with key id %q, which is not in the join token's key set", hdr.Kid)
		}
	} else {
		keys = set.Keys
	}
	algs := make([]jose.SignatureAlgorithm, len(Algorithms))
	for i, a := range Algorithms {
		algs[i] = jose.SignatureAlgorithm(a)
	}
	jws, err := jose.ParseSignedCompact(raw, algs)
	if err != nil {
		return nil, refuse(Malformed, "the token is invalid: %v", err)
	}
	var body []byte
	for _, k := range keys {
		if b, err := jws.Verify(k); err == nil {
			body = b
			break
		}
	}
	if body == nil {
		return nil, refuse(Signature, "the token's signature does not verify with the join token's key set (key id %q)", hdr.Kid)
	}
	if !audienceHas(payload.Audience, audience) {
		return nil, refuse(WrongAudience, "the token's audience %v does not include %q (project the service account token with audience %q)", payload.Audience, audience, audience)
	}
	if err := checkTimes(payload, v.cfg.Clock.Now(), v.cfg.Skew); err != nil {
		return nil, err
	}
	claims := map[string]any{}
	if err := json.Unmarshal(body, &claims); err != nil {
		return nil, refuse(Malformed, "the token's claims: %v", err)
	}
	return claims, nil
}

func audienceHas(aud any, want string) bool {
	switch a := aud.(type) {
	case string:
		return a == want
	case []any:
		for _, e := range a {
			if e == want {
				return true
			}
		}
	}
	return false
}

// checkTimes applies exp (required), nbf and iat with skew.
func checkTimes(payload *unverified, now time.Time, skew time.Duration) error {
	if payload.Expiry == nil {
		return refuse(Malformed, "the ID token has no expiry (exp)")
	}
	if exp := time.Unix(int64(*payload.Expiry), 0); !now.Before(exp.Add(skew)) {
		return refuse(Expired, "the ID token expired at %s", exp.UTC().Format(time.RFC3339))
	}
	if payload.NotBefore != nil {
		if nbf := time.Unix(int64(*payload.NotBefore), 0); now.Add(skew).Before(nbf) {
			return refuse(NotYetValid, "the ID token is not valid before %s (now is %s)", nbf.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
		}
	}
	if payload.IssuedAt != nil {
		if iat := time.Unix(int64(*payload.IssuedAt), 0); now.Add(skew).Before(iat) {
			return refuse(IssuedInFuture, "the ID token was issued in the future (%s, now is %s): check the clocks", iat.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
		}
	}
	return nil
}

// provider returns the issuer's cached provider, discovering it when missing or old.
func (v *Verifier) provider(ctx context.Context, issuer string) (*oidc.Provider, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	now := v.cfg.Clock.Now()
	if p := v.providers[issuer]; p != nil && now.Sub(p.fetched) < discoveryTTL {
		return p.p, nil
	}
	// The provider keeps the context for later key-set fetches: give it one that carries
	// the client and is never cancelled; the request's own context bounds discovery.
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	p, err := oidc.NewProvider(oidc.ClientContext(dctx, v.cfg.Client), issuer)
	if err != nil {
		return nil, refuse(Discovery, "cannot read the OIDC discovery document of %s: %v", issuer, err)
	}
	// Re-create it on a long-lived context so the key set it caches can refresh later.
	var meta struct {
		JWKS string `json:"jwks_uri"`
	}
	if err := p.Claims(&meta); err != nil || meta.JWKS == "" {
		return nil, refuse(Discovery, "the OIDC discovery document of %s has no jwks_uri", issuer)
	}
	cfg := oidc.ProviderConfig{IssuerURL: issuer, JWKSURL: meta.JWKS, Algorithms: Algorithms}
	long := cfg.NewProvider(oidc.ClientContext(context.Background(), v.cfg.Client))
	v.providers[issuer] = &provider{p: long, fetched: now}
	return long, nil
}

// header and claims are what is read from a token before its signature is checked, to
// name the reason of a refusal; nothing here is trusted.
type header struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
}

type numericDate float64

type unverified struct {
	Issuer    string       `json:"iss"`
	Audience  any          `json:"aud"`
	Expiry    *numericDate `json:"exp"`
	NotBefore *numericDate `json:"nbf"`
	IssuedAt  *numericDate `json:"iat"`
}

// maxTokenLen bounds what is parsed: a CI platform's ID token is a few KiB.
const maxTokenLen = 16 << 10

// peekSigned is peek, refusing at once a token whose algorithm is not one of
// Algorithms; what names the token in the message.
func peekSigned(raw, what string) (*header, *unverified, error) {
	hdr, payload, err := peek(raw)
	if err != nil {
		return nil, nil, err
	}
	if !slices.Contains(Algorithms, hdr.Alg) {
		return nil, nil, refuse(Algorithm, "the %s's signature algorithm %q is refused: only asymmetric algorithms (%s) are accepted", what, hdr.Alg, strings.Join(Algorithms, ", "))
	}
	return hdr, payload, nil
}

// peek decodes a compact JWS's header and payload without verifying anything.
func peek(raw string) (*header, *unverified, error) {
	if len(raw) > maxTokenLen {
		return nil, nil, refuse(Malformed, "the ID token is longer than %d bytes", maxTokenLen)
	}
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil, nil, refuse(Malformed, "the ID token is not a JWT (want three dot-separated parts, got %d)", len(parts))
	}
	var h header
	if err := decodePart(parts[0], &h); err != nil {
		return nil, nil, refuse(Malformed, "the ID token's header: %v", err)
	}
	var c unverified
	if err := decodePart(parts[1], &c); err != nil {
		return nil, nil, refuse(Malformed, "the ID token's claims: %v", err)
	}
	return &h, &c, nil
}

func decodePart(s string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return fmt.Errorf("not base64url: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	return nil
}

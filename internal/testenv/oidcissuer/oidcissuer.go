// Package oidcissuer is a real OIDC issuer on loopback for tests: discovery and a JWKS
// over TLS, signing keys that can be rotated mid-test, ID tokens shaped like GitHub
// Actions', GitLab CI's or any issuer's, and the GitHub Actions runner's token service
// (ACTIONS_ID_TOKEN_REQUEST_URL) that tbot calls inside a workflow.
package oidcissuer

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Issuer is a running issuer. Its URL is the issuer URL (https://127.0.0.1:PORT, or
// https://127.0.0.1:PORT/_services/token with the GitHub Enterprise Server layout).
type Issuer struct {
	URL string
	// Host is the host:port, for enterprise_server_host and gitlab domain.
	Host string
	// CAFile is a PEM file holding the TLS certificate, for SSL_CERT_FILE.
	CAFile string
	// Client trusts the issuer's TLS certificate.
	Client *http.Client
	// RunnerRequestToken is what the runner token service wants as its bearer token.
	RunnerRequestToken string

	srv *httptest.Server

	mu         sync.Mutex
	keys       []signingKey // keys[0] signs; all are published
	jwksHits   int
	runnerHits int
	// RunnerClaims are the claims the runner token service puts in its tokens.
	runnerClaims map[string]any
}

type signingKey struct {
	id  string
	key *ecdsa.PrivateKey
}

// Options shape the issuer.
type Options struct {
	// PathPrefix is appended to the URL (GitHub Enterprise Server: "/_services/token").
	PathPrefix string
}

// Start runs an issuer until the test ends.
func Start(t testing.TB, opts Options) *Issuer {
	t.Helper()
	is := &Issuer{RunnerRequestToken: randomHex(16)}
	is.addKey()
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+opts.PathPrefix+"/.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, map[string]any{
			"issuer":                                is.URL,
			"jwks_uri":                              is.URL + "/.well-known/jwks",
			"response_types_supported":              []string{"id_token"},
			"subject_types_supported":               []string{"public"},
			"id_token_signing_alg_values_supported": []string{"ES256"},
		})
	})
	mux.HandleFunc("GET "+opts.PathPrefix+"/.well-known/jwks", func(w http.ResponseWriter, _ *http.Request) {
		is.mu.Lock()
		is.jwksHits++
		var set jose.JSONWebKeySet
		for _, k := range is.keys {
			set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.key.Public(), KeyID: k.id, Algorithm: "ES256", Use: "sig"})
		}
		is.mu.Unlock()
		writeJSON(w, set)
	})
	// The runner's token service, as GitHub Actions serves it to a job with
	// `permissions: id-token: write`.
	mux.HandleFunc("GET /runner/token", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+is.RunnerRequestToken {
			http.Error(w, "bad request token", http.StatusUnauthorized)
			return
		}
		is.mu.Lock()
		is.runnerHits++
		claims := map[string]any{}
		for k, v := range is.runnerClaims {
			claims[k] = v
		}
		is.mu.Unlock()
		if aud := r.URL.Query().Get("audience"); aud != "" {
			claims["aud"] = aud
		}
		writeJSON(w, map[string]string{"value": is.Sign(claims)})
	})
	is.srv = httptest.NewTLSServer(mux)
	t.Cleanup(is.srv.Close)
	is.Host = is.srv.Listener.Addr().String()
	is.URL = is.srv.URL + opts.PathPrefix
	is.Client = is.srv.Client()
	is.CAFile = filepath.Join(t.TempDir(), "issuer-ca.pem")
	pemCert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: is.srv.Certificate().Raw})
	if err := os.WriteFile(is.CAFile, pemCert, 0o600); err != nil {
		t.Fatal(err)
	}
	return is
}

// JWKS is the issuer's current key set as JSON (what a static_jwks token stores).
func (is *Issuer) JWKS(t testing.TB) string {
	t.Helper()
	is.mu.Lock()
	defer is.mu.Unlock()
	var set jose.JSONWebKeySet
	for _, k := range is.keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.key.Public(), KeyID: k.id, Algorithm: "ES256", Use: "sig"})
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// RunnerURL is ACTIONS_ID_TOKEN_REQUEST_URL for a job of this issuer (the runner adds
// "&audience=…", so the URL carries a query already, as GitHub's does).
func (is *Issuer) RunnerURL() string { return is.srv.URL + "/runner/token?api-version=2.0" }

// SetRunnerClaims sets the claims the runner token service issues (iss, iat, nbf and
// exp are added).
func (is *Issuer) SetRunnerClaims(c map[string]any) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.runnerClaims = c
}

// RunnerHits counts calls of the runner token service.
func (is *Issuer) RunnerHits() int { is.mu.Lock(); defer is.mu.Unlock(); return is.runnerHits }

// JWKSHits counts fetches of the key set.
func (is *Issuer) JWKSHits() int { is.mu.Lock(); defer is.mu.Unlock(); return is.jwksHits }

// Rotate makes a new signing key; the old ones stay published unless drop is true.
func (is *Issuer) Rotate(drop bool) {
	is.mu.Lock()
	defer is.mu.Unlock()
	k := newKey()
	if drop {
		is.keys = []signingKey{k}
	} else {
		is.keys = append([]signingKey{k}, is.keys...)
	}
}

func (is *Issuer) addKey() { is.keys = append(is.keys, newKey()) }

// Sign issues an ID token with claims; iss, iat, nbf and exp (five minutes) are set when
// claims lacks them.
func (is *Issuer) Sign(claims map[string]any) string {
	is.mu.Lock()
	k := is.keys[0]
	is.mu.Unlock()
	return SignWith(k.key, k.id, "ES256", is.withDefaults(claims))
}

// Key returns the current signing key and its id, for tests that forge tokens.
func (is *Issuer) Key() (*ecdsa.PrivateKey, string) {
	is.mu.Lock()
	defer is.mu.Unlock()
	return is.keys[0].key, is.keys[0].id
}

func (is *Issuer) withDefaults(claims map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range claims {
		out[k] = v
	}
	now := time.Now()
	set := func(k string, v any) {
		if _, ok := out[k]; !ok {
			out[k] = v
		}
	}
	set("iss", is.URL)
	set("iat", now.Unix())
	set("nbf", now.Unix())
	set("exp", now.Add(5*time.Minute).Unix())
	set("jti", randomHex(12))
	return out
}

// Claims returns claims with the issuer's defaults filled in (for tests that sign with
// SignWith themselves).
func (is *Issuer) Claims(c map[string]any) map[string]any { return is.withDefaults(c) }

// SignWith signs claims with key (ECDSA, RSA or a []byte HMAC secret) and algorithm alg.
func SignWith(key any, kid, alg string, claims map[string]any) string {
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(alg), Key: key}, opts)
	if err != nil {
		panic(err)
	}
	raw, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		panic(err)
	}
	return raw
}

// PublicKeyDER is the issuer's current public key in PKIX DER (to forge an HS256 token
// signed with it, the classic key-confusion attack).
func (is *Issuer) PublicKeyDER() []byte {
	k, _ := is.Key()
	der, err := x509.MarshalPKIXPublicKey(k.Public())
	if err != nil {
		panic(err)
	}
	return der
}

// GitHubClaims are the claims of a GitHub Actions job of repository on ref.
func GitHubClaims(repository, ref, environment string) map[string]any {
	owner, _, _ := strings.Cut(repository, "/")
	sub := "repo:" + repository + ":ref:" + ref
	if environment != "" {
		sub = "repo:" + repository + ":environment:" + environment
	}
	c := map[string]any{
		"sub": sub, "repository": repository, "repository_owner": owner, "repository_id": "123456",
		"workflow": "deploy", "actor": "octocat", "ref": ref, "ref_type": "branch",
		"event_name": "push", "run_id": "42", "job_workflow_ref": repository + "/.github/workflows/deploy.yml@" + ref,
	}
	if environment != "" {
		c["environment"] = environment
	}
	return c
}

// GitLabClaims are the claims of a GitLab CI job of project on ref.
func GitLabClaims(project, ref string, protected bool) map[string]any {
	ns, _, _ := strings.Cut(project, "/")
	return map[string]any{
		"sub": "project_path:" + project + ":ref_type:branch:ref:" + ref, "project_path": project, "namespace_path": ns,
		"pipeline_source": "push", "ref": ref, "ref_type": "branch", "ref_protected": map[bool]string{true: "true", false: "false"}[protected],
		"user_login": "gitlab-user", "pipeline_id": "7",
	}
}

func newKey() signingKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return signingKey{id: randomHex(8), key: k}
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

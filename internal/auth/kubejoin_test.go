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

// fakeKube answers TokenReviews from a table of known tokens, as a cluster's API server
// would; it also satisfies KubeReviewer, as the Kubernetes Service's reviewer does.
type fakeKube struct {
	tokens map[string]*ServiceAccountReview
}

func (f *fakeKube) SubjectAccessReview(context.Context, string, string, []string, ResourceAttributes) (bool, string, error) {
	return false, "", nil
}

func (f *fakeKube) ResolveResource(_ context.Context, _, _ string, _ []string, resource string) (string, string, error) {
	return "", resource, nil
}

func (f *fakeKube) TokenReview(_ context.Context, token string) (*ServiceAccountReview, error) {
	if r, ok := f.tokens[token]; ok {
		return r, nil
	}
	return &ServiceAccountReview{Cluster: "kind", Error: "invalid bearer token"}, nil
}

// saReview is what an API server reports for a projected (pod-bound) token.
func saReview(ns, name, pod string) *ServiceAccountReview {
	r := &ServiceAccountReview{Cluster: "kind", Authenticated: true, Username: serviceAccountPrefix + ns + ":" + name,
		Groups: []string{serviceAccountsGroup, serviceAccountsGroup + ":" + ns, "system:authenticated"}}
	if pod != "" {
		r.Extra = map[string][]string{extraPodName: {pod}, "authentication.kubernetes.io/pod-uid": {"uid-" + pod}}
	}
	return r
}

func TestKubernetesJoin(t *testing.T) {
	ctx := context.Background()
	s, clk := newTestServer(t, Config{})
	key, _ := tlsca.GenerateKey(tlsca.AlgECDSAP256, clock.Rand)
	pub := key.Public()

	secret, _, err := s.CreateBot(ctx, Actor{}, types.NewBot("k8s", "access"), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.CreateToken(ctx, Actor{}, types.TokenRoleBot, "k8s", types.JoinMethodKubernetes, "k8s-join", []string{"bots:tbot"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.CreateToken(ctx, Actor{}, types.TokenRoleBot, "k8s", types.JoinMethodKubernetes, "short", []string{"bots:tbot"}, time.Minute); err != nil {
		t.Fatal(err)
	}
	join := func(method, token string) (*CertsResult, error) {
		return s.JoinBot(ctx, "10.0.0.1:1000", method, token, "pod", pub, time.Hour)
	}

	// Before the Kubernetes Service is wired in, the method cannot work, and says why.
	if _, err := join("kubernetes", "k8s-join\ngood"); err == nil || !strings.Contains(err.Error(), "needs the Kubernetes Service") {
		t.Fatalf("without a reviewer: %v", err)
	}
	s.SetKubeReviewer(&fakeKube{tokens: map[string]*ServiceAccountReview{
		"good":     saReview("bots", "tbot", "tbot-0"),
		"good2":    saReview("bots", "tbot", "tbot-1"),
		"other":    saReview("bots", "other", "other-0"),
		"unbound":  saReview("bots", "tbot", ""),
		"not-a-sa": {Cluster: "kind", Authenticated: true, Username: "alice", Groups: []string{"system:authenticated"}},
	}})

	// The same kubernetes token joins again and again (every pod of a Deployment uses
	// it); each join is a new bot instance.
	first, err := join("kubernetes", "k8s-join\ngood")
	if err != nil {
		t.Fatal(err)
	}
	second, err := join("kubernetes", "k8s-join\ngood2")
	if err != nil {
		t.Fatal(err)
	}
	if first.InstanceID == second.InstanceID || first.Generation != 1 {
		t.Fatalf("instances %s and %s (generation %d)", first.InstanceID, second.InstanceID, first.Generation)
	}
	cert, err := tlsca.ParseCertPEM(first.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := tlsca.FromCertificate(cert); id == nil || id.BotName != "k8s" || !id.Renewable || id.BotInstanceID != first.InstanceID {
		t.Fatalf("identity = %+v", id)
	}
	bis, err := s.BotInstances(ctx, "k8s")
	if err != nil || len(bis) != 2 || bis[0].JoinMethod != "kubernetes" || bis[1].JoinMethod != "kubernetes" {
		t.Fatalf("instances = %+v, %v", bis, err)
	}

	clk.Advance(2 * time.Minute) // "short" expires
	tests := []struct{ name, method, token, want string }{
		{"service account not allowed", "kubernetes", "k8s-join\nother", `service account "bots:other" is not allowed to join with token "k8s-join"`},
		{"legacy token not bound to a pod", "kubernetes", "k8s-join\nunbound", `the token of service account "bots:tbot" is not bound to a pod`},
		{"rejected by the API server", "kubernetes", "k8s-join\nforged", `kube cluster "kind" rejected the service account token: invalid bearer token`},
		{"not a service account", "kubernetes", "k8s-join\nnot-a-sa", `is not a service account token (it authenticates "alice")`},
		{"no JWT", "kubernetes", "k8s-join", "needs the token's name and the pod's service account token"},
		{"no name", "kubernetes", "\ngood", "needs the token's name"},
		{"unknown token", "kubernetes", "nope\ngood", `there is no join token named "nope"`},
		{"expired", "kubernetes", "short\ngood", `the join token "short" expired at`},
		{"token-method token by its stored name", "kubernetes", HashToken(secret) + "\ngood", "is for join method token, not kubernetes"},
		{"kubernetes token name as a secret", "token", "k8s-join", "the join token is not valid"},
		{"unknown method", "iam", "x", `unknown join method "iam"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := join(tt.method, tt.token); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}

	// The bot's single-use token still works by method token, and only once.
	if _, err := join("", secret); err != nil {
		t.Fatal(err)
	}
	if _, err := join("token", secret); err == nil || !strings.Contains(err.Error(), "already been used") {
		t.Fatalf("second use: %v", err)
	}
}

// saClaims are the claims of a projected service account token for audience aud,
// bound to pod unless pod is "".
func saClaims(ns, name, pod, aud string) map[string]any {
	kio := map[string]any{"namespace": ns, "serviceaccount": map[string]any{"name": name, "uid": "sa-uid"}}
	if pod != "" {
		kio["pod"] = map[string]any{"name": pod, "uid": "pod-uid"}
	}
	return map[string]any{"sub": serviceAccountPrefix + ns + ":" + name, "aud": []any{aud}, "kubernetes.io": kio}
}

// TestKubeHostJoin: a Kubernetes Service joins with its pod's service account token,
// verified with the cluster's keys stored in the token (static_jwks, for the first agent
// of a cluster) or through the cluster's OIDC issuer; each refusal has its own message,
// an audit event and no host certificate.
func TestKubeHostJoin(t *testing.T) {
	ctx := context.Background()
	cluster := oidcissuer.Start(t, oidcissuer.Options{})
	other := oidcissuer.Start(t, oidcissuer.Options{})
	rec := &audit.Recorder{}
	s, clk := newTestServer(t, Config{OIDCClient: cluster.Client, Audit: rec, JoinRate: 1000})
	clk.Advance(time.Until(clk.Now()) * -1)
	key, _ := tlsca.GenerateKey(tlsca.AlgECDSAP256, clock.Rand)
	jwks := cluster.JWKS(t)
	put := func(name string, k *types.KubernetesJoin) {
		putJoinToken(t, s, name, types.TokenRoleKube, "", types.JoinMethodKubernetes, types.TokenSpec{Kubernetes: k})
	}
	allow := []types.KubernetesJoinRule{{ServiceAccount: "keyport:agent"}}
	put("static", &types.KubernetesJoin{Type: types.KubernetesJoinStaticJWKS, Allow: allow, StaticJWKS: &types.KubernetesStaticJWKS{JWKS: jwks}})
	put("oidc", &types.KubernetesJoin{Type: types.KubernetesJoinOIDC, Allow: allow, OIDC: &types.KubernetesOIDC{Issuer: cluster.URL}})
	aud := s.ClusterName()
	join := func(token, jwt string) ([]byte, error) {
		return s.JoinHost(ctx, Actor{Addr: "10.0.0.5:1"}, token+"\n"+jwt, types.JoinMethodKubernetes, SystemKube, "agent-0", key.Public())
	}
	for _, name := range []string{"static", "oidc"} {
		// The same token joins again and again: each pod is a host identity.
		for i := 0; i < 2; i++ {
			if _, err := join(name, cluster.Sign(saClaims("keyport", "agent", "agent-0", aud))); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
	}
	foreign, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	expired := saClaims("keyport", "agent", "agent-0", aud)
	expired["exp"] = now.Add(-time.Minute).Unix()
	for _, c := range []struct {
		name, token, jwt, msg string
	}{
		{"service account not in allow", "static", cluster.Sign(saClaims("keyport", "other", "p", aud)), `service account "keyport:other" is not allowed to join with token "static"`},
		{"expired token", "static", cluster.Sign(expired), "expired at"},
		{"token of another issuer (oidc)", "oidc", other.Sign(saClaims("keyport", "agent", "p", aud)), "but the join token trusts"},
		{"token signed by another cluster's key (static_jwks)", "static", oidcissuer.SignWith(foreign, "", "ES256", cluster.Claims(saClaims("keyport", "agent", "p", aud))), "does not verify with the join token's key set"},
		{"not pod-bound", "oidc", cluster.Sign(saClaims("keyport", "agent", "", aud)), "is not bound to a pod"},
		{"unknown key id (static_jwks)", "static", oidcissuer.SignWith(foreign, "rotated", "ES256", cluster.Claims(saClaims("keyport", "agent", "p", aud))), `key id "rotated", which is not in the join token's key set`},
		{"wrong audience", "static", cluster.Sign(saClaims("keyport", "agent", "p", "https://kubernetes.default.svc")), `does not include "keyport.example.com"`},
		{"not a service account", "static", cluster.Sign(map[string]any{"sub": "alice", "aud": aud}), `not a service account token (its subject is "alice")`},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := rec.Count(eventHostJoinFailure)
			cert, err := join(c.token, c.jwt)
			if err == nil || cert != nil {
				t.Fatal("joined")
			}
			if !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("%q lacks %q", err, c.msg)
			}
			if rec.Count(eventHostJoinFailure) != before+1 {
				t.Error("not audited")
			}
		})
	}
	if n := rec.Count(eventHostJoin); n != 4 {
		t.Fatalf("%d host.join events, want 4", n)
	}
}

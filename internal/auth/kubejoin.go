package auth

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/types"
)

// KubernetesJoinSeparator separates the two parts of JoinBotRequest.token for join
// method kubernetes: "<token resource name>\n<service account JWT>". The request has one
// token field and the join needs both (Teleport sends them in two fields); a newline can
// appear in neither a resource name nor a JWT, so the split is unambiguous.
const KubernetesJoinSeparator = "\n"

// Service account token facts, as the API server reports them in a TokenReview.
const (
	serviceAccountPrefix = "system:serviceaccount:"
	serviceAccountsGroup = "system:serviceaccounts"
	extraPodName         = "authentication.kubernetes.io/pod-name"
)

// ServiceAccountReview is a cluster's answer to a TokenReview.
type ServiceAccountReview struct {
	// Cluster is the kube cluster that reviewed the token.
	Cluster       string
	Authenticated bool
	// Error is the API server's reason when the token was not authenticated.
	Error    string
	Username string
	Groups   []string
	Extra    map[string][]string
}

// KubeTokenReviewer checks a Kubernetes service account token with a TokenReview against
// the cluster the Auth Service trusts. The Kubernetes Service in the same process does
// it: the KubeReviewer given to SetKubeReviewer provides it when it also implements this
// interface (as internal/service's does), the way an http.ResponseWriter may also be an
// http.Flusher. Without one, the kubernetes join method is refused with a message saying
// why.
type KubeTokenReviewer interface {
	TokenReview(ctx context.Context, token string) (*ServiceAccountReview, error)
}

// kubernetesJoin is a checked kubernetes join: the token resource and who presented it.
type kubernetesJoin struct {
	token          *types.Token
	serviceAccount string // "namespace:name"
	pod            string
	cluster        string
}

// checkKubernetesJoin validates a bot join with method kubernetes: see
// checkServiceAccountJoin.
func (s *Server) checkKubernetesJoin(ctx context.Context, encoded string) (*kubernetesJoin, error) {
	return s.checkServiceAccountJoin(ctx, encoded, types.TokenRoleBot)
}

// checkServiceAccountJoin validates a join with method kubernetes, of a bot (role Bot)
// or of a Kubernetes Service (role Kube). encoded is "<token name>\n<service account
// JWT>" (KubernetesJoinSeparator). The token resource must be a token of that role and
// join method kubernetes that has not expired; the JWT must be verified the way the
// token's spec.kubernetes.type says (a TokenReview, the stored key set, or the cluster's
// OIDC issuer), belong to a service account listed in spec.kubernetes.allow and be
// bound to a pod (a projected token, not a legacy Secret-based one). Unlike method
// token, the token resource is not consumed: every pod of a Deployment joins with the
// same one, and each join makes a new bot instance or host identity.
func (s *Server) checkServiceAccountJoin(ctx context.Context, encoded, role string) (*kubernetesJoin, error) {
	name, jwt, ok := strings.Cut(encoded, KubernetesJoinSeparator)
	name, jwt = strings.TrimSpace(name), strings.TrimSpace(jwt)
	if !ok || name == "" || jwt == "" {
		return nil, errs.AccessDeniedf("join method kubernetes needs the token's name and the pod's service account token (the service account token is read from the file $KUBERNETES_TOKEN_PATH names)")
	}
	tok, err := s.namedJoinToken(ctx, name, types.JoinMethodKubernetes)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(tok.Spec.Roles, role) || (role == types.TokenRoleBot && tok.Spec.BotName == "") {
		return nil, errs.AccessDeniedf("the join token %q is not a %s token", name, strings.ToLower(role))
	}
	var sa, pod, cluster string
	switch k := tok.Spec.Kubernetes; k.Type {
	case types.KubernetesJoinStaticJWKS, types.KubernetesJoinOIDC:
		var claims map[string]any
		if k.Type == types.KubernetesJoinStaticJWKS {
			claims, err = s.oidc.VerifyStatic(k.StaticJWKS.JWKS, s.cfg.ClusterName, jwt)
			cluster = "static_jwks"
		} else {
			claims, err = s.oidc.Verify(ctx, k.OIDC.Issuer, s.cfg.ClusterName, jwt)
			cluster = k.OIDC.Issuer
		}
		if err != nil {
			return nil, fmt.Errorf("join token %q: the service account token: %w", name, err)
		}
		sub, _ := claims["sub"].(string)
		var ok bool
		if sa, ok = strings.CutPrefix(sub, serviceAccountPrefix); !ok {
			return nil, errs.AccessDeniedf("the token presented is not a service account token (its subject is %q)", sub)
		}
		kio, _ := claims["kubernetes.io"].(map[string]any)
		p, _ := kio["pod"].(map[string]any)
		if pod, _ = p["name"].(string); pod == "" {
			return nil, errs.AccessDeniedf("the token of service account %q is not bound to a pod: use the pod's projected service account token, not a long-lived Secret-based one", sa)
		}
	default:
		tr, ok := s.kubeReviewer.(KubeTokenReviewer)
		if !ok || tr == nil {
			return nil, errs.AccessDeniedf("this auth server cannot check Kubernetes service account tokens: the kubernetes join method needs the Kubernetes Service (kubernetes_service) in the auth server's process, or a token of type static_jwks or oidc")
		}
		rev, err := tr.TokenReview(ctx, jwt)
		if err != nil {
			return nil, fmt.Errorf("checking the service account token: %w", err)
		}
		if !rev.Authenticated {
			why := rev.Error
			if why == "" {
				why = "not authenticated"
			}
			return nil, errs.AccessDeniedf("kube cluster %q rejected the service account token: %s", rev.Cluster, why)
		}
		var isSA bool
		sa, isSA = strings.CutPrefix(rev.Username, serviceAccountPrefix)
		if !isSA || !slices.Contains(rev.Groups, serviceAccountsGroup) {
			return nil, errs.AccessDeniedf("the token presented is not a service account token (it authenticates %q)", rev.Username)
		}
		pods := rev.Extra[extraPodName]
		if len(pods) == 0 {
			return nil, errs.AccessDeniedf("the token of service account %q is not bound to a pod: use the pod's projected service account token, not a long-lived Secret-based one", sa)
		}
		pod, cluster = pods[0], rev.Cluster
	}
	allowed := false
	for _, rule := range tok.Spec.Kubernetes.Allow {
		if rule.ServiceAccount == sa {
			allowed = true
			break
		}
	}
	if !allowed {
		return nil, errs.AccessDeniedf("service account %q is not allowed to join with token %q (it is not in the token's spec.kubernetes.allow)", sa, name)
	}
	return &kubernetesJoin{token: tok, serviceAccount: sa, pod: pod, cluster: cluster}, nil
}

// namedJoinToken returns the token resource name of a secretless join method: it must
// exist, be of method, and not have expired.
func (s *Server) namedJoinToken(ctx context.Context, name, method string) (*types.Token, error) {
	r, err := s.GetResource(ctx, types.KindToken, name)
	if errs.IsNotFound(err) {
		return nil, errs.AccessDeniedf("there is no join token named %q", name)
	}
	if err != nil {
		return nil, err
	}
	tok := r.(*types.Token)
	if tok.Spec.JoinMethod != method {
		return nil, errs.AccessDeniedf("the join token %q is for join method %s, not %s", name, tok.Spec.JoinMethod, method)
	}
	if tok.Metadata.Expires != nil && !s.cfg.Clock.Now().Before(*tok.Metadata.Expires) {
		return nil, errs.AccessDeniedf("the join token %q expired at %s", name, tok.Metadata.Expires.UTC().Format(time.RFC3339))
	}
	return tok, nil
}

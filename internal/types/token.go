package types

import (
	"encoding/json"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Token is a join token: it lets a bot or a Kubernetes Service join the cluster once (join
// method token) or on proof of a Kubernetes service account (join method kubernetes).
// For join method token, metadata.name is the identifier the auth package derives from
// the secret (the secret itself is never stored); for kubernetes it is a plain name.
type Token struct {
	Header `yaml:",inline"`
	Spec   TokenSpec `yaml:"spec" json:"spec"`
}

// TokenSpec is the body of a token.
type TokenSpec struct {
	// Roles is [Bot] or [Kube]: what the joiner becomes.
	Roles []string `yaml:"roles,omitempty" json:"roles,omitempty"`
	// BotName is the bot a Bot token joins as.
	BotName    string          `yaml:"bot_name,omitempty" json:"bot_name,omitempty"`
	JoinMethod string          `yaml:"join_method,omitempty" json:"join_method,omitempty"`
	Kubernetes *KubernetesJoin `yaml:"kubernetes,omitempty" json:"kubernetes,omitempty"`
	// GitHub, GitLab and OIDC hold the rules of the secretless CI join methods: the
	// joiner presents an OIDC ID token its platform issued, and a rule must match it.
	GitHub *GitHubJoin `yaml:"github,omitempty" json:"github,omitempty"`
	GitLab *GitLabJoin `yaml:"gitlab,omitempty" json:"gitlab,omitempty"`
	OIDC   *OIDCJoin   `yaml:"oidc,omitempty" json:"oidc,omitempty"`
	// BoundKeypair is the state of a bound_keypair token: the key tbot registered, and
	// how many more times it may join again with it.
	BoundKeypair *BoundKeypairJoin `yaml:"bound_keypair,omitempty" json:"bound_keypair,omitempty"`
}

// GitHubJoin trusts GitHub Actions' ID tokens (issuer
// https://token.actions.githubusercontent.com, or https://HOST/_services/token for
// GitHub Enterprise Server).
type GitHubJoin struct {
	EnterpriseServerHost string `yaml:"enterprise_server_host,omitempty" json:"enterprise_server_host,omitempty"`
	// Audience is the aud the ID token must carry; the cluster name when empty.
	Audience string       `yaml:"audience,omitempty" json:"audience,omitempty"`
	Allow    []GitHubRule `yaml:"allow,omitempty" json:"allow,omitempty"`
}

// GitHubRule is one allow rule: every claim it names must match (globs * and ?).
type GitHubRule struct {
	Sub             string `yaml:"sub,omitempty" json:"sub,omitempty"`
	Repository      string `yaml:"repository,omitempty" json:"repository,omitempty"`
	RepositoryOwner string `yaml:"repository_owner,omitempty" json:"repository_owner,omitempty"`
	Workflow        string `yaml:"workflow,omitempty" json:"workflow,omitempty"`
	Environment     string `yaml:"environment,omitempty" json:"environment,omitempty"`
	Actor           string `yaml:"actor,omitempty" json:"actor,omitempty"`
	Ref             string `yaml:"ref,omitempty" json:"ref,omitempty"`
	RefType         string `yaml:"ref_type,omitempty" json:"ref_type,omitempty"`
}

// GitLabJoin trusts GitLab CI's ID tokens (issuer https://gitlab.com, or https://DOMAIN).
type GitLabJoin struct {
	Domain   string       `yaml:"domain,omitempty" json:"domain,omitempty"`
	Audience string       `yaml:"audience,omitempty" json:"audience,omitempty"`
	Allow    []GitLabRule `yaml:"allow,omitempty" json:"allow,omitempty"`
}

// GitLabRule is one allow rule: every claim it names must match (globs * and ?).
type GitLabRule struct {
	Sub            string `yaml:"sub,omitempty" json:"sub,omitempty"`
	ProjectPath    string `yaml:"project_path,omitempty" json:"project_path,omitempty"`
	NamespacePath  string `yaml:"namespace_path,omitempty" json:"namespace_path,omitempty"`
	PipelineSource string `yaml:"pipeline_source,omitempty" json:"pipeline_source,omitempty"`
	Environment    string `yaml:"environment,omitempty" json:"environment,omitempty"`
	Ref            string `yaml:"ref,omitempty" json:"ref,omitempty"`
	RefType        string `yaml:"ref_type,omitempty" json:"ref_type,omitempty"`
	RefProtected   string `yaml:"ref_protected,omitempty" json:"ref_protected,omitempty"`
	UserLogin      string `yaml:"user_login,omitempty" json:"user_login,omitempty"`
}

// OIDCJoin trusts any OIDC issuer (CircleCI, Bitbucket, Buildkite, Terraform Cloud…).
type OIDCJoin struct {
	Issuer   string     `yaml:"issuer,omitempty" json:"issuer,omitempty"`
	Audience string     `yaml:"audience,omitempty" json:"audience,omitempty"`
	Allow    []OIDCRule `yaml:"allow,omitempty" json:"allow,omitempty"`
}

// OIDCRule is one allow rule over any claims: claim name → glob.
type OIDCRule struct {
	Claims map[string]string `yaml:"claims,omitempty" json:"claims,omitempty"`
}

// BoundKeypairJoin is a bound_keypair token. Before registration it holds the hash of
// the one-time registration secret; registration replaces that with the public key tbot
// generated, and from then on a join proves possession of its private key.
type BoundKeypairJoin struct {
	// RegistrationSecretHash is the SHA-256 of the registration secret, until it is used;
	// RegisterBefore is when the secret stops working.
	RegistrationSecretHash string     `yaml:"registration_secret_hash,omitempty" json:"registration_secret_hash,omitempty"`
	RegisterBefore         *time.Time `yaml:"register_before,omitempty" json:"register_before,omitempty"`
	// PublicKey is the registered key, PEM (PKIX).
	PublicKey string `yaml:"public_key,omitempty" json:"public_key,omitempty"`
	// Rejoins is how many more times the key may join after its first join (each join
	// makes a new bot instance; renewals do not count). Default 10.
	Rejoins *int `yaml:"rejoins,omitempty" json:"rejoins,omitempty"`
	// Recovery allows joining again after the first join at all; when false the key
	// joins once and the bot lives on its renewals.
	Recovery *bool `yaml:"recovery,omitempty" json:"recovery,omitempty"`
	// Joins counts joins so far.
	Joins int `yaml:"joins,omitempty" json:"joins,omitempty"`
}

// KubernetesJoin says which service accounts may join with a kubernetes token.
type KubernetesJoin struct {
	// Type is how the service account token is verified: in_cluster (a TokenReview
	// through the Kubernetes Service in the Auth Service's process), static_jwks (the
	// cluster's service-account signing keys, stored here: for the first agent of a
	// cluster no Keyport reaches yet) or oidc (the cluster's service-account issuer,
	// read with OIDC discovery). static_jwks and oidc want a projected token whose
	// audience is the Keyport cluster name.
	Type       string                `yaml:"type,omitempty" json:"type,omitempty"`
	Allow      []KubernetesJoinRule  `yaml:"allow,omitempty" json:"allow,omitempty"`
	StaticJWKS *KubernetesStaticJWKS `yaml:"static_jwks,omitempty" json:"static_jwks,omitempty"`
	OIDC       *KubernetesOIDC       `yaml:"oidc,omitempty" json:"oidc,omitempty"`
}

// KubernetesStaticJWKS holds a cluster's service-account signing keys, as the API
// server publishes them at /openid/v1/jwks (`kubectl get --raw /openid/v1/jwks`).
type KubernetesStaticJWKS struct {
	JWKS string `yaml:"jwks,omitempty" json:"jwks,omitempty"`
}

// KubernetesOIDC names a cluster's service-account issuer (--service-account-issuer).
type KubernetesOIDC struct {
	Issuer string `yaml:"issuer,omitempty" json:"issuer,omitempty"`
}

// KubernetesJoinRule allows one service account, written "namespace:name".
type KubernetesJoinRule struct {
	ServiceAccount string `yaml:"service_account,omitempty" json:"service_account,omitempty"`
}

// Token roles and join methods.
const (
	TokenRoleBot             = "Bot"
	TokenRoleKube            = "Kube"
	JoinMethodToken          = "token"
	JoinMethodKubernetes     = "kubernetes"
	JoinMethodGitHub         = "github"
	JoinMethodGitLab         = "gitlab"
	JoinMethodOIDC           = "oidc"
	JoinMethodBoundKeypair   = "bound_keypair"
	KubernetesJoinInCluster  = "in_cluster"
	KubernetesJoinStaticJWKS = "static_jwks"
	KubernetesJoinOIDC       = "oidc"

	// DefaultBoundKeypairRejoins is a bound_keypair token's rejoin budget by default.
	DefaultBoundKeypairRejoins = 10
	// GitHubIssuer is GitHub Actions' OIDC issuer on github.com.
	GitHubIssuer = "https://token.actions.githubusercontent.com"
	// GitLabIssuer is GitLab.com's OIDC issuer.
	GitLabIssuer = "https://gitlab.com"
)

// SecretlessJoinMethods are the join methods whose token resource is a rule rather
// than a secret: it is not consumed by a join and has no default expiry.
var SecretlessJoinMethods = []string{JoinMethodKubernetes, JoinMethodGitHub, JoinMethodGitLab, JoinMethodOIDC, JoinMethodBoundKeypair}

// Issuer is the OIDC issuer a github, gitlab or oidc token trusts ("" for other methods).
func (s *TokenSpec) Issuer() string {
	switch {
	case s.JoinMethod == JoinMethodGitHub && s.GitHub != nil:
		if h := s.GitHub.EnterpriseServerHost; h != "" {
			return "https://" + h + "/_services/token"
		}
		return GitHubIssuer
	case s.JoinMethod == JoinMethodGitLab && s.GitLab != nil:
		if d := s.GitLab.Domain; d != "" {
			return "https://" + d
		}
		return GitLabIssuer
	case s.JoinMethod == JoinMethodOIDC && s.OIDC != nil:
		return s.OIDC.Issuer
	}
	return ""
}

// Audience is the aud a github, gitlab or oidc token's ID tokens must carry; "" means
// the cluster name.
func (s *TokenSpec) Audience() string {
	switch {
	case s.GitHub != nil:
		return s.GitHub.Audience
	case s.GitLab != nil:
		return s.GitLab.Audience
	case s.OIDC != nil:
		return s.OIDC.Audience
	}
	return ""
}

// ClaimRules returns a github, gitlab or oidc token's allow rules as claim name → glob.
func (s *TokenSpec) ClaimRules() []map[string]string {
	var out []map[string]string
	add := func(kv ...string) {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] != "" {
				m[kv[i]] = kv[i+1]
			}
		}
		out = append(out, m)
	}
	switch {
	case s.GitHub != nil:
		for _, r := range s.GitHub.Allow {
			add("sub", r.Sub, "repository", r.Repository, "repository_owner", r.RepositoryOwner, "workflow", r.Workflow,
				"environment", r.Environment, "actor", r.Actor, "ref", r.Ref, "ref_type", r.RefType)
		}
	case s.GitLab != nil:
		for _, r := range s.GitLab.Allow {
			add("sub", r.Sub, "project_path", r.ProjectPath, "namespace_path", r.NamespacePath, "pipeline_source", r.PipelineSource,
				"environment", r.Environment, "ref", r.Ref, "ref_type", r.RefType, "ref_protected", r.RefProtected, "user_login", r.UserLogin)
		}
	case s.OIDC != nil:
		for _, r := range s.OIDC.Allow {
			out = append(out, maps.Clone(r.Claims))
		}
	}
	return out
}

var (
	dnsLabelRE     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	dnsSubdomainRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`)
)

// CheckAndSetDefaults validates the token. Roles are matched case-insensitively and
// rewritten to their canonical spelling; join_method defaults to token and
// kubernetes.type to in_cluster. The expiry (metadata.expires) is optional here: the auth
// package gives new tokens their default TTL.
func (t *Token) CheckAndSetDefaults() error {
	if err := t.Header.check(KindToken); err != nil {
		return err
	}
	s := &t.Spec
	switch len(s.Roles) {
	case 0:
		return fieldErrorf("spec.roles", "is required (want [Bot] or [Kube])")
	case 1:
	default:
		return fieldErrorf("spec.roles", "a token has exactly one role, Bot or Kube")
	}
	switch {
	case strings.EqualFold(s.Roles[0], TokenRoleBot):
		s.Roles[0] = TokenRoleBot
	case strings.EqualFold(s.Roles[0], TokenRoleKube):
		s.Roles[0] = TokenRoleKube
	default:
		return fieldErrorf("spec.roles[0]", "unknown role %q (want Bot or Kube)", s.Roles[0])
	}
	if s.Roles[0] == TokenRoleBot {
		if s.BotName == "" {
			return fieldErrorf("spec.bot_name", "is required for a Bot token")
		}
		if err := checkName("spec.bot_name", s.BotName); err != nil {
			return err
		}
	} else if s.BotName != "" {
		return fieldErrorf("spec.bot_name", "is only for Bot tokens")
	}
	if s.JoinMethod == "" {
		s.JoinMethod = JoinMethodToken
	}
	for _, b := range []struct {
		method, field string
		set           bool
	}{
		{JoinMethodKubernetes, "spec.kubernetes", s.Kubernetes != nil},
		{JoinMethodGitHub, "spec.github", s.GitHub != nil},
		{JoinMethodGitLab, "spec.gitlab", s.GitLab != nil},
		{JoinMethodOIDC, "spec.oidc", s.OIDC != nil},
		{JoinMethodBoundKeypair, "spec.bound_keypair", s.BoundKeypair != nil},
	} {
		if b.set && s.JoinMethod != b.method {
			return fieldErrorf(b.field, "is only for join_method %s", b.method)
		}
	}
	if s.JoinMethod != JoinMethodToken && s.JoinMethod != JoinMethodKubernetes && s.Roles[0] != TokenRoleBot {
		return fieldErrorf("spec.join_method", "%s is a join method for bots (spec.roles: [Bot])", s.JoinMethod)
	}
	switch s.JoinMethod {
	case JoinMethodToken:
	case JoinMethodKubernetes:
		return s.checkKubernetes()
	case JoinMethodGitHub:
		return s.checkGitHub()
	case JoinMethodGitLab:
		return s.checkGitLab()
	case JoinMethodOIDC:
		return s.checkOIDC()
	case JoinMethodBoundKeypair:
		return s.checkBoundKeypair()
	default:
		return fieldErrorf("spec.join_method", "unknown join method %q (want token, kubernetes, github, gitlab, oidc or bound_keypair)", s.JoinMethod)
	}
	return nil
}

func (s *TokenSpec) checkGitHub() error {
	g := s.GitHub
	if g == nil || len(g.Allow) == 0 {
		return fieldErrorf("spec.github.allow", "is required for join_method github (a list of rules such as {repository: org/repo, ref: refs/heads/main})")
	}
	if h := g.EnterpriseServerHost; h != "" && !hostRE.MatchString(h) {
		return fieldErrorf("spec.github.enterprise_server_host", "invalid host %q (want a host name with an optional :port, no scheme or path)", h)
	}
	for i, r := range g.Allow {
		p := indexPath("spec.github.allow", i)
		if r.Sub == "" && r.Repository == "" && r.RepositoryOwner == "" {
			return fieldErrorf(p, "must name sub, repository or repository_owner: without one, any repository on %s could join", map[bool]string{true: "github.com", false: g.EnterpriseServerHost}[g.EnterpriseServerHost == ""])
		}
	}
	return s.checkRules("spec.github.allow")
}

func (s *TokenSpec) checkGitLab() error {
	g := s.GitLab
	if g == nil || len(g.Allow) == 0 {
		return fieldErrorf("spec.gitlab.allow", "is required for join_method gitlab (a list of rules such as {project_path: group/project, ref_type: branch})")
	}
	if d := g.Domain; d != "" && !hostRE.MatchString(d) {
		return fieldErrorf("spec.gitlab.domain", "invalid domain %q (want a host name with an optional :port, no scheme or path)", d)
	}
	for i, r := range g.Allow {
		p := indexPath("spec.gitlab.allow", i)
		if r.Sub == "" && r.ProjectPath == "" && r.NamespacePath == "" {
			return fieldErrorf(p, "must name sub, project_path or namespace_path: without one, any project on the GitLab instance could join")
		}
		if v := r.RefProtected; v != "" && v != "true" && v != "false" {
			return fieldErrorf(p+".ref_protected", `is "true" or "false", not %q`, v)
		}
	}
	return s.checkRules("spec.gitlab.allow")
}

func (s *TokenSpec) checkOIDC() error {
	o := s.OIDC
	if o == nil || o.Issuer == "" {
		return fieldErrorf("spec.oidc.issuer", "is required for join_method oidc (the issuer URL, https://…)")
	}
	u, err := url.Parse(o.Issuer)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fieldErrorf("spec.oidc.issuer", "invalid issuer %q (want an https:// URL without query or fragment)", o.Issuer)
	}
	if len(o.Allow) == 0 {
		return fieldErrorf("spec.oidc.allow", "is required for join_method oidc (a list of {claims: {sub: …}})")
	}
	for i, r := range o.Allow {
		if len(r.Claims) == 0 {
			return fieldErrorf(indexPath("spec.oidc.allow", i)+".claims", "must name at least one claim")
		}
	}
	return s.checkRules("spec.oidc.allow")
}

// checkRules checks every rule's globs and that no rule is empty.
func (s *TokenSpec) checkRules(path string) error {
	for i, r := range s.ClaimRules() {
		if len(r) == 0 {
			return fieldErrorf(indexPath(path, i), "names no claim")
		}
		for _, k := range slices.Sorted(maps.Keys(r)) {
			if k == "" {
				return fieldErrorf(indexPath(path, i), "has an empty claim name")
			}
			if len(r[k]) > 1024 {
				return fieldErrorf(indexPath(path, i)+"."+k, "is longer than 1024 characters")
			}
		}
	}
	return nil
}

func (s *TokenSpec) checkBoundKeypair() error {
	b := s.BoundKeypair
	if b == nil {
		return fieldErrorf("spec.bound_keypair", "is required for join_method bound_keypair (create it with `tctl bots add NAME --join-method=bound_keypair`)")
	}
	if b.RegistrationSecretHash == "" && b.PublicKey == "" {
		return fieldErrorf("spec.bound_keypair", "needs registration_secret_hash (before tbot registers) or public_key")
	}
	if b.Rejoins == nil {
		n := DefaultBoundKeypairRejoins
		b.Rejoins = &n
	}
	if *b.Rejoins < 0 {
		return fieldErrorf("spec.bound_keypair.rejoins", "must not be negative")
	}
	if b.Recovery == nil {
		t := true
		b.Recovery = &t
	}
	return nil
}

// hostRE is a host name or IP with an optional port.
var hostRE = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?(:[0-9]{1,5})?$`)

func (s *TokenSpec) checkKubernetes() error {
	if s.Kubernetes == nil || len(s.Kubernetes.Allow) == 0 {
		return fieldErrorf("spec.kubernetes.allow", `is required for join_method kubernetes (a list of {service_account: "namespace:name"})`)
	}
	k := s.Kubernetes
	if k.Type == "" {
		k.Type = KubernetesJoinInCluster
	}
	switch k.Type {
	case KubernetesJoinInCluster:
	case KubernetesJoinStaticJWKS:
		if k.StaticJWKS == nil || strings.TrimSpace(k.StaticJWKS.JWKS) == "" {
			return fieldErrorf("spec.kubernetes.static_jwks.jwks", "is required for type static_jwks (the output of `kubectl get --raw /openid/v1/jwks`)")
		}
		var set struct {
			Keys []map[string]any `json:"keys"`
		}
		if err := json.Unmarshal([]byte(k.StaticJWKS.JWKS), &set); err != nil || len(set.Keys) == 0 {
			return fieldErrorf("spec.kubernetes.static_jwks.jwks", "is not a JSON Web Key Set with at least one key (want {\"keys\": [...]})")
		}
	case KubernetesJoinOIDC:
		if k.OIDC == nil || k.OIDC.Issuer == "" {
			return fieldErrorf("spec.kubernetes.oidc.issuer", "is required for type oidc (the cluster's --service-account-issuer URL)")
		}
		if u, err := url.Parse(k.OIDC.Issuer); err != nil || u.Scheme != "https" || u.Host == "" {
			return fieldErrorf("spec.kubernetes.oidc.issuer", "invalid issuer %q (want an https:// URL)", k.OIDC.Issuer)
		}
	default:
		return fieldErrorf("spec.kubernetes.type", "unsupported type %q (want in_cluster, static_jwks or oidc)", k.Type)
	}
	if k.StaticJWKS != nil && k.Type != KubernetesJoinStaticJWKS {
		return fieldErrorf("spec.kubernetes.static_jwks", "is only for type static_jwks")
	}
	if k.OIDC != nil && k.Type != KubernetesJoinOIDC {
		return fieldErrorf("spec.kubernetes.oidc", "is only for type oidc")
	}
	for i, rule := range k.Allow {
		p := indexPath("spec.kubernetes.allow", i) + ".service_account"
		if rule.ServiceAccount == "" {
			return fieldErrorf(p, "is required")
		}
		ns, name, ok := strings.Cut(rule.ServiceAccount, ":")
		if !ok || len(ns) > 63 || !dnsLabelRE.MatchString(ns) || len(name) > 253 || !dnsSubdomainRE.MatchString(name) {
			return fieldErrorf(p, `invalid service account %q (want "namespace:name")`, rule.ServiceAccount)
		}
	}
	return nil
}

// BoundKeypairSignedText is what a bound_keypair bot's key signs to join: a fixed
// prefix, the cluster name, the token name and the server's challenge, one per line, so
// that a signature is good for one join of one token of one cluster. ECDSA keys sign
// its SHA-256 digest, Ed25519 keys the text itself.
func BoundKeypairSignedText(cluster, token, challenge string) []byte {
	return []byte("keyport-bound-keypair-v1\n" + cluster + "\n" + token + "\n" + challenge)
}

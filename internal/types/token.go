package types

import (
	"regexp"
	"strings"
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
}

// KubernetesJoin says which service accounts may join with a kubernetes token.
type KubernetesJoin struct {
	// Type is how the service account token is verified. Only in_cluster (a TokenReview
	// against the cluster the Auth Service runs in) is supported; the field exists so that
	// Teleport token files, which often carry it, read unchanged.
	Type  string               `yaml:"type,omitempty" json:"type,omitempty"`
	Allow []KubernetesJoinRule `yaml:"allow,omitempty" json:"allow,omitempty"`
}

// KubernetesJoinRule allows one service account, written "namespace:name".
type KubernetesJoinRule struct {
	ServiceAccount string `yaml:"service_account,omitempty" json:"service_account,omitempty"`
}

// Token roles and join methods.
const (
	TokenRoleBot            = "Bot"
	TokenRoleKube           = "Kube"
	JoinMethodToken         = "token"
	JoinMethodKubernetes    = "kubernetes"
	KubernetesJoinInCluster = "in_cluster"
)

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
	switch s.JoinMethod {
	case JoinMethodToken:
		if s.Kubernetes != nil {
			return fieldErrorf("spec.kubernetes", "is only for join_method kubernetes")
		}
	case JoinMethodKubernetes:
		return s.checkKubernetes()
	default:
		return fieldErrorf("spec.join_method", "unknown join method %q (want token or kubernetes)", s.JoinMethod)
	}
	return nil
}

func (s *TokenSpec) checkKubernetes() error {
	if s.Kubernetes == nil || len(s.Kubernetes.Allow) == 0 {
		return fieldErrorf("spec.kubernetes.allow", `is required for join_method kubernetes (a list of {service_account: "namespace:name"})`)
	}
	k := s.Kubernetes
	if k.Type == "" {
		k.Type = KubernetesJoinInCluster
	}
	if k.Type != KubernetesJoinInCluster {
		return fieldErrorf("spec.kubernetes.type", "unsupported type %q (want in_cluster)", k.Type)
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

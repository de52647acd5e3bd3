// Package config owns tbot.yaml (SPEC section 9): its shape, strict decoding with
// `tbot.yaml:LINE: key: message` errors, defaults, validation, and the YAML that
// `tbot configure` prints for a set of command-line flags. The file and the flags end in
// the same Config, so that `tbot start kubernetes --…` and `tbot start -c` run the same bot.
package config

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"text/template"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/keyport/keyport/internal/yamlpos"
)

// Version is the only config version tbot reads.
const Version = "v2"

// Defaults and limits of SPEC sections 5 and 9.
const (
	DefaultCredentialTTL       = time.Hour
	DefaultRenewalInterval     = 20 * time.Minute
	MaxCredentialTTL           = 24 * time.Hour
	DefaultStoragePath         = "/var/lib/keyport/bot"
	DefaultContextNameTemplate = "{{.ClusterName}}-{{.KubeName}}"
	DefaultArgoCDNamespace     = "argocd"
	// TokenEnv is the environment variable that supplies the join token when neither the
	// file nor a flag does, so that it need not sit in a file or in `ps` output.
	TokenEnv = "KEYPORT_BOT_TOKEN"
)

// Join methods.
const (
	JoinToken        = "token"
	JoinKubernetes   = "kubernetes"
	JoinGitHub       = "github"
	JoinGitLab       = "gitlab"
	JoinOIDC         = "oidc"
	JoinBoundKeypair = "bound_keypair"
)

// DefaultGitLabTokenEnv is the variable a GitLab job's `id_tokens:` block defines for
// tbot by default (the name Teleport's tbot reads, so pipelines carry over).
const DefaultGitLabTokenEnv = "TBOT_GITLAB_JWT"

// Output types.
const (
	OutputKubernetes   = "kubernetes"
	OutputKubernetesV2 = "kubernetes/v2"
	OutputIdentity     = "identity"
	OutputArgoCD       = "kubernetes/argo-cd"
)

// Destination types.
const (
	DestDirectory  = "directory"
	DestMemory     = "memory"
	DestKubeSecret = "kubernetes_secret"
)

// Symlink policies of a directory destination.
const (
	SymlinksSecure    = "secure"
	SymlinksTrySecure = "try-secure"
	SymlinksInsecure  = "insecure"
)

// Config is tbot.yaml.
type Config struct {
	Version         string        `yaml:"version"`
	ProxyServer     string        `yaml:"proxy_server,omitempty"`
	AuthServer      string        `yaml:"auth_server,omitempty"`
	Onboarding      Onboarding    `yaml:"onboarding"`
	Storage         *Destination  `yaml:"storage,omitempty"`
	CredentialTTL   time.Duration `yaml:"credential_ttl,omitempty"`
	RenewalInterval time.Duration `yaml:"renewal_interval,omitempty"`
	Oneshot         bool          `yaml:"oneshot,omitempty"`
	DiagAddr        string        `yaml:"diag_addr,omitempty"`
	// Insecure skips verification of the proxy on first contact (no pins, no system roots).
	Insecure bool     `yaml:"insecure,omitempty"`
	Outputs  []Output `yaml:"outputs"`
}

// Onboarding is how the bot joins the first time.
type Onboarding struct {
	JoinMethod string `yaml:"join_method,omitempty"`
	// Token is the join token, or the path of a file that holds it; for every other
	// method, the name of the token resource.
	Token  string   `yaml:"token,omitempty"`
	CAPins []string `yaml:"ca_pins,omitempty"`
	// Audience is the aud tbot asks GitHub Actions' token service for; the cluster's
	// name when empty (what a github token resource expects unless it sets another).
	Audience string `yaml:"audience,omitempty"`
	// GitLab says where a GitLab job's ID token is; OIDC where any issuer's is.
	GitLab *GitLabOnboarding `yaml:"gitlab,omitempty"`
	OIDC   *OIDCOnboarding   `yaml:"oidc,omitempty"`
	// BoundKeypair holds the one-time registration secret of join method bound_keypair.
	BoundKeypair *BoundKeypairOnboarding `yaml:"bound_keypair,omitempty"`
}

// GitLabOnboarding names the variable of the job's `id_tokens:` entry.
type GitLabOnboarding struct {
	TokenEnvVarName string `yaml:"token_env_var_name,omitempty"`
}

// OIDCOnboarding says where the ID token is: a file (read at each join, as platforms
// rotate it) or an environment variable.
type OIDCOnboarding struct {
	TokenFile       string `yaml:"token_file,omitempty"`
	TokenEnvVarName string `yaml:"token_env_var_name,omitempty"`
}

// BoundKeypairOnboarding is the registration secret `tctl bots add
// --join-method=bound_keypair` printed (the value, or a path to a file holding it). It
// is needed once; after that tbot proves possession of the key it keeps in storage.
type BoundKeypairOnboarding struct {
	RegistrationSecret string `yaml:"registration_secret,omitempty"`
}

// Destination is where files go. Which fields apply depends on Type; the others must be
// empty, so that a misplaced key is an error rather than silently ignored.
type Destination struct {
	Type string `yaml:"type"`
	// directory
	Path     string   `yaml:"path,omitempty"`
	Symlinks string   `yaml:"symlinks,omitempty"`
	Readers  []Reader `yaml:"readers,omitempty"`
	// kubernetes_secret
	Name      string            `yaml:"name,omitempty"`
	Namespace string            `yaml:"namespace,omitempty"`
	Labels    map[string]string `yaml:"labels,omitempty"`
}

// Reader is one POSIX ACL entry of a directory destination, as in Teleport.
type Reader struct {
	User  string `yaml:"user,omitempty"`
	UID   *int   `yaml:"uid,omitempty"`
	Group string `yaml:"group,omitempty"`
	GID   *int   `yaml:"gid,omitempty"`
}

// Selector picks kube clusters by name or by labels (exactly one of the two).
type Selector struct {
	Name   string            `yaml:"name,omitempty"`
	Labels map[string]string `yaml:"labels,omitempty"`
}

// Output is one thing tbot keeps fresh. One struct for every type keeps decoding strict
// (unknown keys fail in yaml.v3) while validation refuses keys of another type.
type Output struct {
	Type        string       `yaml:"type"`
	Destination *Destination `yaml:"destination,omitempty"`
	// kubernetes
	KubernetesCluster string `yaml:"kubernetes_cluster,omitempty"`
	DisableExecPlugin bool   `yaml:"disable_exec_plugin,omitempty"`
	// kubernetes/v2 and kubernetes/argo-cd
	Selectors []Selector `yaml:"selectors,omitempty"`
	// kubernetes/v2
	ContextNameTemplate string `yaml:"context_name_template,omitempty"`
	// kubernetes/argo-cd
	SecretNamespace  string            `yaml:"secret_namespace,omitempty"`
	SecretNamePrefix string            `yaml:"secret_name_prefix,omitempty"`
	SecretLabels     map[string]string `yaml:"secret_labels,omitempty"`
	Project          string            `yaml:"project,omitempty"`
}

// Addr is the address tbot dials: the proxy's, or the auth server's.
func (c *Config) Addr() string {
	if c.ProxyServer != "" {
		return c.ProxyServer
	}
	return c.AuthServer
}

// Read loads and validates the config at path.
func Read(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes and validates a config file's bytes. Errors name the file's base name,
// the line and the key.
func Parse(path string, data []byte) (*Config, error) {
	c := &Config{}
	if err := yamlpos.DecodeStrict(filepath.Base(path), data, c, c.CheckAndSetDefaults); err != nil {
		return nil, err
	}
	return c, nil
}

// Marshal encodes c as tbot.yaml (what `tbot configure` prints).
func (c *Config) Marshal() ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// CheckAndSetDefaults validates c and fills in defaults. Errors are yamlpos.FieldErrors, so
// that Parse can point at a line; callers that build a Config from flags get the field path.
func (c *Config) CheckAndSetDefaults() error {
	switch c.Version {
	case Version:
	case "":
		return yamlpos.Fieldf("version", "missing; want %s", Version)
	default:
		return yamlpos.Fieldf("version", "unsupported version %q; want %s", c.Version, Version)
	}
	switch {
	case c.ProxyServer != "" && c.AuthServer != "":
		return yamlpos.Fieldf("auth_server", "set proxy_server or auth_server, not both")
	case c.ProxyServer == "" && c.AuthServer == "":
		return yamlpos.Fieldf("proxy_server", "required (or auth_server): the address tbot joins through")
	case c.ProxyServer != "":
		if err := checkHostPort(c.ProxyServer); err != nil {
			return yamlpos.Fieldf("proxy_server", "%v", err)
		}
	default:
		if err := checkHostPort(c.AuthServer); err != nil {
			return yamlpos.Fieldf("auth_server", "%v", err)
		}
	}
	if err := c.Onboarding.check(); err != nil {
		return err
	}

	// Both or neither: a TTL without its interval (or the reverse) is almost always a
	// mistake that leaves the other default in an unsafe relation to it.
	switch {
	case c.CredentialTTL == 0 && c.RenewalInterval == 0:
		c.CredentialTTL, c.RenewalInterval = DefaultCredentialTTL, DefaultRenewalInterval
	case c.CredentialTTL == 0:
		return yamlpos.Fieldf("renewal_interval", "set credential_ttl too (both or neither)")
	case c.RenewalInterval == 0:
		return yamlpos.Fieldf("credential_ttl", "set renewal_interval too (both or neither)")
	}
	if c.CredentialTTL < 0 {
		return yamlpos.Fieldf("credential_ttl", "must be positive")
	}
	if c.CredentialTTL > MaxCredentialTTL {
		return yamlpos.Fieldf("credential_ttl", "%s is longer than the maximum of 24h", c.CredentialTTL)
	}
	if c.RenewalInterval <= 0 {
		return yamlpos.Fieldf("renewal_interval", "must be positive")
	}
	if c.RenewalInterval >= c.CredentialTTL {
		return yamlpos.Fieldf("renewal_interval", "%s must be shorter than credential_ttl (%s), or credentials expire before they are renewed", c.RenewalInterval, c.CredentialTTL)
	}
	if c.DiagAddr != "" {
		if err := checkHostPort(c.DiagAddr); err != nil {
			return yamlpos.Fieldf("diag_addr", "%v", err)
		}
	}

	if c.Storage == nil {
		c.Storage = &Destination{Type: DestDirectory, Path: DefaultStoragePath}
	}
	if err := c.Storage.check("storage", true); err != nil {
		return err
	}
	if c.Storage.Type == DestKubeSecret {
		return yamlpos.Fieldf("storage.type", "storage may be directory or memory")
	}

	if len(c.Outputs) == 0 {
		return yamlpos.Fieldf("outputs", "at least one output is required")
	}
	for i := range c.Outputs {
		if err := c.Outputs[i].check(fmt.Sprintf("outputs[%d]", i)); err != nil {
			return err
		}
	}
	return c.checkSharedDestinations()
}

func (o *Onboarding) check() error {
	switch o.JoinMethod {
	case "":
		o.JoinMethod = JoinToken
	case JoinToken, JoinKubernetes, JoinGitHub, JoinGitLab, JoinOIDC, JoinBoundKeypair:
	default:
		return yamlpos.Fieldf("onboarding.join_method", "unknown join method %q (want token, kubernetes, github, gitlab, oidc or bound_keypair)", o.JoinMethod)
	}
	for _, b := range []struct {
		method, field string
		set           bool
	}{
		{JoinGitLab, "onboarding.gitlab", o.GitLab != nil},
		{JoinOIDC, "onboarding.oidc", o.OIDC != nil},
		{JoinBoundKeypair, "onboarding.bound_keypair", o.BoundKeypair != nil},
		{JoinGitHub, "onboarding.audience", o.Audience != ""},
	} {
		if b.set && o.JoinMethod != b.method {
			return yamlpos.Fieldf(b.field, "is only for join_method %s", b.method)
		}
	}
	switch o.JoinMethod {
	case JoinGitLab:
		if o.GitLab == nil {
			o.GitLab = &GitLabOnboarding{}
		}
		if o.GitLab.TokenEnvVarName == "" {
			o.GitLab.TokenEnvVarName = DefaultGitLabTokenEnv
		}
	case JoinOIDC:
		if o.OIDC == nil || (o.OIDC.TokenFile == "") == (o.OIDC.TokenEnvVarName == "") {
			return yamlpos.Fieldf("onboarding.oidc", "set exactly one of token_file and token_env_var_name (where the platform puts its ID token)")
		}
	}
	for i, p := range o.CAPins {
		p = strings.TrimSpace(p)
		if !strings.HasPrefix(p, "sha256:") || len(p) != len("sha256:")+64 || strings.Trim(strings.ToLower(p[7:]), "0123456789abcdef") != "" {
			return yamlpos.Fieldf(fmt.Sprintf("onboarding.ca_pins[%d]", i), "want sha256: and 64 hex digits (see `tctl status`)")
		}
		o.CAPins[i] = p
	}
	return nil
}

func (d *Destination) check(path string, storage bool) error {
	switch d.Type {
	case DestDirectory:
		if d.Path == "" {
			return yamlpos.Fieldf(path+".path", "required for a directory destination")
		}
		abs, err := filepath.Abs(d.Path)
		if err != nil {
			return yamlpos.Fieldf(path+".path", "%v", err)
		}
		// Absolute, because the exec plugin in a kubeconfig runs from kubectl's directory.
		d.Path = abs
		switch d.Symlinks {
		case "":
			d.Symlinks = SymlinksTrySecure
		case SymlinksSecure, SymlinksTrySecure, SymlinksInsecure:
		default:
			return yamlpos.Fieldf(path+".symlinks", "unknown value %q (want secure, try-secure or insecure)", d.Symlinks)
		}
		for i, r := range d.Readers {
			n := 0
			for _, set := range []bool{r.User != "", r.UID != nil, r.Group != "", r.GID != nil} {
				if set {
					n++
				}
			}
			if n != 1 {
				return yamlpos.Fieldf(fmt.Sprintf("%s.readers[%d]", path, i), "set exactly one of user, uid, group or gid")
			}
		}
		if len(d.Readers) > 0 {
			// Accepted in the schema so that Teleport configs read, but refused before
			// anything starts: silently skipping ACLs would leave readers locked out.
			return yamlpos.Fieldf(path+".readers", "POSIX ACL readers are not supported yet; grant access with the directory's owner or group instead")
		}
		if d.Name != "" || d.Namespace != "" || len(d.Labels) > 0 {
			return yamlpos.Fieldf(path+"."+firstSet(map[string]bool{"name": d.Name != "", "namespace": d.Namespace != "", "labels": len(d.Labels) > 0}), "not valid for a directory destination")
		}
	case DestMemory:
		if k := firstSet(map[string]bool{"path": d.Path != "", "symlinks": d.Symlinks != "", "readers": len(d.Readers) > 0, "name": d.Name != "", "namespace": d.Namespace != "", "labels": len(d.Labels) > 0}); k != "" {
			return yamlpos.Fieldf(path+"."+k, "not valid for a memory destination")
		}
	case DestKubeSecret:
		if storage {
			return yamlpos.Fieldf(path+".type", "storage may be directory or memory")
		}
		if d.Name == "" {
			return yamlpos.Fieldf(path+".name", "required for a kubernetes_secret destination")
		}
		if msgs := dns1123Subdomain(d.Name); msgs != "" {
			return yamlpos.Fieldf(path+".name", "%q is not a valid Secret name: %s", d.Name, msgs)
		}
		if k := firstSet(map[string]bool{"path": d.Path != "", "symlinks": d.Symlinks != "", "readers": len(d.Readers) > 0}); k != "" {
			return yamlpos.Fieldf(path+"."+k, "not valid for a kubernetes_secret destination")
		}
	case "":
		return yamlpos.Fieldf(path+".type", "required (directory, memory or kubernetes_secret)")
	default:
		want := "directory, memory or kubernetes_secret"
		if storage {
			want = "directory or memory"
		}
		return yamlpos.Fieldf(path+".type", "unknown destination type %q (want %s)", d.Type, want)
	}
	return nil
}

func (o *Output) check(path string) error {
	// fields names the keys each type may have beyond type and destination.
	set := map[string]bool{
		"kubernetes_cluster":    o.KubernetesCluster != "",
		"disable_exec_plugin":   o.DisableExecPlugin,
		"selectors":             len(o.Selectors) > 0,
		"context_name_template": o.ContextNameTemplate != "",
		"secret_namespace":      o.SecretNamespace != "",
		"secret_name_prefix":    o.SecretNamePrefix != "",
		"secret_labels":         len(o.SecretLabels) > 0,
		"project":               o.Project != "",
	}
	allowed := func(keys ...string) error {
		for _, k := range keys {
			delete(set, k)
		}
		if k := firstSet(set); k != "" {
			return yamlpos.Fieldf(path+"."+k, "not valid for %s output", article(o.Type))
		}
		return nil
	}
	needDest := true
	switch o.Type {
	case OutputKubernetes:
		if err := allowed("kubernetes_cluster", "disable_exec_plugin"); err != nil {
			return err
		}
		if o.KubernetesCluster == "" {
			return yamlpos.Fieldf(path+".kubernetes_cluster", "required for a kubernetes output (the kube cluster it holds credentials for)")
		}
	case OutputKubernetesV2:
		if err := allowed("selectors", "disable_exec_plugin", "context_name_template"); err != nil {
			return err
		}
		if err := checkSelectors(path, o.Selectors); err != nil {
			return err
		}
		if o.ContextNameTemplate == "" {
			o.ContextNameTemplate = DefaultContextNameTemplate
		}
		if _, err := ContextName(o.ContextNameTemplate, "cluster", "kube"); err != nil {
			return yamlpos.Fieldf(path+".context_name_template", "%v", err)
		}
	case OutputIdentity:
		if err := allowed(); err != nil {
			return err
		}
	case OutputArgoCD:
		if err := allowed("selectors", "secret_namespace", "secret_name_prefix", "secret_labels", "project"); err != nil {
			return err
		}
		if err := checkSelectors(path, o.Selectors); err != nil {
			return err
		}
		if o.SecretNamespace == "" {
			o.SecretNamespace = DefaultArgoCDNamespace
		}
		// Argo CD outputs write cluster Secrets in secret_namespace themselves.
		needDest = false
		if o.Destination != nil {
			return yamlpos.Fieldf(path+".destination", "not valid for a kubernetes/argo-cd output (it writes one Secret per cluster in secret_namespace)")
		}
	case "":
		return yamlpos.Fieldf(path+".type", "required (kubernetes, kubernetes/v2, identity or kubernetes/argo-cd)")
	default:
		return yamlpos.Fieldf(path+".type", "unknown output type %q (want kubernetes, kubernetes/v2, identity or kubernetes/argo-cd)", o.Type)
	}
	if needDest {
		if o.Destination == nil {
			return yamlpos.Fieldf(path+".destination", "required for %s output", article(o.Type))
		}
		if err := o.Destination.check(path+".destination", false); err != nil {
			return err
		}
	}
	return nil
}

func checkSelectors(path string, sels []Selector) error {
	if len(sels) == 0 {
		return yamlpos.Fieldf(path+".selectors", "at least one selector is required ({name: …} or {labels: {…}})")
	}
	for i, s := range sels {
		if (s.Name == "") == (len(s.Labels) == 0) {
			return yamlpos.Fieldf(fmt.Sprintf("%s.selectors[%d]", path, i), "set exactly one of name or labels")
		}
	}
	return nil
}

// checkSharedDestinations refuses two outputs (or an output and the storage) that write
// to the same place: each would overwrite the other's files at every renewal.
func (c *Config) checkSharedDestinations() error {
	seen := map[string]string{}
	key := func(d *Destination) string {
		switch d.Type {
		case DestDirectory:
			return "directory " + filepath.Clean(d.Path)
		case DestKubeSecret:
			return "kubernetes_secret " + d.Namespace + "/" + d.Name
		}
		return ""
	}
	if k := key(c.Storage); k != "" {
		seen[k] = "storage"
	}
	for i, o := range c.Outputs {
		if o.Destination == nil {
			continue
		}
		k := key(o.Destination)
		if k == "" {
			continue
		}
		path := fmt.Sprintf("outputs[%d].destination", i)
		if prev, ok := seen[k]; ok {
			return yamlpos.Fieldf(path, "%s is already used by %s; two outputs may not share a destination", k, prev)
		}
		seen[k] = path
	}
	return nil
}

// ContextTemplateData is what context_name_template sees.
type ContextTemplateData struct {
	ClusterName string // the Keyport cluster
	KubeName    string // the kube cluster
}

// ContextName expands a context_name_template.
func ContextName(tmpl, cluster, kube string) (string, error) {
	t, err := template.New("context_name_template").Option("missingkey=error").Parse(tmpl)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	if err := t.Execute(&b, ContextTemplateData{ClusterName: cluster, KubeName: kube}); err != nil {
		return "", err
	}
	if strings.TrimSpace(b.String()) == "" {
		return "", fmt.Errorf("expands to an empty context name")
	}
	return b.String(), nil
}

func checkHostPort(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || port == "" {
		return fmt.Errorf("%q is not host:port", addr)
	}
	return nil
}

// firstSet returns the alphabetically first key whose value is true, for stable errors.
func firstSet(m map[string]bool) string {
	best := ""
	for k, v := range m {
		if v && (best == "" || k < best) {
			best = k
		}
	}
	return best
}

// dns1123Subdomain returns why name is not a valid Kubernetes object name, or "".
func dns1123Subdomain(name string) string {
	if len(name) > 253 {
		return "longer than 253 characters"
	}
	for i, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || (r == '-' || r == '.') && i > 0 && i < len(name)-1
		if !ok {
			return "use lower-case letters, digits, '-' and '.', starting and ending with a letter or digit"
		}
	}
	return ""
}

// article puts "a" or "an" before an output type, for error messages.
func article(typ string) string {
	if strings.IndexAny(typ[:1], "aeiou") == 0 {
		return "an " + typ
	}
	return "a " + typ
}

package types

import (
	"net"
	"net/url"
	"strings"
)

// Kinds of the SSO connectors.
const (
	KindOIDC   = "oidc"
	KindGithub = "github"
)

// RedactedSecret is what `tctl get` shows instead of a connector's client secret.
const RedactedSecret = "********"

// OIDCConnector signs people in through an OpenID Connect identity provider: `tsh login
// --auth=NAME`. Its claims_to_roles maps the ID token's claims to Keyport roles; every
// string (or list of strings) claim becomes a trait of the same name, so that role
// templates can read {{external.groups}}.
type OIDCConnector struct {
	Header `yaml:",inline"`
	Spec   OIDCConnectorSpec `yaml:"spec" json:"spec"`
}

// OIDCConnectorSpec is the body of an oidc connector.
type OIDCConnectorSpec struct {
	// IssuerURL is the provider's issuer; its /.well-known/openid-configuration names
	// the endpoints. https, or http on a loopback address.
	IssuerURL    string `yaml:"issuer_url" json:"issuer_url"`
	ClientID     string `yaml:"client_id" json:"client_id"`
	ClientSecret string `yaml:"client_secret" json:"client_secret"`
	// RedirectURL is the proxy's callback, https://PROXY/v1/webapi/oidc/callback,
	// registered with the provider.
	RedirectURL string `yaml:"redirect_url" json:"redirect_url"`
	// Scope is asked for besides openid (e.g. email, groups).
	Scope []string `yaml:"scope,omitempty" json:"scope,omitempty"`
	// UsernameClaim names the claim that becomes the Keyport user name (default email).
	UsernameClaim string `yaml:"username_claim,omitempty" json:"username_claim,omitempty"`
	// ClaimsToRoles: a claim whose value (or one of whose values) matches value grants
	// roles. value may be a glob or ^regex$ as elsewhere in roles.
	ClaimsToRoles []ClaimMapping `yaml:"claims_to_roles" json:"claims_to_roles"`
	// Display is the name tsh and the web pages show.
	Display string `yaml:"display,omitempty" json:"display,omitempty"`
}

// ClaimMapping is one entry of claims_to_roles.
type ClaimMapping struct {
	Claim string   `yaml:"claim" json:"claim"`
	Value string   `yaml:"value" json:"value"`
	Roles []string `yaml:"roles" json:"roles"`
}

// GithubConnector signs people in with GitHub (or GitHub Enterprise): teams_to_roles maps
// organization teams to roles; the traits are github_teams (ORG/TEAM), logins and
// username.
type GithubConnector struct {
	Header `yaml:",inline"`
	Spec   GithubConnectorSpec `yaml:"spec" json:"spec"`
}

// GithubConnectorSpec is the body of a github connector.
type GithubConnectorSpec struct {
	ClientID     string `yaml:"client_id" json:"client_id"`
	ClientSecret string `yaml:"client_secret" json:"client_secret"`
	// RedirectURL is the proxy's callback, https://PROXY/v1/webapi/github/callback.
	RedirectURL string `yaml:"redirect_url" json:"redirect_url"`
	// EndpointURL and APIEndpointURL are GitHub's (the defaults) or a GitHub Enterprise
	// server's.
	EndpointURL    string        `yaml:"endpoint_url,omitempty" json:"endpoint_url,omitempty"`
	APIEndpointURL string        `yaml:"api_endpoint_url,omitempty" json:"api_endpoint_url,omitempty"`
	TeamsToRoles   []TeamMapping `yaml:"teams_to_roles" json:"teams_to_roles"`
	Display        string        `yaml:"display,omitempty" json:"display,omitempty"`
}

// TeamMapping is one entry of teams_to_roles.
type TeamMapping struct {
	Organization string   `yaml:"organization" json:"organization"`
	Team         string   `yaml:"team" json:"team"`
	Roles        []string `yaml:"roles" json:"roles"`
}

// CheckAndSetDefaults validates the connector.
func (c *OIDCConnector) CheckAndSetDefaults() error {
	if err := c.Header.check(KindOIDC); err != nil {
		return err
	}
	s := &c.Spec
	if err := checkEndpoint("spec.issuer_url", s.IssuerURL); err != nil {
		return err
	}
	if err := checkEndpoint("spec.redirect_url", s.RedirectURL); err != nil {
		return err
	}
	if s.ClientID == "" {
		return fieldErrorf("spec.client_id", "is required")
	}
	if err := checkClientSecret(s.ClientSecret); err != nil {
		return err
	}
	if s.UsernameClaim == "" {
		s.UsernameClaim = "email"
	}
	if len(s.ClaimsToRoles) == 0 {
		return fieldErrorf("spec.claims_to_roles", "needs at least one mapping: a login that maps to no role is refused")
	}
	for i, m := range s.ClaimsToRoles {
		p := indexPath("spec.claims_to_roles", i)
		if m.Claim == "" {
			return fieldErrorf(p+".claim", "is required")
		}
		if m.Value == "" {
			return fieldErrorf(p+".value", "is required ('*' for any value)")
		}
		if err := checkPattern(p+".value", m.Value); err != nil {
			return err
		}
		if len(m.Roles) == 0 {
			return fieldErrorf(p+".roles", "needs at least one role")
		}
		if err := checkRoleNames(p+".roles", m.Roles); err != nil {
			return err
		}
	}
	return nil
}

// CheckAndSetDefaults validates the connector.
func (c *GithubConnector) CheckAndSetDefaults() error {
	if err := c.Header.check(KindGithub); err != nil {
		return err
	}
	s := &c.Spec
	if s.EndpointURL == "" {
		s.EndpointURL = "https://github.com"
	}
	if s.APIEndpointURL == "" {
		s.APIEndpointURL = "https://api.github.com"
	}
	for _, f := range [][2]string{{"spec.redirect_url", s.RedirectURL}, {"spec.endpoint_url", s.EndpointURL}, {"spec.api_endpoint_url", s.APIEndpointURL}} {
		if err := checkEndpoint(f[0], f[1]); err != nil {
			return err
		}
	}
	if s.ClientID == "" {
		return fieldErrorf("spec.client_id", "is required")
	}
	if err := checkClientSecret(s.ClientSecret); err != nil {
		return err
	}
	if len(s.TeamsToRoles) == 0 {
		return fieldErrorf("spec.teams_to_roles", "needs at least one mapping: a login that maps to no role is refused")
	}
	for i, m := range s.TeamsToRoles {
		p := indexPath("spec.teams_to_roles", i)
		if m.Organization == "" {
			return fieldErrorf(p+".organization", "is required")
		}
		if m.Team == "" {
			return fieldErrorf(p+".team", "is required")
		}
		if len(m.Roles) == 0 {
			return fieldErrorf(p+".roles", "needs at least one role")
		}
		if err := checkRoleNames(p+".roles", m.Roles); err != nil {
			return err
		}
	}
	return nil
}

// checkEndpoint accepts an https URL, or an http one on a loopback address (a provider or
// proxy on this machine, as in tests and the quickstart).
func checkEndpoint(path, v string) error {
	if v == "" {
		return fieldErrorf(path, "is required")
	}
	u, err := url.Parse(v)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fieldErrorf(path, "%q is not an absolute URL without credentials, query or fragment", v)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); (ip != nil && ip.IsLoopback()) || strings.EqualFold(host, "localhost") {
			return nil
		}
		return fieldErrorf(path, "%q: http is only allowed on a loopback address; use https", v)
	}
	return fieldErrorf(path, "%q: want an https URL", v)
}

func checkClientSecret(v string) error {
	switch v {
	case "":
		return fieldErrorf("spec.client_secret", "is required")
	case RedactedSecret:
		return fieldErrorf("spec.client_secret", "is the placeholder tctl get prints; write the real secret")
	}
	return nil
}

// Redacted returns a copy of r without secrets, for printing: a connector's client
// secret becomes RedactedSecret. Other kinds are returned as they are.
func Redacted(r Resource) Resource {
	switch c := r.(type) {
	case *OIDCConnector:
		cp := *c
		cp.Spec.ClientSecret = RedactedSecret
		return &cp
	case *GithubConnector:
		cp := *c
		cp.Spec.ClientSecret = RedactedSecret
		return &cp
	}
	return r
}

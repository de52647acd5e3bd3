package types

import (
	"strings"
	"testing"
)

func TestConnectorValidation(t *testing.T) {
	oidc := func(f func(*OIDCConnectorSpec)) *OIDCConnector {
		c := &OIDCConnector{Header: Header{Kind: KindOIDC, Version: V3, Metadata: Metadata{Name: "dex"}}, Spec: OIDCConnectorSpec{
			IssuerURL: "https://idp.example.com", ClientID: "keyport", ClientSecret: "s", RedirectURL: "https://proxy.example.com/v1/webapi/oidc/callback",
			ClaimsToRoles: []ClaimMapping{{Claim: "groups", Value: "admins", Roles: []string{"access"}}}}}
		if f != nil {
			f(&c.Spec)
		}
		return c
	}
	for _, tc := range []struct {
		name string
		c    Resource
		want string
	}{
		{"valid", oidc(nil), ""},
		{"http on loopback", oidc(func(s *OIDCConnectorSpec) { s.IssuerURL = "http://127.0.0.1:5556/dex" }), ""},
		{"http elsewhere", oidc(func(s *OIDCConnectorSpec) { s.IssuerURL = "http://idp.example.com" }), "spec.issuer_url: \"http://idp.example.com\": http is only allowed on a loopback address"},
		{"no secret", oidc(func(s *OIDCConnectorSpec) { s.ClientSecret = "" }), "spec.client_secret: is required"},
		{"the redacted secret", oidc(func(s *OIDCConnectorSpec) { s.ClientSecret = RedactedSecret }), "placeholder tctl get prints"},
		{"no mapping", oidc(func(s *OIDCConnectorSpec) { s.ClaimsToRoles = nil }), "spec.claims_to_roles: needs at least one mapping"},
		{"mapping without roles", oidc(func(s *OIDCConnectorSpec) { s.ClaimsToRoles[0].Roles = nil }), "spec.claims_to_roles[0].roles"},
		{"redirect with a query", oidc(func(s *OIDCConnectorSpec) { s.RedirectURL = "https://proxy/cb?x=1" }), "spec.redirect_url"},
		{"github valid", &GithubConnector{Header: Header{Kind: KindGithub, Version: V3, Metadata: Metadata{Name: "github"}}, Spec: GithubConnectorSpec{
			ClientID: "id", ClientSecret: "s", RedirectURL: "https://proxy/v1/webapi/github/callback",
			TeamsToRoles: []TeamMapping{{Organization: "acme", Team: "platform", Roles: []string{"access"}}}}}, ""},
		{"github team without org", &GithubConnector{Header: Header{Kind: KindGithub, Version: V3, Metadata: Metadata{Name: "github"}}, Spec: GithubConnectorSpec{
			ClientID: "id", ClientSecret: "s", RedirectURL: "https://proxy/v1/webapi/github/callback",
			TeamsToRoles: []TeamMapping{{Team: "platform", Roles: []string{"access"}}}}}, "spec.teams_to_roles[0].organization: is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.c.CheckAndSetDefaults()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
	if c := oidc(nil); c.CheckAndSetDefaults() != nil || c.Spec.UsernameClaim != "email" {
		t.Errorf("username_claim default %q", c.Spec.UsernameClaim)
	}
	if r := Redacted(oidc(nil)).(*OIDCConnector); r.Spec.ClientSecret != RedactedSecret {
		t.Error("Redacted kept the secret")
	}
}

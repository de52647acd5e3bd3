package auth

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"golang.org/x/oauth2"

	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/types"
)

// githubLogin exchanges the code for an access token and reads the user and their teams
// from GitHub's API; teams_to_roles maps ORG/TEAM to roles. Traits: username and logins
// (the GitHub login), github_teams (ORG/TEAM of every team).
func (s *Server) githubLogin(ctx context.Context, c *types.GithubConnector, r *ssoRequest, code string) (*SSOResult, string, error) {
	cctx := context.WithValue(ctx, oauth2.HTTPClient, s.ssoClient())
	tok, err := githubConfig(c).Exchange(cctx, code, oauth2.VerifierOption(r.Verifier))
	if err != nil {
		return nil, "", errs.AccessDeniedf("GitHub refused the code (used already, expired, or not this login's): %v", err)
	}
	api := strings.TrimSuffix(c.Spec.APIEndpointURL, "/")
	var user struct {
		Login string `json:"login"`
		ID    int64  `json:"id"`
	}
	if err := s.githubGet(ctx, tok.AccessToken, api+"/user", &user); err != nil {
		return nil, "", err
	}
	if user.Login == "" {
		return nil, "", errs.AccessDeniedf("GitHub returned no login for the user")
	}
	var teams []struct {
		Slug         string `json:"slug"`
		Organization struct {
			Login string `json:"login"`
		} `json:"organization"`
	}
	if err := s.githubGet(ctx, tok.AccessToken, api+"/user/teams?per_page=100", &teams); err != nil {
		return nil, "", err
	}
	res := &SSOResult{User: user.Login, Traits: map[string][]string{"username": {user.Login}, "logins": {user.Login}}}
	for _, t := range teams {
		res.Traits["github_teams"] = append(res.Traits["github_teams"], t.Organization.Login+"/"+t.Slug)
	}
	for i, m := range c.Spec.TeamsToRoles {
		for _, t := range teams {
			if strings.EqualFold(t.Organization.Login, m.Organization) && strings.EqualFold(t.Slug, m.Team) {
				res.Mappings = append(res.Mappings, fmt.Sprintf("teams_to_roles[%d]: %s/%s -> %s", i, m.Organization, m.Team, strings.Join(m.Roles, ", ")))
				for _, role := range m.Roles {
					if !slices.Contains(res.Roles, role) {
						res.Roles = append(res.Roles, role)
					}
				}
				break
			}
		}
	}
	return res, fmt.Sprint(user.ID), nil
}

// githubGet reads one JSON document of GitHub's API with the user's token.
func (s *Server) githubGet(ctx context.Context, token, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/vnd.github+json")
	resp, err := s.ssoClient().Do(req)
	if err != nil {
		return errs.BadParameterf("GitHub API %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return errs.BadParameterf("GitHub API %s: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return errs.AccessDeniedf("GitHub API %s: %s", url, resp.Status)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return errs.BadParameterf("GitHub API %s: unreadable answer: %v", url, err)
	}
	return nil
}

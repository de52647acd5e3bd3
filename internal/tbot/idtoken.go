package tbot

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/keyport/keyport/internal/errs"
)

// The variables GitHub Actions sets in a job that has `permissions: id-token: write`.
const (
	GitHubTokenURLEnv     = "ACTIONS_ID_TOKEN_REQUEST_URL"
	GitHubRequestTokenEnv = "ACTIONS_ID_TOKEN_REQUEST_TOKEN"
)

// maxIDToken bounds what is read as an ID token.
const maxIDToken = 64 << 10

// githubIDToken asks the runner's token service for an ID token with audience aud.
func githubIDToken(ctx context.Context, hc *http.Client, aud string) (string, error) {
	base, bearer := os.Getenv(GitHubTokenURLEnv), os.Getenv(GitHubRequestTokenEnv)
	if base == "" || bearer == "" {
		return "", errs.BadParameterf("$%s and $%s are not set: run tbot in a GitHub Actions job with `permissions: id-token: write`", GitHubTokenURLEnv, GitHubRequestTokenEnv)
	}
	u, err := url.Parse(base)
	if err != nil {
		return "", errs.BadParameterf("$%s is not a URL: %v", GitHubTokenURLEnv, err)
	}
	q := u.Query()
	q.Set("audience", aud)
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+bearer)
	req.Header.Set("Accept", "application/json")
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("asking the runner for an ID token: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxIDToken))
	if err != nil {
		return "", fmt.Errorf("reading the runner's ID token: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("the runner's token service answered %s: %s", resp.Status, strings.TrimSpace(string(body[:min(len(body), 200)])))
	}
	var out struct {
		Value string `json:"value"`
	}
	if err := json.Unmarshal(body, &out); err != nil || out.Value == "" {
		return "", fmt.Errorf("the runner's token service sent no ID token (%d bytes)", len(body))
	}
	return checkIDToken(out.Value, "the runner's answer")
}

// envIDToken reads an ID token from the environment variable name.
func envIDToken(name, hint string) (string, error) {
	v := os.Getenv(name)
	if v == "" {
		return "", errs.BadParameterf("$%s is empty: %s", name, hint)
	}
	return checkIDToken(v, "$"+name)
}

// fileIDToken reads an ID token from a file.
func fileIDToken(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", errs.BadParameterf("reading the ID token: %v", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxIDToken))
	if err != nil {
		return "", errs.BadParameterf("reading the ID token: %v", err)
	}
	return checkIDToken(string(data), path)
}

// checkIDToken trims what a platform wrote and checks it looks like a JWT, so that a
// wrong variable is named here rather than refused by the server as "not a JWT".
func checkIDToken(v, where string) (string, error) {
	v = strings.TrimSpace(v)
	if strings.Count(v, ".") != 2 || strings.ContainsAny(v, " \t\r\n") {
		return "", errs.BadParameterf("%s does not hold an ID token (a JWT: three dot-separated parts)", where)
	}
	return v, nil
}

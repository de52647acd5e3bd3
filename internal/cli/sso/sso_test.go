package sso

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keyport/keyport/internal/testenv/golden"
)

// The pages the browser lands on, as a person sees them: golden files, and a policy that
// allows their one style sheet and nothing else.
func TestCallbackPages(t *testing.T) {
	for _, tc := range []struct {
		name string
		page Page
		code int
	}{
		{"signed-in.html", Page{OK: true, Connector: "dex", User: "alice@example.com", Roles: []string{"sso-kube", "auditor"}}, 200},
		{"test-done.html", Page{OK: true, Test: true, Connector: "dex", User: "alice@example.com", Roles: []string{"sso-kube"}}, 200},
		{"failed.html", Page{Connector: "dex", Error: `SSO login failed: oidc connector "dex" maps bob@example.com to no role: <script>alert(1)</script>`}, 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			WritePage(rec, tc.page)
			if rec.Code != tc.code {
				t.Errorf("status %d, want %d", rec.Code, tc.code)
			}
			body := rec.Body.Bytes()
			golden.Check(t, filepath.Join("testdata", tc.name), body)
			if bytes.Contains(body, []byte("<script>")) {
				t.Error("the error was not escaped")
			}
			style := regexp.MustCompile(`(?s)<style>(.*?)</style>`).FindSubmatch(body)
			sum := sha256.Sum256(style[1])
			if want := "style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"; !strings.Contains(rec.Header().Get("Content-Security-Policy"), want) {
				t.Errorf("policy %q does not allow the page's style sheet (%s)", rec.Header().Get("Content-Security-Policy"), want)
			}
		})
	}
}

// What tctl sso test prints, for a fixed mapping.
func TestFormatTest(t *testing.T) {
	var buf bytes.Buffer
	err := FormatTest(&buf, "oidc", "dex", Mapping{
		User: "alice@example.com", Roles: []string{"sso-kube"},
		Traits:   map[string][]string{"email": {"alice@example.com"}, "groups": {"platform", "developers"}, "name": {"Alice"}},
		Mappings: []string{"claims_to_roles[0]: groups=platform -> sso-kube"},
		Claims:   map[string]any{"email": "alice@example.com", "groups": []any{"platform", "developers"}, "iss": "http://127.0.0.1:5556/dex"},
		Expires:  time.Date(2026, 12, 6, 20, 0, 0, 0, time.UTC),
	})
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, filepath.Join("testdata", "sso-test.txt"), buf.Bytes())
}

package oidcjoin_test

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/keyport/keyport/internal/oidcjoin"
)

func TestGlob(t *testing.T) {
	for _, c := range []struct {
		pattern, s string
		want       bool
	}{
		{"repo", "repo", true},
		{"repo-*", "repo", false},
		{"repo-*", "repo-a", true},
		{"org/*", "org/a/b", true},
		{"*", "", true},
		{"", "", true},
		{"", "x", false},
		{"refs/heads/?ain", "refs/heads/main", true},
		{"refs/heads/?ain", "refs/heads/ain", false},
		{"*main", "refs/heads/main", true},
		{"a*b*c", "aXbYc", true},
		{"a*b*c", "aXbY", false},
		{"Repo", "repo", false},
		{"é*", "éa", true},
		{"*", "*00000", true},
		{"a*", "a*b", true},
		{"?", "*", true},
	} {
		if got := oidcjoin.Glob(c.pattern, c.s); got != c.want {
			t.Errorf("Glob(%q, %q) = %v, want %v", c.pattern, c.s, got, c.want)
		}
	}
}

func TestMatch(t *testing.T) {
	claims := map[string]any{"repository": "org/repo", "ref": "refs/heads/main", "ref_protected": true,
		"run_number": float64(42), "groups": []any{"dev", "ops"}, "obj": map[string]any{"a": "b"}}
	for _, c := range []struct {
		name  string
		rules []map[string]string
		want  int
	}{
		{"exact", []map[string]string{{"repository": "org/repo"}}, 0},
		{"every claim of a rule", []map[string]string{{"repository": "org/repo", "ref": "refs/heads/dev"}}, -1},
		{"any rule", []map[string]string{{"repository": "org/other"}, {"repository": "org/*", "ref": "refs/heads/main"}}, 1},
		{"missing claim", []map[string]string{{"environment": "*"}}, -1},
		{"bool", []map[string]string{{"ref_protected": "true"}}, 0},
		{"number", []map[string]string{{"run_number": "42"}}, 0},
		{"list element", []map[string]string{{"groups": "ops"}}, 0},
		{"object", []map[string]string{{"obj": "*"}}, -1},
		{"empty rule matches nothing", []map[string]string{{}}, -1},
		{"no rules", nil, -1},
	} {
		if got := oidcjoin.Match(c.rules, claims); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
	d := oidcjoin.Describe([]map[string]string{{"repository": "org/x", "environment": "prod"}}, claims)
	if d != `environment (missing), repository "org/repo"` {
		t.Errorf("Describe: %s", d)
	}
	m := oidcjoin.Mismatch([]map[string]string{{"repository": "org/x"}}, claims)
	if len(m) != 1 || !strings.Contains(m[0], `repository org/repo does not match "org/x"`) {
		t.Errorf("Mismatch: %v", m)
	}
}

// FuzzMatch checks the matcher never panics and agrees with itself: a literal pattern
// (no * or ?) matches exactly its own text, and "*" matches anything.
func FuzzMatch(f *testing.F) {
	f.Add("repo-*", "repo")
	f.Add("a*b?c", "aXXbYc")
	f.Add("***", "")
	f.Fuzz(func(t *testing.T, pattern, s string) {
		got := oidcjoin.Glob(pattern, s)
		if !strings.ContainsAny(pattern, "*?") && got != (pattern == s) {
			t.Fatalf("literal %q vs %q: %v", pattern, s, got)
		}
		if !oidcjoin.Glob("*", s) || !oidcjoin.Glob(pattern, pattern) && !strings.ContainsAny(pattern, "*?") {
			t.Fatal("* must match anything, and a literal itself")
		}
		if utf8.ValidString(pattern) && utf8.ValidString(s) {
			// The reference: the same glob as an anchored regular expression.
			var re strings.Builder
			re.WriteString(`(?s)\A`)
			for _, r := range pattern {
				switch r {
				case '*':
					re.WriteString(".*")
				case '?':
					re.WriteString(".")
				default:
					re.WriteString(regexp.QuoteMeta(string(r)))
				}
			}
			re.WriteString(`\z`)
			if want := regexp.MustCompile(re.String()).MatchString(s); got != want {
				t.Fatalf("Glob(%q, %q) = %v, the regular expression says %v", pattern, s, got, want)
			}
		}
		claims := map[string]any{"c": s, "l": []any{s, 1.0, true, nil}}
		if oidcjoin.Match([]map[string]string{{"c": pattern}}, claims) == 0 != got {
			t.Fatal("Match disagrees with Glob")
		}
		_ = oidcjoin.Describe([]map[string]string{{"c": pattern, "l": pattern}}, claims)
	})
}

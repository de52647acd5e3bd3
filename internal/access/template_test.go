package access

import (
	"slices"
	"testing"
)

func TestExpand(t *testing.T) {
	traits := map[string][]string{
		"kubernetes_groups": {"dev", "ops"},
		"kubernetes_users":  {"alice"},
		"email":             {"alice@example.com", "Bob <bob@example.com>", "not-an-address"},
		"team name":         {"blue"},
		"empty":             {},
		"blank":             {""},
	}
	tests := []struct {
		name    string
		value   string
		want    []string
		wantErr bool
	}{
		{"literal stays as is", "editor", []string{"editor"}, false},
		{"internal trait expands to each value", "{{internal.kubernetes_groups}}", []string{"dev", "ops"}, false},
		{"external reads the same traits", "{{external.kubernetes_users}}", []string{"alice"}, false},
		{"spaces inside braces are ignored", "{{ internal.kubernetes_users }}", []string{"alice"}, false},
		{"text around the template is kept", "team-{{internal.kubernetes_groups}}-ro", []string{"team-dev-ro", "team-ops-ro"}, false},
		{"bracket form names odd traits", `{{external["team name"]}}`, []string{"blue"}, false},
		{"missing trait expands to nothing", "{{internal.nope}}", nil, false},
		{"empty trait expands to nothing", "{{internal.empty}}", nil, false},
		{"empty values are dropped", "{{internal.blank}}", nil, false},
		{"email.local takes the local part", "{{email.local(external.email)}}", []string{"alice", "bob"}, false},
		{"regexp.replace rewrites matches and drops the rest", `{{regexp.replace(internal.kubernetes_groups, "^d(.*)$", "x$1")}}`, []string{"xev"}, false},
		{"unknown namespace is an error", "{{foo.bar}}", nil, true},
		{"unknown function is an error", "{{strings.upper(internal.x)}}", nil, true},
		{"two templates are an error", "{{internal.a}}{{internal.b}}", nil, true},
		{"unbalanced braces are an error", "{{internal.a", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := expand(tt.value, traits)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("expand(%q) = %q, want %q", tt.value, got, tt.want)
			}
		})
	}
}

package types

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/keyport/keyport/internal/errs"
)

// TestRoleDefaults pins the per-version kubernetes_resources defaults (SPEC section 6).
func TestRoleDefaults(t *testing.T) {
	wildV7 := []KubernetesResource{{Kind: "*", Namespace: "*", Name: "*", Verbs: []string{"*"}}}
	wildV8 := []KubernetesResource{{Kind: "*", APIGroup: "*", Namespace: "*", Name: "*", Verbs: []string{"*"}}}
	podV5 := []KubernetesResource{{Kind: "pod", Namespace: "*", Name: "*", Verbs: []string{"*"}}}
	tests := []struct {
		version string
		labels  Labels
		want    []KubernetesResource
	}{
		{V5, Labels{"env": {"dev"}}, podV5},
		{V5, nil, nil},
		{V6, Labels{"env": {"dev"}}, nil},
		{V7, Labels{"env": {"dev"}}, wildV7},
		{V7, nil, nil},
		{V8, Labels{"*": {"*"}}, wildV8},
		{V8, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.version, func(t *testing.T) {
			r := NewRole("r", tt.version, RoleSpec{Allow: RoleConditions{KubernetesLabels: tt.labels}})
			if err := r.CheckAndSetDefaults(); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(r.Spec.Allow.KubernetesResources, tt.want) {
				t.Errorf("allow.kubernetes_resources = %#v, want %#v", r.Spec.Allow.KubernetesResources, tt.want)
			}
			if r.Spec.Deny.KubernetesResources != nil {
				t.Errorf("deny got a default: %#v", r.Spec.Deny.KubernetesResources)
			}
			if r.Spec.Options.MaxSessionTTL.Duration() != DefaultMaxSessionTTL {
				t.Errorf("max_session_ttl = %v", r.Spec.Options.MaxSessionTTL)
			}
		})
	}
}

// TestRoleValidation covers values that only programs (not the YAML tests) produce and
// the accepted side of each rule.
func TestRoleValidation(t *testing.T) {
	res := func(version string, k KubernetesResource) *Role {
		return NewRole("r", version, RoleSpec{Allow: RoleConditions{KubernetesResources: []KubernetesResource{k}}})
	}
	tests := []struct {
		name string
		role *Role
		want string // "" for valid
	}{
		{"v6 explicit wildcard verbs", res(V6, KubernetesResource{Kind: "pod", Namespace: "*", Name: "*", Verbs: []string{"*"}}), ""},
		{"v5 kind star", res(V5, KubernetesResource{Kind: "*", Namespace: "*", Name: "*"}), ""},
		{"v7 cluster-wide kind without namespace", res(V7, KubernetesResource{Kind: "kube_node", Name: "*", Verbs: []string{"get"}}), ""},
		{"v7 namespaced kind without namespace", res(V7, KubernetesResource{Kind: "pod", Name: "*", Verbs: []string{"get"}}),
			`spec.allow.kubernetes_resources[0].namespace: is required for kind "pod"`},
		{"v7 missing name", res(V7, KubernetesResource{Kind: "pod", Namespace: "*", Verbs: []string{"get"}}),
			`spec.allow.kubernetes_resources[0].name: is required`},
		{"v7 missing kind", res(V7, KubernetesResource{Namespace: "*", Name: "*"}),
			`spec.allow.kubernetes_resources[0].kind: is required`},
		{"v8 CRD", res(V8, KubernetesResource{Kind: "certificates", APIGroup: "cert-manager.io", Namespace: "*", Name: "*", Verbs: []string{"list"}}), ""},
		{"v8 regex api group", res(V8, KubernetesResource{Kind: "*", APIGroup: "^.*\\.example\\.com$", Namespace: "*", Name: "*", Verbs: []string{"*"}}), ""},
		{"v8 uppercase kind", res(V8, KubernetesResource{Kind: "Pods", Namespace: "*", Name: "*"}),
			`spec.allow.kubernetes_resources[0].kind: invalid kind "Pods": role v8 takes "*" or a plural resource name such as "pods"`},
		{"v8 core namespaced without namespace", res(V8, KubernetesResource{Kind: "pods", Name: "*"}),
			`spec.allow.kubernetes_resources[0].namespace: is required for kind "pods"`},
		{"v8 nodes without namespace", res(V8, KubernetesResource{Kind: "nodes", Name: "*", Verbs: []string{"get"}}), ""},
		{"v8 bad api group", res(V8, KubernetesResource{Kind: "widgets", APIGroup: "Example.COM", Name: "*"}),
			`spec.allow.kubernetes_resources[0].api_group: invalid API group "Example.COM"`},
		{"negative ttl", NewRole("r", V7, RoleSpec{Options: RoleOptions{MaxSessionTTL: -1}}),
			"spec.options.max_session_ttl: must not be negative"},
		{"empty label values", NewRole("r", V7, RoleSpec{Allow: RoleConditions{KubernetesLabels: Labels{"env": {}}}}),
			"spec.allow.kubernetes_labels.env: needs at least one value"},
		{"rule without verbs", NewRole("r", V7, RoleSpec{Allow: RoleConditions{Rules: []Rule{{Resources: []string{"role"}}}}}),
			"spec.allow.rules[0].verbs: is required"},
		{"bad rule verb in deny", NewRole("r", V7, RoleSpec{Deny: RoleConditions{Rules: []Rule{{Resources: []string{"*"}, Verbs: []string{"write"}}}}}),
			`spec.deny.rules[0].verbs[0]: unknown verb "write"`},
		{"template with text around it", NewRole("r", V7, RoleSpec{Allow: RoleConditions{KubernetesUsers: []string{"ci-{{external.sub}}"}}}), ""},
		{"missing version", NewRole("r", "", RoleSpec{}), "version: is required (want v5, v6, v7 or v8)"},
		{"wrong kind", &Role{Header: Header{Kind: "user", Version: V7, Metadata: Metadata{Name: "r"}}}, `kind: is "user", want "role"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.role.CheckAndSetDefaults()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error = %v, want %s", err, tt.want)
			}
			if !errs.IsBadParameter(err) {
				t.Errorf("kind = %v", errs.KindOf(err))
			}
			if _, ok := AsFieldError(err); !ok {
				t.Errorf("no FieldError in %v", err)
			}
		})
	}
}

func TestBuiltinRoles(t *testing.T) {
	editor, access, auditor := NewEditorRole(), NewAccessRole(), NewAuditorRole()
	if got := editor.Spec.Allow.Rules; !reflect.DeepEqual(got, []Rule{{Resources: []string{"*"}, Verbs: []string{"*"}}}) {
		t.Errorf("editor rules = %#v", got)
	}
	a := access.Spec.Allow
	if !reflect.DeepEqual(a.KubernetesLabels, Labels{"*": {"*"}}) ||
		!reflect.DeepEqual(a.KubernetesGroups, []string{"{{internal.kubernetes_groups}}"}) ||
		!reflect.DeepEqual(a.KubernetesUsers, []string{"{{internal.kubernetes_users}}"}) ||
		!reflect.DeepEqual(a.KubernetesResources, []KubernetesResource{{Kind: "*", Namespace: "*", Name: "*", Verbs: []string{"*"}}}) {
		t.Errorf("access allow = %#v", a)
	}
	if got := auditor.Spec.Allow.Rules; !reflect.DeepEqual(got, []Rule{{Resources: []string{"event", "session"}, Verbs: []string{"list", "read"}}}) {
		t.Errorf("auditor rules = %#v", got)
	}
	rs := []Resource{editor, access, auditor}
	for _, r := range rs {
		if r.GetVersion() != V7 {
			t.Errorf("%s version = %s", r.GetName(), r.GetVersion())
		}
	}
	assertRoundTrip(t, rs)
}

func TestTokenCanonicalRoles(t *testing.T) {
	for in, want := range map[string]string{"bot": "Bot", "BOT": "Bot", "Bot": "Bot", "kube": "Kube", "KUBE": "Kube"} {
		tok := &Token{Header: Header{Metadata: Metadata{Name: "t"}}, Spec: TokenSpec{Roles: []string{in}}}
		if want == "Bot" {
			tok.Spec.BotName = "b"
		}
		if err := tok.CheckAndSetDefaults(); err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if tok.Spec.Roles[0] != want || tok.Kind != KindToken || tok.Version != V2 || tok.Spec.JoinMethod != JoinMethodToken {
			t.Errorf("%s: got %#v", in, tok)
		}
	}
	tok := &Token{Header: Header{Metadata: Metadata{Name: "t"}}, Spec: TokenSpec{Roles: []string{"Kube"}, BotName: "b"}}
	if err := tok.CheckAndSetDefaults(); err == nil || err.Error() != "spec.bot_name: is only for Bot tokens" {
		t.Errorf("Kube token with bot_name: %v", err)
	}
	tok = &Token{Header: Header{Metadata: Metadata{Name: "t"}}, Spec: TokenSpec{Roles: []string{"Kube"}, Kubernetes: &KubernetesJoin{}}}
	if err := tok.CheckAndSetDefaults(); err == nil || err.Error() != "spec.kubernetes: is only for join_method kubernetes" {
		t.Errorf("token join with kubernetes rules: %v", err)
	}
	tok = &Token{Header: Header{Metadata: Metadata{Name: "t"}}, Spec: TokenSpec{Roles: []string{"Kube", "Bot"}}}
	if err := tok.CheckAndSetDefaults(); err == nil || err.Error() != "spec.roles: a token has exactly one role, Bot or Kube" {
		t.Errorf("two roles: %v", err)
	}
}

func TestBot(t *testing.T) {
	user, role := BotResourceNames("example")
	if user != "bot-example" || role != "bot-example" {
		t.Errorf("BotResourceNames = %q, %q", user, role)
	}
	b := NewBot("example", "example-role")
	if err := b.CheckAndSetDefaults(); err != nil {
		t.Fatal(err)
	}
	dup := []byte("kind: bot\nversion: v1\nmetadata: {name: b}\nspec:\n  traits:\n  - {name: a, values: [x]}\n  - {name: a, values: [y]}\n")
	if _, err := Decode("bot.yaml", dup); err == nil || err.Error() != `bot.yaml:7: spec.traits[1].name: duplicate trait "a"` {
		t.Errorf("duplicate trait: %v", err)
	}
}

func TestLock(t *testing.T) {
	exp := time.Date(2030, 1, 1, 1, 0, 0, 0, time.FixedZone("CET", 3600))
	l := NewLock("l", LockTarget{BotInstanceID: "abc"}, "stop")
	l.Spec.Expires = &exp
	if err := l.CheckAndSetDefaults(); err != nil {
		t.Fatal(err)
	}
	if l.Spec.Expires.Location() != time.UTC || !l.Spec.Expires.Equal(exp) {
		t.Errorf("expires not normalised to UTC: %v", l.Spec.Expires)
	}
	if got := l.Spec.Target.String(); got != "bot_instance_id=abc" {
		t.Errorf("target = %q", got)
	}
}

func TestParseKind(t *testing.T) {
	for in, want := range map[string]string{
		"role": KindRole, "roles": KindRole, "Users": KindUser, "bots": KindBot, "tokens": KindToken,
		"kube_cluster": KindKubeCluster, "kube_clusters": KindKubeCluster, "locks": KindLock,
	} {
		if got, ok := ParseKind(in); !ok || got != want {
			t.Errorf("ParseKind(%q) = %q, %v", in, got, ok)
		}
	}
	if _, ok := ParseKind("widget"); ok {
		t.Error("ParseKind(widget) succeeded")
	}
}

func TestDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		8 * time.Hour:                  "8h",
		90 * time.Minute:               "1h30m",
		10 * time.Minute:               "10m",
		time.Hour + 5*time.Second:      "1h0m5s",
		1500 * time.Millisecond:        "1.5s",
		30*time.Hour + time.Nanosecond: "30h0m0.000000001s",
		0:                              "0s",
	} {
		got := Duration(d).String()
		if got != want {
			t.Errorf("%v: got %q, want %q", time.Duration(d), got, want)
		}
		if back, err := time.ParseDuration(got); err != nil || back != d {
			t.Errorf("%q does not parse back to %v: %v, %v", got, d, back, err)
		}
	}
}

func TestStringsJSON(t *testing.T) {
	var s Strings
	if err := json.Unmarshal([]byte(`"a"`), &s); err != nil || !reflect.DeepEqual(s, Strings{"a"}) {
		t.Errorf("scalar: %v %v", s, err)
	}
	if err := json.Unmarshal([]byte(`["a","b"]`), &s); err != nil || !reflect.DeepEqual(s, Strings{"a", "b"}) {
		t.Errorf("list: %v %v", s, err)
	}
	if b, _ := json.Marshal(Strings{"a"}); string(b) != `["a"]` {
		t.Errorf("marshal: %s", b)
	}
}

// TestEncodeTrickyStrings covers strings yaml.v3's own encoder gets wrong (a leading line
// break, a "<<" key) and strings that would read back as another type if left unquoted.
func TestEncodeTrickyStrings(t *testing.T) {
	tricky := []string{
		"\t", " lead", "trail ", "a\nb", "a\n", "\n", "\n\n", "\na", "\n\na", " \n ", "a  \n  b",
		"\r", "a\r\nb", "\u0085", "\u2028", "\ufeff", "a\x00b", "\x7f", "\x01",
		"#x", "- x", "x: y", "'", "\"", "\\", "null", "~", "", "0x1F", "1e3", ".inf", "-.5",
		"yes", "No", "true", "0o17", "2025-01-01", "<<", "=", "!x", "&x", "*x", "%x", "@x",
		"`x", "{x}", "[x]", "---", "...", "é", "\U0001F600",
	}
	for _, s := range tricky {
		key := s
		if key == "" {
			key = "empty"
		}
		u := NewUser("u")
		u.Metadata.Description = s
		u.Metadata.Labels = map[string]string{"k": s}
		u.Spec.Traits = Traits{key: {s, s + "x"}}
		u.Spec.Status.LockedMessage = s
		r := NewRole("r", V7, RoleSpec{Allow: RoleConditions{
			KubernetesLabels: Labels{key: {s + "z"}},
			KubernetesGroups: []string{s + "g"},
		}})
		for _, res := range []Resource{u, r} {
			if err := res.CheckAndSetDefaults(); err != nil {
				t.Fatalf("%q: %v", s, err)
			}
		}
		assertRoundTrip(t, []Resource{u, r})
	}
}

package types

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/testenv/golden"
)

func fixtures(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	return files
}

// TestGolden decodes every fixture, compares its YAML and JSON encodings with the golden
// files, and checks that both encodings read back to the same resources.
func TestGolden(t *testing.T) {
	for _, file := range fixtures(t) {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			rs, err := Decode(filepath.Base(file), data)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			out, err := EncodeAll(rs)
			if err != nil {
				t.Fatalf("EncodeAll: %v", err)
			}
			var js bytes.Buffer
			for _, r := range rs {
				b, err := EncodeJSON(r)
				if err != nil {
					t.Fatalf("EncodeJSON: %v", err)
				}
				js.Write(b)
			}
			golden.Check(t, filepath.Join("testdata", "golden", name+".yaml"), out)
			golden.Check(t, filepath.Join("testdata", "golden", name+".json"), js.Bytes())
			assertRoundTrip(t, rs)
		})
	}
}

// assertRoundTrip checks decode(encode(rs)) == rs for YAML and for the storage form.
func assertRoundTrip(t testing.TB, rs []Resource) {
	t.Helper()
	out, err := EncodeAll(rs)
	if err != nil {
		t.Fatalf("EncodeAll: %v", err)
	}
	again, err := Decode("encoded.yaml", out)
	if err != nil {
		t.Fatalf("Decode(Encode(x)): %v\n%s", err, out)
	}
	if !reflect.DeepEqual(again, rs) {
		t.Fatalf("Decode(Encode(x)) != x\nencoded:\n%s\nx: %#v\ngot: %#v", out, rs, again)
	}
	for _, r := range rs {
		b, err := MarshalStorage(r)
		if err != nil {
			t.Fatalf("MarshalStorage: %v", err)
		}
		back, err := UnmarshalStorage(b)
		if err != nil {
			t.Fatalf("UnmarshalStorage: %v\n%s", err, b)
		}
		if !reflect.DeepEqual(back, r) {
			t.Fatalf("UnmarshalStorage(MarshalStorage(x)) != x\njson: %s\nx: %#v\ngot: %#v", b, r, back)
		}
	}
}

func TestGuideRole(t *testing.T) {
	data, err := os.ReadFile("testdata/guide-role.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rs, err := Decode("role.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	role := rs[0].(*Role)
	want := RoleConditions{
		KubernetesLabels:    Labels{"*": {"*"}},
		KubernetesGroups:    []string{"editor"},
		KubernetesResources: []KubernetesResource{{Kind: "*", Namespace: "*", Name: "*", Verbs: []string{"*"}}},
	}
	if role.Version != V6 || role.Metadata.Name != "example-role" || !reflect.DeepEqual(role.Spec.Allow, want) {
		t.Fatalf("got %#v", role)
	}
	if role.Spec.Options.MaxSessionTTL.Duration() != DefaultMaxSessionTTL {
		t.Errorf("max_session_ttl = %v", role.Spec.Options.MaxSessionTTL)
	}
}

func TestDecodeErrors(t *testing.T) {
	const roleHead = "kind: role\nversion: v7\nmetadata:\n  name: r\nspec:\n  allow:\n" // spec.allow's fields start on line 7
	const v6Head = "kind: role\nversion: v6\nmetadata:\n  name: r\nspec:\n  allow:\n"
	tests := []struct {
		name, file, in, want string
	}{
		{
			name: "unknown top-level field",
			file: "role.yaml",
			in:   "kind: role\nversion: v7\nmetadata: {name: r}\nspecs: {}\n",
			want: "role.yaml:4: specs: unknown field",
		},
		{
			name: "unknown metadata field",
			file: "role.yaml",
			in:   "kind: role\nversion: v7\nmetadata:\n  name: r\n  namespace: default\n",
			want: "role.yaml:5: metadata.namespace: unknown field",
		},
		{
			name: "unknown field in allow (the guide's role, misspelt)",
			file: "role.yaml",
			in: `kind: role
version: v6
metadata:
  name: example-role
spec:
  allow:
    kubernetes_labels:
      '*': '*'
    kubernetes_groupz:
    - editor
`,
			want: "role.yaml:9: spec.allow.kubernetes_groupz: unknown field",
		},
		{
			name: "unknown field in a list item",
			file: "role.yaml",
			in:   roleHead + "    kubernetes_labels: {'*': '*'}\n    kubernetes_resources:\n    - kind: pod\n      namespace: '*'\n      name: '*'\n      verb: [get]\n",
			want: "role.yaml:12: spec.allow.kubernetes_resources[0].verb: unknown field",
		},
		{
			name: "mapping where a list of strings is expected",
			file: "role.yaml",
			in:   roleHead + "    kubernetes_groups:\n      editor: true\n",
			want: "role.yaml:7: spec.allow.kubernetes_groups: expected a list of strings, got a mapping",
		},
		{
			name: "string where a list is expected",
			file: "role.yaml",
			in:   roleHead + "    kubernetes_groups: editor\n",
			want: "role.yaml:7: spec.allow.kubernetes_groups: expected a list of strings, got a string",
		},
		{
			name: "list where a mapping is expected",
			file: "role.yaml",
			in:   roleHead + "    kubernetes_labels: [env, prod]\n",
			want: "role.yaml:7: spec.allow.kubernetes_labels: expected a mapping, got a list",
		},
		{
			name: "number where a duration is expected",
			file: "role.yaml",
			in:   "kind: role\nversion: v7\nmetadata:\n  name: r\nspec:\n  options:\n    max_session_ttl: 8\n",
			want: `role.yaml:7: spec.options.max_session_ttl: expected a duration such as "8h", got a number`,
		},
		{
			name: "bad duration string",
			file: "bot.yaml",
			in:   "kind: bot\nversion: v1\nmetadata:\n  name: b\nspec:\n  max_session_ttl: 8 hours\n",
			want: `bot.yaml:6: spec.max_session_ttl: invalid duration "8 hours" (use Go syntax such as "8h" or "30m")`,
		},
		{
			name: "string where a boolean is expected",
			file: "user.yaml",
			in:   "kind: user\nversion: v2\nmetadata:\n  name: u\nspec:\n  status:\n    is_locked: \"yes\"\n",
			want: "user.yaml:7: spec.status.is_locked: expected a boolean, got a string",
		},
		{
			name: "bad verb",
			file: "role.yaml",
			in:   roleHead + "    kubernetes_labels: {'*': '*'}\n    kubernetes_resources:\n    - kind: pod\n      namespace: '*'\n      name: '*'\n      verbs:\n      - get\n      - exec2\n",
			want: `role.yaml:14: spec.allow.kubernetes_resources[0].verbs[1]: unknown verb "exec2"`,
		},
		{
			name: "wildcard verb with others",
			file: "role.yaml",
			in:   roleHead + "    kubernetes_resources:\n    - {kind: pod, namespace: '*', name: '*', verbs: [get, '*']}\n",
			want: `role.yaml:8: spec.allow.kubernetes_resources[0].verbs[1]: "*" must be the only verb`,
		},
		{
			name: "verbs in v6",
			file: "role.yaml",
			in:   v6Head + "    kubernetes_resources:\n    - kind: pod\n      namespace: '*'\n      name: '*'\n      verbs: [get]\n",
			want: `role.yaml:11: spec.allow.kubernetes_resources[0].verbs: not supported in role v6 (only ['*'] is accepted); use role v7 or v8`,
		},
		{
			name: "kind other than pod or * in v6",
			file: "role.yaml",
			in:   v6Head + "    kubernetes_resources:\n    - {kind: secret, namespace: '*', name: '*'}\n",
			want: `role.yaml:8: spec.allow.kubernetes_resources[0].kind: kind "secret" is not supported in role v6 (only "pod" and "*"); use role v7 or v8`,
		},
		{
			name: "api_group in v7",
			file: "role.yaml",
			in:   roleHead + "    kubernetes_resources:\n    - kind: deployment\n      api_group: apps\n      namespace: '*'\n      name: '*'\n      verbs: ['*']\n",
			want: "role.yaml:9: spec.allow.kubernetes_resources[0].api_group: not supported in role v7; use role v8",
		},
		{
			name: "bad regex",
			file: "role.yaml",
			in:   roleHead + "    kubernetes_resources:\n    - kind: pod\n      namespace: '^team-[$'\n      name: '*'\n      verbs: ['*']\n",
			want: "role.yaml:9: spec.allow.kubernetes_resources[0].namespace: invalid regular expression \"^team-[$\": missing closing ]: `[$`",
		},
		{
			name: "bad regex in a label value",
			file: "role.yaml",
			in:   roleHead + "    kubernetes_labels:\n      env: ['dev', '^(prod$']\n",
			want: "role.yaml:8: spec.allow.kubernetes_labels.env[1]: invalid regular expression \"^(prod$\": missing closing ): `^(prod$`",
		},
		{
			name: "unknown kind in v7",
			file: "role.yaml",
			in:   roleHead + "    kubernetes_resources:\n    - {kind: pods, namespace: '*', name: '*', verbs: ['*']}\n",
			want: `role.yaml:8: spec.allow.kubernetes_resources[0].kind: unknown kind "pods" in role v7 (want "*" or one of certificatesigningrequest, clusterrole, clusterrolebinding, configmap, cronjob, daemonset, deployment, ingress, job, kube_node, kube_role, namespace, persistentvolume, persistentvolumeclaim, pod, replicaset, rolebinding, secret, service, serviceaccount, statefulset)`,
		},
		{
			name: "singular kind in v8",
			file: "role.yaml",
			in:   "kind: role\nversion: v8\nmetadata:\n  name: r\nspec:\n  allow:\n    kubernetes_resources:\n    - {kind: deployment, api_group: apps, namespace: '*', name: '*', verbs: ['*']}\n",
			want: `role.yaml:8: spec.allow.kubernetes_resources[0].kind: kind "deployment" is a role v7 kind; role v8 uses plural resource names such as "deployments"`,
		},
		{
			name: "v8 non-core kind without api_group",
			file: "role.yaml",
			in:   "kind: role\nversion: v8\nmetadata:\n  name: r\nspec:\n  allow:\n    kubernetes_resources:\n    - kind: deployments\n      namespace: '*'\n      name: '*'\n",
			want: `role.yaml:8: spec.allow.kubernetes_resources[0].api_group: is required for kind "deployments" (only core resources such as pods may leave it empty)`,
		},
		{
			name: "unknown rule resource",
			file: "role.yaml",
			in:   roleHead + "    rules:\n    - resources: [role, roles]\n      verbs: [list]\n",
			want: `role.yaml:8: spec.allow.rules[0].resources[1]: unknown resource "roles"`,
		},
		{
			name: "wildcard key with a specific value",
			file: "role.yaml",
			in:   roleHead + "    kubernetes_labels:\n      '*': prod\n",
			want: `role.yaml:8: spec.allow.kubernetes_labels["*"]: a "*" key only takes the value "*"`,
		},
		{
			name: "malformed template",
			file: "role.yaml",
			in:   roleHead + "    kubernetes_groups: ['{{internal.kubernetes_groups']\n",
			want: `role.yaml:7: spec.allow.kubernetes_groups[0]: malformed template "{{internal.kubernetes_groups": want one {{internal.NAME}} or {{external.NAME}}`,
		},
		{
			name: "unknown kind",
			file: "role.yaml",
			in:   "kind: rol\nversion: v7\nmetadata:\n  name: r\n",
			want: `role.yaml:1: kind: unknown kind "rol" (want role, user, bot, token, kube_cluster, lock, oidc or github)`,
		},
		{
			name: "missing kind",
			file: "role.yaml",
			in:   "version: v7\nmetadata:\n  name: r\n",
			want: `role.yaml:1: kind: is required (want role, user, bot, token, kube_cluster, lock, oidc or github)`,
		},
		{
			name: "unknown version",
			file: "role.yaml",
			in:   "kind: role\nversion: v9\nmetadata:\n  name: r\n",
			want: `role.yaml:2: version: unknown version "v9" for kind role (want v5, v6, v7 or v8)`,
		},
		{
			name: "missing version",
			file: "role.yaml",
			in:   "kind: role\nmetadata:\n  name: r\n",
			want: `role.yaml:1: version: is required (want v5, v6, v7 or v8)`,
		},
		{
			name: "missing name",
			file: "role.yaml",
			in:   "kind: role\nversion: v7\nmetadata:\n  description: no name\n",
			want: "role.yaml:3: metadata.name: is required",
		},
		{
			name: "missing metadata",
			file: "user.yaml",
			in:   "kind: user\nversion: v2\nspec: {roles: [access]}\n",
			want: "user.yaml:1: metadata.name: is required",
		},
		{
			name: "name with a slash",
			file: "user.yaml",
			in:   "kind: user\nversion: v2\nmetadata:\n  name: a/b\n",
			want: `user.yaml:4: metadata.name: invalid name "a/b": must not contain "/"`,
		},
		{
			name: "lock with two targets",
			file: "lock.yaml",
			in:   "kind: lock\nversion: v2\nmetadata:\n  name: l1\nspec:\n  target:\n    user: alice\n    role: access\n",
			want: "lock.yaml:6: spec.target: sets user and role; a lock targets exactly one of user, role, bot, bot_instance_id, login or access_request",
		},
		{
			name: "lock without target",
			file: "lock.yaml",
			in:   "kind: lock\nversion: v2\nmetadata:\n  name: l1\nspec:\n  message: hi\n",
			want: "lock.yaml:5: spec.target: needs exactly one of user, role, bot, bot_instance_id, login or access_request",
		},
		{
			name: "kubernetes token without allow",
			file: "token.yaml",
			in:   "kind: token\nversion: v2\nmetadata:\n  name: t\nspec:\n  roles: [Bot]\n  bot_name: b\n  join_method: kubernetes\n",
			want: `token.yaml:5: spec.kubernetes.allow: is required for join_method kubernetes (a list of {service_account: "namespace:name"})`,
		},
		{
			name: "kubernetes token with a bad service account",
			file: "token.yaml",
			in:   "kind: token\nversion: v2\nmetadata:\n  name: t\nspec:\n  roles: [Kube]\n  join_method: kubernetes\n  kubernetes:\n    allow:\n    - service_account: keyport/agent\n",
			want: `token.yaml:10: spec.kubernetes.allow[0].service_account: invalid service account "keyport/agent" (want "namespace:name")`,
		},
		{
			name: "github token without rules",
			file: "token.yaml",
			in:   "kind: token\nversion: v2\nmetadata:\n  name: t\nspec:\n  roles: [Bot]\n  bot_name: b\n  join_method: github\n",
			want: "token.yaml:5: spec.github.allow: is required for join_method github (a list of rules such as {repository: org/repo, ref: refs/heads/main})",
		},
		{
			name: "github rule that names no repository",
			file: "token.yaml",
			in:   "kind: token\nversion: v2\nmetadata:\n  name: t\nspec:\n  roles: [Bot]\n  bot_name: b\n  join_method: github\n  github:\n    allow:\n    - ref: refs/heads/main\n",
			want: "token.yaml:11: spec.github.allow[0]: must name sub, repository or repository_owner: without one, any repository on github.com could join",
		},
		{
			name: "github rule with a misspelt claim",
			file: "token.yaml",
			in:   "kind: token\nversion: v2\nmetadata:\n  name: t\nspec:\n  roles: [Bot]\n  bot_name: b\n  join_method: github\n  github:\n    allow:\n    - repo: org/app\n",
			want: "token.yaml:11: spec.github.allow[0].repo: unknown field",
		},
		{
			name: "gitlab ref_protected not a boolean",
			file: "token.yaml",
			in:   "kind: token\nversion: v2\nmetadata:\n  name: t\nspec:\n  roles: [Bot]\n  bot_name: b\n  join_method: gitlab\n  gitlab:\n    allow:\n    - project_path: g/p\n      ref_protected: yes\n",
			want: "token.yaml:12: spec.gitlab.allow[0].ref_protected: is \"true\" or \"false\", not \"yes\"",
		},
		{
			name: "oidc issuer over http",
			file: "token.yaml",
			in:   "kind: token\nversion: v2\nmetadata:\n  name: t\nspec:\n  roles: [Bot]\n  bot_name: b\n  join_method: oidc\n  oidc:\n    issuer: http://issuer.example.com\n    allow:\n    - claims: {sub: x}\n",
			want: "token.yaml:10: spec.oidc.issuer: invalid issuer \"http://issuer.example.com\" (want an https:// URL without query or fragment)",
		},
		{
			name: "a method's block under another method",
			file: "token.yaml",
			in:   "kind: token\nversion: v2\nmetadata:\n  name: t\nspec:\n  roles: [Bot]\n  bot_name: b\n  join_method: token\n  github:\n    allow:\n    - repository: o/r\n",
			want: "token.yaml:9: spec.github: is only for join_method github",
		},
		{
			name: "a CI method for a Kube token",
			file: "token.yaml",
			in:   "kind: token\nversion: v2\nmetadata:\n  name: t\nspec:\n  roles: [Kube]\n  join_method: gitlab\n  gitlab:\n    allow:\n    - project_path: g/p\n",
			want: "token.yaml:7: spec.join_method: gitlab is a join method for bots (spec.roles: [Bot])",
		},
		{
			name: "bot token without bot_name",
			file: "token.yaml",
			in:   "kind: token\nversion: v2\nmetadata:\n  name: t\nspec:\n  roles: [bot]\n",
			want: "token.yaml:5: spec.bot_name: is required for a Bot token",
		},
		{
			name: "token with an unknown role",
			file: "token.yaml",
			in:   "kind: token\nversion: v2\nmetadata:\n  name: t\nspec:\n  roles: [Node]\n",
			want: `token.yaml:6: spec.roles[0]: unknown role "Node" (want Bot or Kube)`,
		},
		{
			name: "duplicate key",
			file: "role.yaml",
			in:   roleHead + "    kubernetes_groups: [a]\n    kubernetes_users: [b]\n    kubernetes_groups: [c]\n",
			want: "role.yaml:9: spec.allow.kubernetes_groups: duplicate key (first on line 7)",
		},
		{
			name: "duplicate label key",
			file: "user.yaml",
			in:   "kind: user\nversion: v2\nmetadata:\n  name: u\n  labels: {env: dev, 'env': prod}\n",
			want: "user.yaml:5: metadata.labels.env: duplicate key (first on line 5)",
		},
		{
			name: "null list item",
			file: "user.yaml",
			in:   "kind: user\nversion: v2\nmetadata:\n  name: u\nspec:\n  roles:\n  - access\n  - ~\n",
			want: "user.yaml:8: spec.roles[1]: expected a string, got null",
		},
		{
			name: "bad time",
			file: "token.yaml",
			in:   "kind: token\nversion: v2\nmetadata:\n  name: t\n  expires: tomorrow\nspec:\n  roles: [Kube]\n",
			want: `token.yaml:5: metadata.expires: invalid time "tomorrow" (want RFC 3339, such as "2030-01-02T15:04:05Z")`,
		},
		{
			name: "alias",
			file: "role.yaml",
			in:   roleHead + "    kubernetes_groups: &g [a]\n    kubernetes_users: *g\n",
			want: "role.yaml:8: spec.allow.kubernetes_users: YAML aliases are not supported",
		},
		{
			name: "custom tag",
			file: "role.yaml",
			in:   roleHead + "    kubernetes_groups: !secret [a]\n",
			want: `role.yaml:7: spec.allow.kubernetes_groups: unsupported YAML tag "!secret"`,
		},
		{
			name: "not a mapping",
			file: "role.yaml",
			in:   "- kind: role\n",
			want: "role.yaml:1: expected a resource (a mapping with kind, version, metadata and spec), got a list",
		},
		{
			name: "YAML syntax error",
			file: "role.yaml",
			in:   "kind: role\nversion: v7\nmetadata: [name\n",
			want: "role.yaml:3: did not find expected ',' or ']'",
		},
		{
			name: "YAML syntax error: bad indentation",
			file: "role.yaml",
			in:   "kind: role\nversion: v7\nmetadata:\n  name: x\n bad: 1\n",
			want: "role.yaml:5: did not find expected key",
		},
		{
			name: "YAML scanner error",
			file: "role.yaml",
			in:   "kind: role\nversion: v7\nmetadata: a: b\n",
			want: "role.yaml:3: mapping values are not allowed in this context",
		},
		{
			name: "empty file",
			file: "empty.yaml",
			in:   "# nothing here\n---\n",
			want: "empty.yaml: no resources found",
		},
		{
			name: "second document bad",
			file: "multi.yaml",
			in:   "kind: user\nversion: v2\nmetadata: {name: u}\n---\nkind: user\nversion: v2\nmetadata: {name: v}\nspec: {role: [x]}\n",
			want: "multi.yaml:8: spec.role: unknown field",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := Decode(tt.file, []byte(tt.in))
			if err == nil {
				t.Fatalf("Decode succeeded, want %q", tt.want)
			}
			if rs != nil {
				t.Errorf("Decode returned %d resources with an error, want none", len(rs))
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("error\n got: %s\nwant: %s", got, tt.want)
			}
			if !errs.IsBadParameter(err) {
				t.Errorf("error kind = %v, want bad parameter", errs.KindOf(err))
			}
		})
	}
}

func TestDecodeSkipsEmptyDocuments(t *testing.T) {
	rs, err := Decode("x.yaml", []byte("---\n# c\n---\nkind: user\nversion: v2\nmetadata: {name: u}\n---\n~\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 || rs[0].GetName() != "u" {
		t.Fatalf("got %v", rs)
	}
}

// TestEncodeOrder pins the canonical field order and the omission of empty fields.
func TestEncodeOrder(t *testing.T) {
	u := NewUser("alice", "access")
	if err := u.CheckAndSetDefaults(); err != nil {
		t.Fatal(err)
	}
	u.Metadata.Revision = 42
	out, err := Encode(u)
	if err != nil {
		t.Fatal(err)
	}
	want := "kind: user\nversion: v2\nmetadata:\n  name: alice\nspec:\n  roles:\n    - access\n"
	if string(out) != want {
		t.Fatalf("got:\n%s\nwant:\n%s", out, want)
	}
}

func TestUnmarshalStorageErrors(t *testing.T) {
	for _, in := range []string{
		`not json`,
		`{"kind":"nope","version":"v1"}`,
		`{"kind":"role","version":"v9"}`,
		`{"kind":"role","version":"v7","metadata":{"name":""}}`,
		`{"kind":"role","version":"v7","metadata":{"name":"r"},"spec":{"options":{"max_session_ttl":"8 hours"}}}`,
	} {
		if _, err := UnmarshalStorage([]byte(in)); !errs.IsBadParameter(err) {
			t.Errorf("UnmarshalStorage(%s) = %v, want a bad parameter error", in, err)
		}
	}
}

func TestStorageIgnoresRevision(t *testing.T) {
	r := NewAccessRole()
	r.Metadata.Revision = 7
	b, err := MarshalStorage(r)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("evision")) {
		t.Fatalf("revision serialised: %s", b)
	}
	back, err := UnmarshalStorage(b)
	if err != nil {
		t.Fatal(err)
	}
	if back.GetMetadata().Revision != 0 {
		t.Fatalf("revision = %d", back.GetMetadata().Revision)
	}
}

package access

import (
	"slices"
	"strings"
	"testing"

	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/types"
)

// TestClusterLabels pins kubernetes_labels matching (Teleport's selector semantics).
func TestClusterLabels(t *testing.T) {
	prod := map[string]string{"env": "prod", "team": "blue", "region": "eu-west-1"}
	tests := []struct {
		name   string
		spec   string
		traits map[string][]string
		labels map[string]string
		want   string // "" grants, otherwise parts of the error
	}{
		{"wildcard key and value match every cluster", `allow: {kubernetes_labels: {'*': '*'}}`, nil, prod, ""},
		{"wildcard key and value match a cluster without labels", `allow: {kubernetes_labels: {'*': '*'}}`, nil, nil, ""},
		{"wildcard key wins over other keys", `allow: {kubernetes_labels: {'*': '*', env: dev}}`, nil, prod, ""},
		{"exact value matches", `allow: {kubernetes_labels: {env: prod}}`, nil, prod, ""},
		{"exact value does not match another", `allow: {kubernetes_labels: {env: dev}}`, nil, prod,
			`no role grants access to kube cluster "c" (labels env=prod, region=eu-west-1, team=blue)|roles checked: r`},
		{"wildcard value needs the key", `allow: {kubernetes_labels: {owner: '*'}}`, nil, prod, "no role grants"},
		{"wildcard value matches any value of the key", `allow: {kubernetes_labels: {team: '*'}}`, nil, prod, ""},
		{"list of values matches any of them", `allow: {kubernetes_labels: {env: [dev, prod]}}`, nil, prod, ""},
		{"list of values matches none", `allow: {kubernetes_labels: {env: [dev, staging]}}`, nil, prod, "no role grants"},
		{"every key must match", `allow: {kubernetes_labels: {env: prod, team: red}}`, nil, prod, "no role grants"},
		{"all keys matching grants", `allow: {kubernetes_labels: {env: prod, team: blue}}`, nil, prod, ""},
		{"missing key fails", `allow: {kubernetes_labels: {env: prod, tier: web}}`, nil, prod, "no role grants"},
		{"glob inside a value", `allow: {kubernetes_labels: {region: 'eu-*'}}`, nil, prod, ""},
		{"glob inside a value does not match", `allow: {kubernetes_labels: {region: 'us-*'}}`, nil, prod, "no role grants"},
		{"regex value matches whole value", `allow: {kubernetes_labels: {region: '^eu-(west|north)-[0-9]$'}}`, nil, prod, ""},
		{"regex value must match all of it", `allow: {kubernetes_labels: {region: '^eu$'}}`, nil, prod, "no role grants"},
		{"empty selector matches nothing", `allow: {kubernetes_groups: [g]}`, nil, prod, "no role grants"},
		{"template in a value expands from traits", `allow: {kubernetes_labels: {team: '{{internal.teams}}'}}`,
			map[string][]string{"teams": {"red", "blue"}}, prod, ""},
		{"template expanding to nothing matches nothing", `allow: {kubernetes_labels: {team: '{{internal.teams}}'}}`, nil, prod, "no role grants"},
		{"deny labels refuse a matching cluster", `allow: {kubernetes_labels: {'*': '*'}}, deny: {kubernetes_labels: {env: prod}}`, nil, prod,
			`access to kube cluster "c" is denied by role "r": its deny kubernetes_labels match the cluster's labels (env=prod, region=eu-west-1, team=blue)`},
		{"deny labels leave other clusters", `allow: {kubernetes_labels: {'*': '*'}}, deny: {kubernetes_labels: {env: dev}}`, nil, prod, ""},
		{"deny wildcard refuses every cluster", `allow: {kubernetes_labels: {env: prod}}, deny: {kubernetes_labels: {'*': '*'}}`, nil, prod, "denied by role"},
		{"deny with a regex", `allow: {kubernetes_labels: {'*': '*'}}, deny: {kubernetes_labels: {region: '^eu-.*$'}}`, nil, prod, "denied by role"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := checker(t, tt.traits, role(t, types.V7, "r", tt.spec))
			_, err := c.CheckCluster("c", tt.labels)
			wantErr(t, err, tt.want)
		})
	}
}

func TestClusterDenyFromAnyRole(t *testing.T) {
	c := checker(t, nil,
		role(t, types.V7, "access", `allow: {kubernetes_labels: {'*': '*'}, kubernetes_groups: [dev]}`),
		role(t, types.V7, "no-prod", `deny: {kubernetes_labels: {env: prod}}`),
	)
	_, err := c.CheckCluster("prod-1", map[string]string{"env": "prod"})
	wantErr(t, err, `access to kube cluster "prod-1" is denied by role "no-prod"`)
	if _, err := c.CheckCluster("dev-1", map[string]string{"env": "dev"}); err != nil {
		t.Errorf("dev cluster: %v", err)
	}
	_, err = checker(t, nil).CheckCluster("x", nil)
	wantErr(t, err, `no role grants access to kube cluster "x" (labels none); the identity has no roles`)
}

// TestClusterGroupsAndUsers pins how kubernetes_groups and kubernetes_users are built: a
// union over the granting roles only, less what any role denies, templates expanded.
func TestClusterGroupsAndUsers(t *testing.T) {
	traits := map[string][]string{
		"kubernetes_groups": {"dev", "ops"},
		"kubernetes_users":  {"alice-k8s"},
	}
	tests := []struct {
		name       string
		traits     map[string][]string
		roles      []*types.Role
		wantGroups []string
		wantUsers  []string
		wantRoles  []string
	}{
		{
			name: "union over granting roles, sorted and without duplicates",
			roles: []*types.Role{
				role(t, "v7", "a", `allow: {kubernetes_labels: {env: dev}, kubernetes_groups: [viewer, editor], kubernetes_users: [u1]}`),
				role(t, "v6", "b", `allow: {kubernetes_labels: {'*': '*'}, kubernetes_groups: [editor, admin], kubernetes_users: [u2]}`),
			},
			wantGroups: []string{"admin", "editor", "viewer"}, wantUsers: []string{"u1", "u2"}, wantRoles: []string{"a", "b"},
		},
		{
			name: "roles that do not grant the cluster add nothing",
			roles: []*types.Role{
				role(t, "v7", "a", `allow: {kubernetes_labels: {env: dev}, kubernetes_groups: [viewer]}`),
				role(t, "v7", "prod-only", `allow: {kubernetes_labels: {env: prod}, kubernetes_groups: [system:masters], kubernetes_users: [root]}`),
			},
			wantGroups: []string{"viewer"}, wantRoles: []string{"a"},
		},
		{
			name: "deny from a role that does not grant the cluster still removes",
			roles: []*types.Role{
				role(t, "v7", "a", `allow: {kubernetes_labels: {env: dev}, kubernetes_groups: [viewer, editor], kubernetes_users: [u1, u2]}`),
				role(t, "v7", "restrict", `deny: {kubernetes_groups: [editor], kubernetes_users: [u2]}`),
			},
			wantGroups: []string{"viewer"}, wantUsers: []string{"u1"}, wantRoles: []string{"a"},
		},
		{
			name: "deny values are patterns",
			roles: []*types.Role{
				role(t, "v7", "a", `allow: {kubernetes_labels: {env: dev}, kubernetes_groups: [viewer, 'system:masters', 'system:nodes']}, deny: {kubernetes_groups: ['system:*']}`),
			},
			wantGroups: []string{"viewer"}, wantRoles: []string{"a"},
		},
		{
			name:   "templates expand from traits",
			traits: traits,
			roles: []*types.Role{
				role(t, "v7", "a", `allow: {kubernetes_labels: {env: dev}, kubernetes_groups: [editor, '{{internal.kubernetes_groups}}'], kubernetes_users: ['{{internal.kubernetes_users}}']}`),
			},
			wantGroups: []string{"dev", "editor", "ops"}, wantUsers: []string{"alice-k8s"}, wantRoles: []string{"a"},
		},
		{
			name: "a template expanding to nothing is dropped",
			roles: []*types.Role{
				role(t, "v7", "a", `allow: {kubernetes_labels: {env: dev}, kubernetes_groups: [editor, '{{internal.kubernetes_groups}}'], kubernetes_users: ['{{internal.kubernetes_users}}']}`),
			},
			wantGroups: []string{"editor"}, wantRoles: []string{"a"},
		},
		{
			name:   "deny templates expand too",
			traits: traits,
			roles: []*types.Role{
				role(t, "v7", "a", `allow: {kubernetes_labels: {env: dev}, kubernetes_groups: [editor, dev]}, deny: {kubernetes_groups: ['{{internal.kubernetes_groups}}']}`),
			},
			wantGroups: []string{"editor"}, wantRoles: []string{"a"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := cluster(t, checker(t, tt.traits, tt.roles...))
			if got := a.Groups(); !slices.Equal(got, tt.wantGroups) {
				t.Errorf("groups = %q, want %q", got, tt.wantGroups)
			}
			if got := a.Users(); !slices.Equal(got, tt.wantUsers) {
				t.Errorf("users = %q, want %q", got, tt.wantUsers)
			}
			if got := a.Roles(); !slices.Equal(got, tt.wantRoles) {
				t.Errorf("roles = %q, want %q", got, tt.wantRoles)
			}
			if a.Cluster() != "dev" {
				t.Errorf("cluster = %q", a.Cluster())
			}
		})
	}
}

// TestGuideRole runs the role of Teleport's "Machine ID with Kubernetes Access" guide,
// byte for byte as the guide has it, for the bot "example".
func TestGuideRole(t *testing.T) {
	rs, err := types.Decode("role.yaml", []byte(`kind: role
version: v6
metadata:
  name: example-role
spec:
  allow:
    kubernetes_labels:
      '*': '*'
    kubernetes_groups:
    - editor
    kubernetes_resources:
    - kind: "*"
      namespace: "*"
      name: "*"
`))
	if err != nil {
		t.Fatal(err)
	}
	// The bot's own role carries no kube access; it must not get in the way.
	botRole := role(t, "v7", "bot-example", `allow: {rules: [{resources: [cert_authority], verbs: [read]}]}`)
	c := checker(t, nil, botRole, rs[0].(*types.Role))
	a, err := c.CheckCluster("kind-keyport", map[string]string{"teleport.dev/origin": "config"})
	if err != nil {
		t.Fatal(err)
	}
	user, groups, err := a.Impersonation("bot-example", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "bot-example" || !slices.Equal(groups, []string{"editor", "system:authenticated"}) {
		t.Errorf("impersonation = %q %q, want bot-example [editor system:authenticated]", user, groups)
	}
	for _, r := range []ResourceRequest{
		req("list", "pods", "", ""),
		req("watch", "pods", "", ""),
		req("get", "secrets", "kube-system", "x"),
		req("create", "pods/exec", "default", "web"),
		req("list", "deployments.apps", "", ""),
		req("get", "nodes", "", "n1"),
		req("deletecollection", "pods", "default", ""),
		req("list", "widgets.example.com", "", ""),
	} {
		filter, err := a.Authorize(r)
		if err != nil || filter {
			t.Errorf("%+v: filter=%v err=%v, want allowed unfiltered", r, filter, err)
		}
	}
}

func TestNewCheckerRefusesBrokenRoles(t *testing.T) {
	bad := role(t, "v7", "bad", `allow: {kubernetes_labels: {'*': '*'}, kubernetes_groups: ['{{foo.bar}}']}`)
	_, err := NewChecker([]*types.Role{bad}, nil)
	if !errs.IsBadParameter(err) || !strings.Contains(err.Error(), `role "bad": allow.kubernetes_groups[0]: template "{{foo.bar}}"`) {
		t.Errorf("err = %v", err)
	}
	old := role(t, "v7", "old", `allow: {kubernetes_labels: {'*': '*'}}`)
	old.Version = "v4"
	if _, err := NewChecker([]*types.Role{old}, nil); !errs.IsBadParameter(err) {
		t.Errorf("v4 role: err = %v", err)
	}
	if _, err := NewChecker([]*types.Role{nil}, nil); !errs.IsBadParameter(err) {
		t.Errorf("nil role: err = %v", err)
	}
}

func TestClusterAccessIsSharedAndConcurrent(t *testing.T) {
	c := checker(t, nil, role(t, "v7", "a", `allow: {kubernetes_labels: {'*': '*'}, kubernetes_groups: [g]}`))
	done := make(chan *ClusterAccess)
	for i := 0; i < 8; i++ {
		go func() {
			a, _ := c.CheckCluster("dev", map[string]string{"env": "dev"})
			done <- a
		}()
	}
	var first *ClusterAccess
	for i := 0; i < 8; i++ {
		a := <-done
		if first == nil {
			first = a
		}
		if a == nil || a.grant != first.grant {
			t.Fatal("clusters with the same granting roles should share one compiled grant")
		}
	}
}

func TestManyRoles(t *testing.T) {
	var roles []*types.Role
	for i := 0; i < 70; i++ {
		roles = append(roles, role(t, "v7", "r"+string(rune('a'+i%26))+string(rune('a'+i/26)), `allow: {kubernetes_labels: {env: dev}, kubernetes_groups: [g]}`))
	}
	a := cluster(t, checker(t, nil, roles...))
	if len(a.Roles()) != 70 || !slices.Equal(a.Groups(), []string{"g"}) {
		t.Errorf("roles %d groups %q", len(a.Roles()), a.Groups())
	}
}

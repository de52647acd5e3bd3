package access

import (
	"errors"
	"slices"
	"testing"
)

func TestImpersonation(t *testing.T) {
	sa := SystemAuthenticated
	tests := []struct {
		name            string
		users, groups   []string
		requestedUser   string
		requestedGroups []string
		wantUser        string
		wantGroups      []string
		wantErr         string
	}{
		{name: "no request: the single user and every group",
			users: []string{"k8s-alice"}, groups: []string{"dev", "ops"},
			wantUser: "k8s-alice", wantGroups: []string{"dev", "ops", sa}},
		{name: "no kubernetes_users: the Keyport user name",
			groups:   []string{"editor"},
			wantUser: "alice", wantGroups: []string{"editor", sa}},
		{name: "users but no groups: only system:authenticated",
			users:    []string{"k8s-alice"},
			wantUser: "k8s-alice", wantGroups: []string{sa}},
		{name: "no groups and no users is refused",
			wantErr: "has no kubernetes_groups and no kubernetes_users"},
		{name: "no groups and no users is refused even when the client asks for the Keyport user",
			requestedUser: "alice", wantErr: "has no kubernetes_groups and no kubernetes_users"},
		{name: "several users without a choice is refused",
			users: []string{"a", "b"}, groups: []string{"dev"},
			wantErr: "several kubernetes users are allowed (a, b); choose one with kubectl --as"},
		{name: "several users with a valid --as",
			users: []string{"a", "b"}, groups: []string{"dev"}, requestedUser: "b",
			wantUser: "b", wantGroups: []string{"dev", sa}},
		{name: "--as outside the allowed users is refused",
			users: []string{"a"}, groups: []string{"dev"}, requestedUser: "root",
			wantErr: `impersonating kubernetes user "root" is not allowed (allowed: a)`},
		{name: "--as the Keyport user name when no users are configured",
			groups: []string{"dev"}, requestedUser: "alice",
			wantUser: "alice", wantGroups: []string{"dev", sa}},
		{name: "--as another name when no users are configured is refused",
			groups: []string{"dev"}, requestedUser: "bob",
			wantErr: `impersonating kubernetes user "bob" is not allowed (allowed: alice)`},
		{name: "--as-group narrows the groups",
			users: []string{"a"}, groups: []string{"dev", "ops"}, requestedGroups: []string{"ops"},
			wantUser: "a", wantGroups: []string{"ops", sa}},
		{name: "--as-group without --as keeps the single user",
			groups: []string{"dev", "ops"}, requestedGroups: []string{"dev", "dev"},
			wantUser: "alice", wantGroups: []string{"dev", sa}},
		{name: "--as-group system:authenticated is always allowed",
			groups: []string{"dev"}, requestedGroups: []string{sa},
			wantUser: "alice", wantGroups: []string{sa}},
		{name: "--as-group outside the allowed groups is refused, naming every refused group",
			users: []string{"a"}, groups: []string{"dev"}, requestedGroups: []string{"dev", "system:masters", "admins"},
			wantErr: `impersonating kubernetes groups "system:masters", "admins" is not allowed (allowed: dev)`},
		{name: "--as-group when no groups are allowed",
			users: []string{"a"}, requestedGroups: []string{"dev"},
			wantErr: `impersonating kubernetes group "dev" is not allowed (allowed: none)`},
		{name: "system:authenticated in the allowed groups is not repeated",
			users: []string{"a"}, groups: []string{"dev", sa},
			wantUser: "a", wantGroups: []string{"dev", sa}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			user, groups, err := Impersonation(tt.users, tt.groups, tt.requestedUser, tt.requestedGroups, "alice")
			wantErr(t, err, tt.wantErr)
			if user != tt.wantUser || !slices.Equal(groups, tt.wantGroups) {
				t.Errorf("got %q %q, want %q %q", user, groups, tt.wantUser, tt.wantGroups)
			}
		})
	}
}

func TestClusterImpersonation(t *testing.T) {
	t.Run("a role set with no groups and no users gets a 403 that says exactly that", func(t *testing.T) {
		a := cluster(t, checker(t, nil, role(t, "v7", "bare", `allow: {kubernetes_labels: {'*': '*'}}`)))
		_, _, err := a.Impersonation("alice", "", nil)
		wantErr(t, err, `kube cluster "dev": the role set that grants it (roles bare) has no kubernetes_groups and no kubernetes_users`)
		if !errors.Is(err, ErrNoGroupsOrUsers) {
			t.Errorf("err %v is not ErrNoGroupsOrUsers", err)
		}
	})
	t.Run("templates that expand to nothing leave no groups and no users", func(t *testing.T) {
		a := cluster(t, checker(t, nil, role(t, "v7", "access",
			`allow: {kubernetes_labels: {'*': '*'}, kubernetes_groups: ['{{internal.kubernetes_groups}}'], kubernetes_users: ['{{internal.kubernetes_users}}']}`)))
		_, _, err := a.Impersonation("alice", "", nil)
		wantErr(t, err, "has no kubernetes_groups and no kubernetes_users|traits")
	})
	t.Run("deny removing every group and user leaves none", func(t *testing.T) {
		a := cluster(t, checker(t, nil, role(t, "v7", "r",
			`allow: {kubernetes_labels: {'*': '*'}, kubernetes_groups: [dev]}, deny: {kubernetes_groups: ['*']}`)))
		_, _, err := a.Impersonation("alice", "", nil)
		wantErr(t, err, "has no kubernetes_groups and no kubernetes_users")
	})
	t.Run("the Keyport user name fallback obeys deny kubernetes_users", func(t *testing.T) {
		a := cluster(t, checker(t, nil, role(t, "v7", "r",
			`allow: {kubernetes_labels: {'*': '*'}, kubernetes_groups: [dev]}, deny: {kubernetes_users: ['ali*']}`)))
		_, _, err := a.Impersonation("alice", "", nil)
		wantErr(t, err, `kube cluster "dev": no role sets kubernetes_users, so Keyport would act as your user name "alice", but role "r" denies kubernetes user "ali*"`)
	})
	t.Run("refusals name the cluster", func(t *testing.T) {
		a := cluster(t, checker(t, nil, role(t, "v7", "r",
			`allow: {kubernetes_labels: {'*': '*'}, kubernetes_groups: [dev], kubernetes_users: [a, b]}`)))
		_, _, err := a.Impersonation("alice", "", nil)
		wantErr(t, err, `kube cluster "dev": several kubernetes users are allowed (a, b)`)
		user, groups, err := a.Impersonation("alice", "a", []string{"dev"})
		if err != nil || user != "a" || !slices.Equal(groups, []string{"dev", SystemAuthenticated}) {
			t.Errorf("got %q %q %v", user, groups, err)
		}
	})
}

package auth

import (
	"strings"
	"testing"
	"time"

	"github.com/keyport/keyport/internal/clock"
	"github.com/keyport/keyport/internal/tlsca"
	"github.com/keyport/keyport/internal/types"
)

// cacheWith builds a Cache holding resources, without a backend.
func cacheWith(clk clock.Clock, rs ...types.Resource) *Cache {
	c := &Cache{clock: clk, resources: map[string]map[string]types.Resource{}}
	for _, k := range cachedKinds {
		c.resources[k] = map[string]types.Resource{}
	}
	for _, r := range rs {
		if err := r.CheckAndSetDefaults(); err != nil {
			panic(err)
		}
		c.resources[r.GetKind()][r.GetName()] = r
	}
	return c
}

func TestAuthorize(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	reader := types.NewRole("reader", types.V7, types.RoleSpec{Allow: types.RoleConditions{Rules: []types.Rule{{Resources: []string{"role"}, Verbs: []string{"list", "read"}}}}})
	noLocks := types.NewRole("no-locks", types.V7, types.RoleSpec{Deny: types.RoleConditions{Rules: []types.Rule{{Resources: []string{"lock"}, Verbs: []string{"*"}}}}})
	past := clk.Now().Add(-time.Hour)
	expiredLock := types.NewLock("old", types.LockTarget{User: "eve"}, "old news")
	expiredLock.Spec.Expires = &past
	s := &Server{cache: cacheWith(clk, types.NewEditorRole(), types.NewAccessRole(), reader, noLocks,
		types.NewLock("l1", types.LockTarget{User: "mallory"}, "incident 42"),
		types.NewLock("l2", types.LockTarget{Role: "reader"}, "readers paused"), expiredLock)}
	tests := []struct {
		name       string
		id         *tlsca.Identity
		kind, verb string
		want       string // "" means allowed; otherwise a substring of the error
	}{
		{"editor creates roles", &tlsca.Identity{Username: "alice", Roles: []string{"editor"}}, "role", "create", ""},
		{"access has no rules", &tlsca.Identity{Username: "bob", Roles: []string{"access"}}, "role", "create", "access denied to create role: no role of bob has a rule allowing it"},
		{"no roles", &tlsca.Identity{Username: "nobody"}, "user", "list", "no role of nobody"},
		{"deleted role grants nothing", &tlsca.Identity{Username: "x", Roles: []string{"gone"}}, "role", "read", "no role of x"},
		{"deny beats allow", &tlsca.Identity{Username: "alice", Roles: []string{"editor", "no-locks"}}, "lock", "create", "role no-locks denies it"},
		{"deny only where it says", &tlsca.Identity{Username: "alice", Roles: []string{"editor", "no-locks"}}, "role", "create", ""},
		{"locked user", &tlsca.Identity{Username: "mallory", Roles: []string{"editor"}}, "role", "read", `user "mallory" is locked: incident 42`},
		{"locked role", &tlsca.Identity{Username: "carol", Roles: []string{"access", "reader"}}, "role", "read", "readers paused"},
		{"expired lock ignored", &tlsca.Identity{Username: "eve", Roles: []string{"editor"}}, "role", "read", ""},
		{"admin", &tlsca.Identity{Username: "admin@n", SystemRole: SystemAdmin}, "role", "delete", ""},
		{"proxy reads", &tlsca.Identity{Username: "n", SystemRole: SystemProxy}, "role", "read", ""},
		{"proxy may not write", &tlsca.Identity{Username: "n", SystemRole: SystemProxy}, "role", "create", "proxy service may not create role"},
		{"kube heartbeats", &tlsca.Identity{Username: "n", SystemRole: SystemKube}, "kube_cluster", "update", ""},
		{"no identity", nil, "role", "read", "needs a client certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A Rules row of the Auth API's table checks the lock, then the rules.
			err := s.Authorize(Actor{Identity: tt.id}, tt.kind, tt.verb)
			if err == nil && tt.id != nil {
				err = s.CheckLock(tt.id)
			}
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("denied: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestLimiter(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	l := newLimiter(clk, 3, time.Minute)
	for i := 0; i < 3; i++ {
		if !l.Allow("10.0.0.1") {
			t.Fatalf("attempt %d refused", i)
		}
	}
	if l.Allow("10.0.0.1") {
		t.Fatal("4th attempt allowed")
	}
	if !l.Allow("10.0.0.2") {
		t.Fatal("other source refused")
	}
	clk.Advance(61 * time.Second)
	if !l.Allow("10.0.0.1") {
		t.Fatal("refused after the window")
	}
}

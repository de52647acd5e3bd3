package proxy

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/keyport/keyport/internal/tlsca"
	"github.com/keyport/keyport/internal/types"
)

// swappableRoles is a role source whose roles a test replaces, as the cache does when a
// role is edited: a new object, never a modified one.
type swappableRoles struct {
	mu    sync.Mutex
	roles []*types.Role
}

func (s *swappableRoles) Roles([]string) []*types.Role {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*types.Role(nil), s.roles...)
}

func (s *swappableRoles) set(roles ...*types.Role) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.roles = roles
}

// TestDeciderSeesRoleChanges: the checker cache never serves a decision from roles that
// have since been edited or deleted.
func TestDeciderSeesRoleChanges(t *testing.T) {
	id := &tlsca.Identity{Username: "alice", Roles: []string{"example-role"}}
	kc := types.NewKubeCluster("c", "", map[string]string{"env": "dev"})
	info, err := requestInfoFactory.NewRequestInfo(httptest.NewRequest(http.MethodGet, "/api/v1/namespaces/default/pods/web-0", nil))
	if err != nil {
		t.Fatal(err)
	}
	src := &swappableRoles{}
	d := NewAccessDecider(src)
	decide := func() (Decision, error) { return d.Decide(id, kc, info, "", nil) }

	src.set(guideRole(t))
	for range 2 { // the second call is served from the cache
		dec, err := decide()
		if err != nil || dec.User != "alice" {
			t.Fatalf("guide role: %+v %v", dec, err)
		}
	}
	// Edited: the same name, now only for prod clusters.
	prod := types.NewRole("example-role", types.V6, types.RoleSpec{Allow: types.RoleConditions{
		KubernetesLabels: types.Labels{"env": {"prod"}}, KubernetesGroups: []string{"editor"}}})
	if err := prod.CheckAndSetDefaults(); err != nil {
		t.Fatal(err)
	}
	src.set(prod)
	if _, err := decide(); err == nil {
		t.Fatal("edited role still grants the dev cluster")
	}
	src.set(guideRole(t))
	if _, err := decide(); err != nil {
		t.Fatalf("restored role: %v", err)
	}
	src.set()
	if _, err := decide(); err == nil {
		t.Fatal("deleted role still grants access")
	}
}

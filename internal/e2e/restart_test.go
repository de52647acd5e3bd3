package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
	"github.com/keyport/keyport/internal/testenv"
	"github.com/keyport/keyport/internal/types"
)

// clusterState is what must survive a restart.
type clusterState struct {
	pin, roles, users, bots, tokens, locks string
}

func readState(t *testing.T, env *testenv.Env) clusterState {
	t.Helper()
	ctx := context.Background()
	clt := env.AdminClient()
	ping, err := clt.Ping(ctx, &pb.PingRequest{})
	if err != nil {
		t.Fatal(err)
	}
	names := func(kind string) string {
		list, err := clt.ListResources(ctx, &pb.ListResourcesRequest{Kind: kind})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range list.GetResources() {
			res, err := types.UnmarshalStorage(r.GetJson())
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, res.GetName())
		}
		return strings.Join(out, ",")
	}
	return clusterState{pin: ping.GetHostCaPin(), roles: names(types.KindRole), users: names(types.KindUser), bots: names(types.KindBot),
		tokens: names(types.KindToken), locks: names(types.KindLock)}
}

func seed(t *testing.T, env *testenv.Env) {
	t.Helper()
	ctx := context.Background()
	clt := env.AdminClient()
	createResource(t, clt, types.NewRole("example-role", types.V6, types.RoleSpec{Allow: types.RoleConditions{KubernetesLabels: types.Labels{"*": {"*"}}, KubernetesGroups: []string{"editor"}}}))
	if _, err := clt.CreateUser(ctx, &pb.CreateUserRequest{Name: "alice", Roles: []string{"access"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := clt.CreateBot(ctx, &pb.CreateBotRequest{Name: "example", Roles: []string{"example-role"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := clt.CreateLock(ctx, &pb.CreateLockRequest{User: "mallory", Message: "gone"}); err != nil {
		t.Fatal(err)
	}
}

func TestRestartKeepsStateSQLite(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	env := testenv.New(t, testenv.WithDataDir(dataDir))
	seed(t, env)
	before := readState(t, env)
	env.Stop()

	// Secrets and the database stay private.
	st, err := os.Stat(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("data_dir mode %v, want 0700", st.Mode().Perm())
	}
	for _, f := range []string{"admin-identity", "keyport.db"} {
		st, err := os.Stat(filepath.Join(dataDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", f, st.Mode().Perm())
		}
	}

	env2 := testenv.New(t, testenv.WithDataDir(dataDir))
	after := readState(t, env2)
	if before != after {
		t.Fatalf("state changed across restart:\nbefore %+v\nafter  %+v", before, after)
	}
	if !strings.Contains(after.locks, "-") || after.bots != "example" || !strings.Contains(after.roles, "example-role") || after.tokens == "" {
		t.Fatalf("seeded state missing: %+v", after)
	}
}

package e2e

import (
	"context"
	"crypto/x509"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
	"github.com/keyport/keyport/internal/client"
	"github.com/keyport/keyport/internal/clock"
	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/identityfile"
	"github.com/keyport/keyport/internal/testenv"
	"github.com/keyport/keyport/internal/testenv/etcdtest"
	"github.com/keyport/keyport/internal/tlsca"
	"github.com/keyport/keyport/internal/types"
)

func etcdStorage(endpoint, prefix string) string {
	return fmt.Sprintf("    type: etcd\n    peers: [%s]\n    prefix: %s\n", endpoint, prefix)
}

func TestRestartKeepsStateEtcd(t *testing.T) {
	endpoint := etcdtest.Start(t)
	storage := testenv.WithStorage(etcdStorage(endpoint, "/restart"))
	env := testenv.New(t, storage)
	seed(t, env)
	before := readState(t, env)
	env.Stop()
	// A fresh data_dir: with etcd, everything that matters lives in etcd.
	env2 := testenv.New(t, storage, testenv.WithDataDir(filepath.Join(t.TempDir(), "other")))
	if after := readState(t, env2); before != after {
		t.Fatalf("state changed across restart:\nbefore %+v\nafter  %+v", before, after)
	}
}

// TestTwoProcessesOneEtcd: writes through one auth process reach the other's cache
// (which authorisation and lock checks read) through etcd watches within a second.
func TestTwoProcessesOneEtcd(t *testing.T) {
	ctx := context.Background()
	endpoint := etcdtest.Start(t)
	storage := testenv.WithStorage(etcdStorage(endpoint, "/ha"))
	a := testenv.New(t, storage)
	b := testenv.New(t, storage)
	ca, cb := a.AdminClient(), b.AdminClient()
	pa, _ := ca.Ping(ctx, &pb.PingRequest{})
	pb2, _ := cb.Ping(ctx, &pb.PingRequest{})
	if pa.GetHostCaPin() != pb2.GetHostCaPin() {
		t.Fatalf("two processes made two host CAs: %s vs %s", pa.GetHostCaPin(), pb2.GetHostCaPin())
	}

	createResource(t, ca, types.NewRole("ha-role", types.V7, types.RoleSpec{Allow: types.RoleConditions{KubernetesGroups: []string{"x"}}}))
	start := time.Now()
	waitUntil(t, time.Second, func() bool {
		_, err := b.Process.Auth.Cache().Get(types.KindRole, "ha-role")
		return err == nil
	})
	t.Logf("role visible through the other process after %v", time.Since(start))

	// bob signs in through b; a lock made through a applies on b within a second.
	if _, err := ca.CreateUser(ctx, &pb.CreateUserRequest{Name: "bob", Roles: []string{"access"}}); err != nil {
		t.Fatal(err)
	}
	bob := signIdentity(t, ca, "bob")
	bobOnB := b.Client(b.AuthAddr, bob)
	if _, err := bobOnB.WhoAmI(ctx, &pb.WhoAmIRequest{}); err != nil {
		t.Fatalf("bob before lock: %v", err)
	}
	if _, err := ca.CreateLock(ctx, &pb.CreateLockRequest{User: "bob", Message: "incident 42"}); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	var last error
	waitUntil(t, time.Second, func() bool {
		_, last = bobOnB.WhoAmI(ctx, &pb.WhoAmIRequest{})
		return errs.IsAccessDenied(last)
	})
	if !strings.Contains(last.Error(), "incident 42") {
		t.Fatalf("lock error does not carry the message: %v", last)
	}
	t.Logf("lock enforced by the other process after %v", time.Since(start))
}

// signIdentity issues a certificate for user through the admin client.
func signIdentity(t *testing.T, admin *client.Client, user string) *identityfile.Identity {
	t.Helper()
	key, err := tlsca.GenerateKey("", clock.Rand)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	certs, err := admin.SignUser(context.Background(), &pb.SignUserRequest{User: user, PublicKeyDer: der, TtlSeconds: 3600})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tlsca.ParseCertPEM(certs.GetTlsCertPem())
	if err != nil {
		t.Fatal(err)
	}
	return &identityfile.Identity{Key: key, CertPEM: certs.GetTlsCertPem(), Cert: cert, HostCAs: certs.GetHostCaPems(), UserCAs: certs.GetUserCaPems()}
}

// Package e2e holds Keyport's end-to-end tests: whole clusters started in process by
// internal/testenv, and testscript scripts that drive the built binaries.
package e2e

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"strings"
	"testing"
	"time"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
	"github.com/keyport/keyport/internal/client"
	"github.com/keyport/keyport/internal/clock"
	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/identityfile"
	"github.com/keyport/keyport/internal/testenv"
	"github.com/keyport/keyport/internal/tlsca"
	"github.com/keyport/keyport/internal/types"
)

// botClient is a bot's side of the conversation: a key, and the identity it holds.
type botClient struct {
	t    testing.TB
	env  *testenv.Env
	key  crypto.Signer
	pool *x509.CertPool
	id   *identityfile.Identity
}

func newBotClient(t testing.TB, env *testenv.Env) *botClient {
	t.Helper()
	key, err := tlsca.GenerateKey("", clock.Rand)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := identityfile.Read(env.AdminIdentityPath())
	if err != nil {
		t.Fatal(err)
	}
	pool, err := admin.HostCAPool()
	if err != nil {
		t.Fatal(err)
	}
	return &botClient{t: t, env: env, key: key, pool: pool}
}

func (b *botClient) pubDER() []byte {
	der, err := x509.MarshalPKIXPublicKey(b.key.Public())
	if err != nil {
		b.t.Fatal(err)
	}
	return der
}

func (b *botClient) join(ctx context.Context, addr, token string) error {
	clt, err := client.New(client.Config{Addr: addr, RootCAs: b.pool})
	if err != nil {
		return err
	}
	defer clt.Close()
	certs, err := clt.JoinBot(ctx, &pb.JoinBotRequest{Token: token, PublicKeyDer: b.pubDER(), Hostname: "test"})
	if err != nil {
		return err
	}
	return b.take(certs)
}

func (b *botClient) take(certs *pb.Certs) error {
	cert, err := tlsca.ParseCertPEM(certs.GetTlsCertPem())
	if err != nil {
		return err
	}
	id := &identityfile.Identity{Key: b.key, CertPEM: certs.GetTlsCertPem(), Cert: cert, HostCAs: certs.GetHostCaPems(), UserCAs: certs.GetUserCaPems()}
	id.Identity, err = tlsca.FromCertificate(cert)
	b.id = id
	return err
}

func (b *botClient) renew(ctx context.Context, addr string) error {
	clt, err := client.New(client.Config{Addr: addr, Identity: b.id})
	if err != nil {
		return err
	}
	defer clt.Close()
	certs, err := clt.RenewBot(ctx, &pb.RenewBotRequest{PublicKeyDer: b.pubDER()})
	if err != nil {
		return err
	}
	return b.take(certs)
}

func TestBotJoinAndRenew(t *testing.T) {
	ctx := context.Background()
	env := testenv.New(t)
	admin := env.AdminClient()
	resp, err := admin.CreateBot(ctx, &pb.CreateBotRequest{Name: "example", Roles: []string{"access"}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetUserName() != "bot-example" || resp.GetRoleName() != "bot-example" || len(resp.GetTokenId()) != 64 || resp.GetTokenTtlSeconds() != 3600 {
		t.Fatalf("CreateBot = %+v", resp)
	}

	// Join through the proxy's one port.
	bot := newBotClient(t, env)
	if err := bot.join(ctx, env.WebAddr, resp.GetTokenId()); err != nil {
		t.Fatalf("join: %v", err)
	}
	id := bot.id.Identity
	if id.Username != "bot-example" || !id.Renewable || id.Generation != 1 || id.BotName != "example" || id.BotInstanceID == "" {
		t.Fatalf("identity = %+v", id)
	}
	if got := strings.Join(id.Roles, ","); got != "bot-example,access" {
		t.Fatalf("roles = %s", got)
	}

	// The same token again, a wrong one and an expired one are refused, each clearly.
	other := newBotClient(t, env)
	for _, tc := range []struct{ name, token, want string }{
		{"used", resp.GetTokenId(), "the join token has already been used"},
		{"wrong", strings.Repeat("ab", 32), "the join token is not valid"},
	} {
		err := other.join(ctx, env.AuthAddr, tc.token)
		if !errs.IsAccessDenied(err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s token: err = %v, want access denied %q", tc.name, err, tc.want)
		}
	}
	expired, err := admin.CreateToken(ctx, &pb.CreateTokenRequest{Type: "bot", BotName: "example", TtlSeconds: 1})
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 5*time.Second, func() bool { return time.Now().Unix() > expired.GetExpiresUnix() })
	if err := other.join(ctx, env.AuthAddr, expired.GetToken()); !errs.IsAccessDenied(err) || !strings.Contains(err.Error(), "the join token expired at") {
		t.Errorf("expired token: err = %v", err)
	}

	// Roles added now apply at the next renewal.
	role := types.NewRole("example-role", types.V6, types.RoleSpec{Allow: types.RoleConditions{KubernetesLabels: types.Labels{"*": {"*"}}, KubernetesGroups: []string{"editor"}}})
	createResource(t, admin, role)
	if _, err := admin.UpdateBot(ctx, &pb.UpdateBotRequest{Name: "example", AddRoles: []string{"example-role"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.UpdateBot(ctx, &pb.UpdateBotRequest{Name: "example", AddRoles: []string{"no-such-role"}}); !errs.IsBadParameter(err) || !strings.Contains(err.Error(), "role 'no-such-role' does not exist") {
		t.Errorf("update with a missing role: %v", err)
	}
	stale := *bot.id
	if err := bot.renew(ctx, env.AuthAddr); err != nil {
		t.Fatalf("renew: %v", err)
	}
	if bot.id.Identity.Generation != 2 || strings.Join(bot.id.Identity.Roles, ",") != "bot-example,access,example-role" {
		t.Fatalf("after renewal: %+v", bot.id.Identity)
	}

	// A copy of the old identity renews: the instance is locked, and the audit log says so.
	thief := &botClient{t: t, env: env, key: bot.key, id: &stale}
	err = thief.renew(ctx, env.AuthAddr)
	if !errs.IsAccessDenied(err) || !strings.Contains(err.Error(), "has been locked") {
		t.Fatalf("stale renewal: %v", err)
	}
	// The legitimate holder is locked out too: the instance is compromised.
	if err := bot.renew(ctx, env.AuthAddr); !errs.IsAccessDenied(err) {
		t.Fatalf("renewal after lock: %v", err)
	}
	events, err := admin.SearchAudit(ctx, &pb.SearchAuditRequest{Type: "bot.instance.locked"})
	if err != nil {
		t.Fatal(err)
	}
	if len(events.GetEvents()) != 1 {
		t.Fatalf("want one bot.instance.locked event, got %d", len(events.GetEvents()))
	}
	var ev map[string]any
	_ = json.Unmarshal(events.GetEvents()[0].GetJson(), &ev)
	if ev["bot_instance_id"] != id.BotInstanceID {
		t.Fatalf("event = %v", ev)
	}
	instances, err := admin.ListBotInstances(ctx, &pb.ListBotInstancesRequest{BotName: "example"})
	if err != nil {
		t.Fatal(err)
	}
	if len(instances.GetInstances()) != 1 || !instances.GetInstances()[0].GetLocked() {
		t.Fatalf("instances = %v", instances)
	}
}

func createResource(t *testing.T, clt *client.Client, r types.Resource) {
	t.Helper()
	if err := r.CheckAndSetDefaults(); err != nil {
		t.Fatal(err)
	}
	data, err := types.EncodeJSON(r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := clt.CreateResource(context.Background(), &pb.CreateResourceRequest{Resource: &pb.Resource{Kind: r.GetKind(), Json: data}}); err != nil {
		t.Fatal(err)
	}
}

// waitUntil polls cond with a deadline: for conditions that depend on the wall clock or
// on another process, never a fixed sleep.
func waitUntil(t testing.TB, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

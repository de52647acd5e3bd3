package auth

import (
	"context"
	"crypto"
	"strings"
	"testing"
	"time"

	"github.com/keyport/keyport/internal/audit"
	"github.com/keyport/keyport/internal/clock"
	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/tlsca"
	"github.com/keyport/keyport/internal/types"
)

// requestEnv: alice (dev) may request prod and search as prod; lead reviews prod; eve
// (dev) is another requester; the kube cluster "prod-k8s" is registered.
type requestEnv struct {
	s     *Server
	clk   *clock.Fake
	audit *audit.Recorder
}

func newRequestEnv(t *testing.T) *requestEnv {
	t.Helper()
	rec := &audit.Recorder{}
	s, clk := newTestServer(t, Config{Audit: rec})
	ctx := context.Background()
	put := func(r types.Resource) {
		t.Helper()
		if err := r.CheckAndSetDefaults(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.PutResource(ctx, Actor{}, r, CreateOnly, 0); err != nil {
			t.Fatal(err)
		}
	}
	put(types.NewRole("dev", types.V7, types.RoleSpec{Allow: types.RoleConditions{
		Request: &types.AccessRequestConditions{Roles: []string{"prod"}, SearchAsRoles: []string{"prod"}}},
		Deny: types.RoleConditions{Request: &types.AccessRequestConditions{Roles: []string{"root"}}}}))
	put(types.NewRole("prod", types.V7, types.RoleSpec{Allow: types.RoleConditions{
		KubernetesLabels: types.Labels{"*": {"*"}}, KubernetesGroups: []string{"editor"}}}))
	put(types.NewRole("root", types.V7, types.RoleSpec{}))
	put(types.NewRole("lead", types.V7, types.RoleSpec{Allow: types.RoleConditions{
		ReviewRequests: &types.AccessReviewConditions{Roles: []string{"prod"}}}}))
	for _, u := range []*types.User{types.NewUser("alice", "dev"), types.NewUser("eve", "dev"), types.NewUser("bob", "lead")} {
		put(u)
	}
	kube := Actor{Identity: &tlsca.Identity{Username: "kube-1", SystemRole: SystemKube}}
	if err := s.HeartbeatKubeClusters(ctx, kube, []*types.KubeCluster{{Header: types.Header{Kind: types.KindKubeCluster, Version: types.V3,
		Metadata: types.Metadata{Name: "prod-k8s"}}}}, time.Hour); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := s.cache.Get(types.KindKubeCluster, "prod-k8s"); err == nil {
			if _, err := s.cache.Get(types.KindUser, "bob"); err == nil {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the cache did not catch up")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return &requestEnv{s: s, clk: clk, audit: rec}
}

func user(name string, roles ...string) Actor {
	return Actor{Identity: &tlsca.Identity{Username: name, Roles: roles, Expires: time.Date(2026, 3, 1, 22, 0, 0, 0, time.UTC)}, Addr: "10.0.0.1:1"}
}

func wantErr(t *testing.T, err error, kind errs.Kind, substr string) {
	t.Helper()
	if err == nil || !errs.Is(err, kind) || !strings.Contains(err.Error(), substr) {
		t.Fatalf("error = %v, want a %v error containing %q", err, kind, substr)
	}
}

func TestAccessRequestLifecycle(t *testing.T) {
	e := newRequestEnv(t)
	ctx := context.Background()
	alice, bob, eve := user("alice", "dev"), user("bob", "lead"), user("eve", "dev")
	pub := testPublicKey(t)

	ar, err := e.s.CreateAccessRequest(ctx, alice, CreateAccessRequest{Roles: []string{"prod"}, Reason: "incident 7", MaxDuration: 30 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if ar.Spec.State != types.RequestPending || ar.Spec.AccessExpires != e.clk.Now().Add(30*time.Minute) || ar.Spec.Approve != 1 {
		t.Fatalf("new request: %+v", ar.Spec)
	}
	// Not usable while pending.
	_, err = e.s.SignUser(ctx, alice, "alice", pub, time.Hour, "", []string{ar.GetName()})
	wantErr(t, err, errs.AccessDenied, "is not approved yet (pending)")

	_, err = e.s.ReviewAccessRequest(ctx, alice, ar.GetName(), true, "me")
	wantErr(t, err, errs.AccessDenied, "you cannot review your own access request")
	_, err = e.s.ReviewAccessRequest(ctx, eve, ar.GetName(), true, "")
	wantErr(t, err, errs.AccessDenied, `you may not review requests for role "prod"`)

	got, err := e.s.ReviewAccessRequest(ctx, bob, ar.GetName(), true, "ok")
	if err != nil || got.Spec.State != types.RequestApproved {
		t.Fatalf("approve: %v, %+v", err, got)
	}
	_, err = e.s.ReviewAccessRequest(ctx, bob, ar.GetName(), false, "")
	wantErr(t, err, errs.CompareFailed, "is already approved")

	// Another user's request id.
	_, err = e.s.SignUser(ctx, eve, "eve", pub, time.Hour, "", []string{ar.GetName()})
	wantErr(t, err, errs.AccessDenied, "belongs to another user")

	certPEM, err := e.s.SignUser(ctx, alice, "alice", pub, 12*time.Hour, "", []string{ar.GetName()})
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := tlsca.ParseCertPEM(certPEM)
	id, _ := tlsca.FromCertificate(cert)
	if strings.Join(id.Roles, ",") != "dev,prod" || strings.Join(id.ActiveRequests, ",") != ar.GetName() {
		t.Errorf("identity: roles %v, requests %v", id.Roles, id.ActiveRequests)
	}
	if !cert.NotAfter.Equal(ar.Spec.AccessExpires) {
		t.Errorf("certificate ends %v, want the request's access end %v", cert.NotAfter, ar.Spec.AccessExpires)
	}
	// A renewal from that certificate keeps the request (tsh kube login).
	renewer := Actor{Identity: id}
	renewed, err := e.s.SignUser(ctx, renewer, "alice", pub, 0, "prod-k8s", nil)
	if err != nil {
		t.Fatal(err)
	}
	rc, _ := tlsca.ParseCertPEM(renewed)
	rid, _ := tlsca.FromCertificate(rc)
	if !strings.Contains(strings.Join(rid.Roles, ","), "prod") || rid.KubeCluster != "prod-k8s" {
		t.Errorf("renewed identity: %+v", rid)
	}
	// A lock on the request locks certificates that carry it.
	if _, err := e.s.CreateLock(ctx, Actor{}, types.LockTarget{AccessRequest: ar.GetName()}, "revoked", nil); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for e.s.CheckLock(id) == nil && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	wantErr(t, e.s.CheckLock(id), errs.AccessDenied, "access request")

	// After the access ends, the request grants nothing.
	e.clk.Advance(31 * time.Minute)
	_, err = e.s.SignUser(ctx, alice, "alice", pub, time.Hour, "", []string{ar.GetName()})
	wantErr(t, err, errs.AccessDenied, "ended at")

	// Every step is in the audit log.
	counts := map[string]int{}
	for _, ev := range e.audit.Events() {
		if strings.HasPrefix(ev.Type, "access_request.") {
			counts[ev.Type+map[bool]string{true: "", false: " refused"}[ev.Success]]++
		}
	}
	if counts["access_request.create"] != 1 || counts["access_request.review"] != 1 || counts["access_request.review refused"] != 3 {
		t.Errorf("audit counts %v", counts)
	}
}

func TestAccessRequestRefusals(t *testing.T) {
	e := newRequestEnv(t)
	ctx := context.Background()
	alice, bob := user("alice", "dev"), user("bob", "lead")

	_, err := e.s.CreateAccessRequest(ctx, alice, CreateAccessRequest{Roles: []string{"lead"}})
	wantErr(t, err, errs.AccessDenied, `role "lead" is not requestable: none of your roles (dev) lists it in allow.request.roles`)
	_, err = e.s.CreateAccessRequest(ctx, alice, CreateAccessRequest{Roles: []string{"root"}})
	wantErr(t, err, errs.AccessDenied, `role "root" may not be requested: your role dev denies requesting it`)
	_, err = e.s.CreateAccessRequest(ctx, alice, CreateAccessRequest{Roles: []string{"nope"}})
	wantErr(t, err, errs.NotFound, `role "nope" does not exist`)
	_, err = e.s.CreateAccessRequest(ctx, alice, CreateAccessRequest{Roles: []string{"dev"}})
	wantErr(t, err, errs.BadParameter, `you already hold role "dev"`)
	_, err = e.s.CreateAccessRequest(ctx, Actor{Identity: &tlsca.Identity{Username: "bot-ci", BotName: "ci", Roles: []string{"dev"}}}, CreateAccessRequest{Roles: []string{"prod"}})
	wantErr(t, err, errs.AccessDenied, "bots cannot make access requests")
	_, err = e.s.CreateAccessRequest(ctx, bob, CreateAccessRequest{Resources: []string{"/keyport.example.com/kube_cluster/prod-k8s"}})
	wantErr(t, err, errs.AccessDenied, "none of your roles has it")
	_, err = e.s.CreateAccessRequest(ctx, alice, CreateAccessRequest{Resources: []string{"/keyport.example.com/kube_cluster/nowhere"}})
	wantErr(t, err, errs.NotFound, `kube cluster "nowhere" is not registered`)
	_, err = e.s.CreateAccessRequest(ctx, alice, CreateAccessRequest{Resources: []string{"/keyport.example.com/pods/prod-k8s"}})
	wantErr(t, err, errs.BadParameter, `kind "pods" is not one of kube_cluster, namespace or pod`)

	// An expired request cannot be approved.
	ar, err := e.s.CreateAccessRequest(ctx, alice, CreateAccessRequest{Roles: []string{"prod"}})
	if err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(DefaultRequestTTL + time.Second)
	_, err = e.s.ReviewAccessRequest(ctx, bob, ar.GetName(), true, "")
	wantErr(t, err, errs.AccessDenied, "expired at")

	// A denied request grants nothing.
	ar, err = e.s.CreateAccessRequest(ctx, alice, CreateAccessRequest{Roles: []string{"prod"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.ReviewAccessRequest(ctx, bob, ar.GetName(), false, "not now"); err != nil {
		t.Fatal(err)
	}
	_, err = e.s.SignUser(ctx, alice, "alice", testPublicKey(t), time.Hour, "", []string{ar.GetName()})
	wantErr(t, err, errs.AccessDenied, "was denied")

	// Requests are visible to their author and reviewers only.
	if _, err := e.s.GetAccessRequest(ctx, user("eve", "dev"), ar.GetName()); !errs.IsNotFound(err) {
		t.Errorf("eve reads alice's request: %v", err)
	}
	if _, err := e.s.GetAccessRequest(ctx, bob, ar.GetName()); err != nil {
		t.Errorf("the reviewer reads it: %v", err)
	}
	list, err := e.s.ListAccessRequests(ctx, user("eve", "dev"), "")
	if err != nil || len(list) != 0 {
		t.Errorf("eve's list: %d, %v", len(list), err)
	}
	err = e.s.DeleteAccessRequest(ctx, user("eve", "dev"), ar.GetName())
	wantErr(t, err, errs.AccessDenied, "needs access_request:delete")
	if err := e.s.DeleteAccessRequest(ctx, alice, ar.GetName()); err != nil {
		t.Fatal(err)
	}
}

// A resource request grants the search_as_roles, restricted to the resources.
func TestResourceAccessRequest(t *testing.T) {
	e := newRequestEnv(t)
	ctx := context.Background()
	alice := user("alice", "dev")
	ar, err := e.s.CreateAccessRequest(ctx, alice, CreateAccessRequest{Resources: []string{"/keyport.example.com/pod/prod-k8s/default/web-0"}})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(ar.Spec.Roles, ",") != "prod" {
		t.Fatalf("roles %v, want the search_as_roles", ar.Spec.Roles)
	}
	if _, err := e.s.ReviewAccessRequest(ctx, user("bob", "lead"), ar.GetName(), true, ""); err != nil {
		t.Fatal(err)
	}
	certPEM, err := e.s.SignUser(ctx, alice, "alice", testPublicKey(t), time.Hour, "", []string{ar.GetName()})
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := tlsca.ParseCertPEM(certPEM)
	id, _ := tlsca.FromCertificate(cert)
	if strings.Join(id.AllowedResources, ",") != "/keyport.example.com/pod/prod-k8s/default/web-0" {
		t.Errorf("allowed resources %v", id.AllowedResources)
	}
	// tsh kube ls: the role reaches every cluster, the certificate only the requested one.
	kube := Actor{Identity: &tlsca.Identity{Username: "kube-1", SystemRole: SystemKube}}
	if err := e.s.HeartbeatKubeClusters(ctx, kube, []*types.KubeCluster{{Header: types.Header{Kind: types.KindKubeCluster, Version: types.V3,
		Metadata: types.Metadata{Name: "dev-k8s"}}}}, time.Hour); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		views, err := e.s.KubeClustersFor(id)
		if err != nil {
			t.Fatal(err)
		}
		reach := map[string]bool{}
		for _, v := range views {
			reach[v.Cluster.GetName()] = v.Reachable
		}
		if len(views) == 2 {
			if !reach["prod-k8s"] || reach["dev-k8s"] {
				t.Errorf("reachable with a request for a prod-k8s pod: %v", reach)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cache did not list dev-k8s: %v", reach)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testPublicKey(t *testing.T) crypto.PublicKey {
	t.Helper()
	key, err := tlsca.GenerateKey(tlsca.AlgECDSAP256, clock.Rand)
	if err != nil {
		t.Fatal(err)
	}
	return key.Public()
}

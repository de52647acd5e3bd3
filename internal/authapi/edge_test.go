package authapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
	"github.com/keyport/keyport/internal/audit"
	"github.com/keyport/keyport/internal/auth"
	"github.com/keyport/keyport/internal/auth/authtest"
	"github.com/keyport/keyport/internal/tlsca"
	"github.com/keyport/keyport/internal/types"
)

// missingRows returns the registered methods that have no row in table, and the rows
// that name no registered method.
func missingRows(services map[string]grpc.ServiceInfo, table map[string]Row) (missing, stale []string) {
	registered := map[string]bool{}
	for svc, info := range services {
		for _, m := range info.Methods {
			full := "/" + svc + "/" + m.Name
			registered[full] = true
			if _, ok := table[full]; !ok {
				missing = append(missing, full)
			}
		}
	}
	for m := range table {
		if !registered[m] {
			stale = append(stale, m)
		}
	}
	sort.Strings(missing)
	sort.Strings(stale)
	return missing, stale
}

// TestEveryMethodHasARow lists the methods the gRPC server registers, unary and stream,
// and fails for one the table does not declare (a new RPC must say what it requires)
// and for a row that names no method.
func TestEveryMethodHasARow(t *testing.T) {
	env := authtest.New(t)
	g := NewServer(Config{Auth: env.Auth})
	missing, stale := missingRows(g.GetServiceInfo(), Table)
	for _, m := range missing {
		t.Errorf("%s is registered but has no row in the Auth API's table (internal/authapi/table.go): declare what it requires", m)
	}
	for _, m := range stale {
		t.Errorf("the table has a row for %s, which the server does not register", m)
	}
	for m, r := range Table {
		switch {
		case r.Access == 0:
			t.Errorf("%s: no Access", m)
		case (r.Access == Rules || r.Access == SelfOrRules) && r.Perms == nil:
			t.Errorf("%s: %v without Perms", m, r.Access)
		case (r.Access == Self || r.Access == SelfOrRules) && r.Self == nil:
			t.Errorf("%s: %v without Self", m, r.Access)
		case r.Requires == "":
			t.Errorf("%s: no Requires text", m)
		}
	}
}

// TestCoverageCatchesAMissingRow proves the coverage check above fails for an RPC added
// without a row, and that such an RPC is refused rather than served.
func TestCoverageCatchesAMissingRow(t *testing.T) {
	services := map[string]grpc.ServiceInfo{"keyport.v1.AuthService": {Methods: []grpc.MethodInfo{{Name: "Ping"}, {Name: "Frobnicate"}}}}
	missing, _ := missingRows(services, Table)
	if !slices.Equal(missing, []string{"/keyport.v1.AuthService/Frobnicate"}) {
		t.Fatalf("missing = %v, want Frobnicate", missing)
	}
	env := authtest.New(t)
	e := newEdge(Config{Auth: env.Auth})
	_, err := e.authorize(context.Background(), "/keyport.v1.AuthService/Frobnicate", nil)
	if err == nil || !strings.Contains(err.Error(), "not in the Auth API's table") {
		t.Fatalf("an undeclared method was authorised: %v", err)
	}
}

// samples holds a request for every method: one that a caller with the row's
// requirement would make, and that a caller without it must be refused.
var samples = map[string]any{
	pb.AuthService_Ping_FullMethodName:                  &pb.PingRequest{},
	pb.AuthService_GetClusterCAs_FullMethodName:         &pb.GetClusterCAsRequest{},
	pb.AuthService_WhoAmI_FullMethodName:                &pb.WhoAmIRequest{},
	pb.AuthService_CreateResource_FullMethodName:        &pb.CreateResourceRequest{Resource: &pb.Resource{Kind: types.KindRole, Json: []byte(`{}`)}},
	pb.AuthService_GetResource_FullMethodName:           &pb.GetResourceRequest{Kind: types.KindRole, Name: "editor"},
	pb.AuthService_ListResources_FullMethodName:         &pb.ListResourcesRequest{Kind: types.KindUser},
	pb.AuthService_DeleteResource_FullMethodName:        &pb.DeleteResourceRequest{Kind: types.KindRole, Name: "editor"},
	pb.AuthService_CreateUser_FullMethodName:            &pb.CreateUserRequest{Name: "zed", Roles: []string{"access"}},
	pb.AuthService_ResetUser_FullMethodName:             &pb.ResetUserRequest{Name: "zed"},
	pb.AuthService_CreateBot_FullMethodName:             &pb.CreateBotRequest{Name: "b", Roles: []string{"access"}},
	pb.AuthService_UpdateBot_FullMethodName:             &pb.UpdateBotRequest{Name: "b", AddRoles: []string{"editor"}},
	pb.AuthService_ListBotInstances_FullMethodName:      &pb.ListBotInstancesRequest{},
	pb.AuthService_CreateToken_FullMethodName:           &pb.CreateTokenRequest{Type: "kube"},
	pb.AuthService_CreateLock_FullMethodName:            &pb.CreateLockRequest{User: "alice"},
	pb.AuthService_SignUser_FullMethodName:              &pb.SignUserRequest{User: "alice"},
	pb.AuthService_JoinBot_FullMethodName:               &pb.JoinBotRequest{Token: "x"},
	pb.AuthService_ListProxies_FullMethodName:           &pb.ListProxiesRequest{},
	pb.AuthService_BoundKeypairChallenge_FullMethodName: &pb.BoundKeypairChallengeRequest{TokenName: "x"},
	pb.AuthService_RenewBot_FullMethodName:              &pb.RenewBotRequest{},
	pb.AuthService_GenerateBotCerts_FullMethodName:      &pb.GenerateBotCertsRequest{},
	pb.AuthService_Login_FullMethodName:                 &pb.LoginRequest{User: "alice"},
	pb.AuthService_JoinHost_FullMethodName:              &pb.JoinHostRequest{Token: "x"},
	pb.AuthService_HeartbeatKubeClusters_FullMethodName: &pb.HeartbeatKubeClustersRequest{
		Clusters: []*pb.KubeCluster{{Name: "prod"}}},
	pb.AuthService_ListKubeClusters_FullMethodName:     &pb.ListKubeClustersRequest{},
	pb.AuthService_KubeCanI_FullMethodName:             &pb.KubeCanIRequest{Bot: "b", Cluster: "prod", Verb: "get", Resource: "pods"},
	pb.AuthService_SearchAudit_FullMethodName:          &pb.SearchAuditRequest{},
	pb.AuthService_ListRecordings_FullMethodName:       &pb.ListRecordingsRequest{},
	pb.AuthService_GetRecording_FullMethodName:         &pb.GetRecordingRequest{SessionId: "0b1b2b3b-0000-4000-8000-000000000000"},
	pb.AuthService_ListActiveSessions_FullMethodName:   &pb.ListActiveSessionsRequest{},
	pb.AuthService_JoinSession_FullMethodName:          &pb.JoinSessionRequest{SessionId: "0b1b2b3b-0000-4000-8000-000000000000"},
	pb.AuthService_CreateAccessRequest_FullMethodName:  &pb.CreateAccessRequestRequest{Roles: []string{"prod"}},
	pb.AuthService_ListAccessRequests_FullMethodName:   &pb.ListAccessRequestsRequest{},
	pb.AuthService_GetAccessRequest_FullMethodName:     &pb.GetAccessRequestRequest{Id: "x"},
	pb.AuthService_DeleteAccessRequest_FullMethodName:  &pb.GetAccessRequestRequest{Id: "x"},
	pb.AuthService_ReviewAccessRequest_FullMethodName:  &pb.ReviewAccessRequestRequest{Id: "x", Approve: true},
	pb.AuthService_CreateSSOAuthRequest_FullMethodName: &pb.CreateSSOAuthRequestRequest{Connector: "dex"},
	pb.AuthService_CreateSSOTestRequest_FullMethodName: &pb.CreateSSOAuthRequestRequest{Kind: "oidc", Connector: "dex"},
	pb.AuthService_FinishSSOLogin_FullMethodName:       &pb.FinishSSOLoginRequest{RequestId: "x"},
}

// testServer serves the Auth API's edge over TLS on a loopback port. Behind the edge sits
// a recorder instead of the handlers: a call that reaches it was authorised; it answers
// with fail(method) when that is set.
type testServer struct {
	env     *authtest.Env
	addr    string
	reached chan string
	logs    *bytes.Buffer
	fail    func(method string) error
}

func newTestServer(t *testing.T) *testServer {
	t.Helper()
	ts := &testServer{env: authtest.New(t), reached: make(chan string, 100), logs: &bytes.Buffer{}}
	ctx := context.Background()
	admin := auth.Actor{Identity: &tlsca.Identity{Username: "admin", SystemRole: auth.SystemAdmin}}
	for _, r := range []types.Resource{
		types.NewRole("nothing", types.V7, types.RoleSpec{}),
		types.NewUser("nobody", "nothing"),
		types.NewUser("alice", "editor"),
		types.NewUser("mallory", "editor"),
		types.NewLock("l1", types.LockTarget{User: "mallory"}, "incident 42"),
	} {
		if _, err := ts.env.Auth.PutResource(ctx, admin, r, auth.Upsert, 0); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { return ts.env.Auth.Cache().LockFor(&tlsca.Identity{Username: "mallory"}) != nil })
	record := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, _ grpc.UnaryHandler) (any, error) {
		ts.reached <- info.FullMethod
		if ts.fail != nil {
			if err := ts.fail(info.FullMethod); err != nil {
				return nil, err
			}
		}
		return &emptypb.Empty{}, nil
	}
	hostCert := ts.env.Cert(t, tlsca.Identity{Username: "auth", SystemRole: auth.SystemAuth})
	creds := credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{hostCert}, ClientAuth: tls.RequestClientCert})
	g := NewServer(Config{Auth: ts.env.Auth, Audit: ts.env.Audit, Logger: slog.New(slog.NewTextHandler(ts.logs, nil)),
		Refusals: audit.NewCoalescer(audit.CoalescerConfig{Next: ts.env.Audit, Burst: 1000})},
		grpc.Creds(creds), grpc.ChainUnaryInterceptor(record))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(l) }()
	t.Cleanup(g.Stop)
	ts.addr = l.Addr().String()
	return ts
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
	}
}

// call invokes method as the holder of cert (nil: no certificate) and reports whether
// the call got past the edge.
func (ts *testServer) call(t *testing.T, cert *tls.Certificate, method string, req any) (bool, error) {
	t.Helper()
	tc := &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the test's own server
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	conn, err := grpc.NewClient(ts.addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	err = conn.Invoke(context.Background(), method, req, &emptypb.Empty{})
	select {
	case m := <-ts.reached:
		if m != method {
			t.Fatalf("reached %s, called %s", m, method)
		}
		return true, err
	default:
		return false, err
	}
}

// TestRefusals walks the table: for every row, a caller without what it requires is
// refused with the right code, the call never reaches its handler, and the refusal is
// in the audit log; a locked caller is refused unless the row allows it; a caller with
// what the row requires gets through.
func TestRefusals(t *testing.T) {
	ts := newTestServer(t)
	nobody := ts.env.Cert(t, tlsca.Identity{Username: "nobody", Roles: []string{"nothing"}})
	alice := ts.env.Cert(t, tlsca.Identity{Username: "alice", Roles: []string{"editor"}})
	mallory := ts.env.Cert(t, tlsca.Identity{Username: "mallory", Roles: []string{"editor"}})
	bot := ts.env.Cert(t, tlsca.Identity{Username: "bot-b", Roles: []string{"bot-b"}, BotName: "b", BotInstanceID: "i1", Renewable: true})
	routed := ts.env.Cert(t, tlsca.Identity{Username: "alice", Roles: []string{"editor"}, KubeCluster: "prod"})
	kubeHost := ts.env.Cert(t, tlsca.Identity{Username: "alice", SystemRole: auth.SystemKube})

	var methods []string
	for m := range Table {
		methods = append(methods, m)
	}
	sort.Strings(methods)
	for _, m := range methods {
		row := Table[m]
		req, ok := samples[m]
		if !ok {
			t.Errorf("%s: no sample request in this test", m)
			continue
		}
		t.Run(shortName(m), func(t *testing.T) {
			type attempt struct {
				who   string
				cert  *tls.Certificate
				code  codes.Code // codes.OK: must reach the handler
				audit bool       // the refusal is an api.denied event
			}
			var as []attempt
			switch row.Access {
			case Public, Credential:
				as = append(as, attempt{"no certificate", nil, codes.OK, false}, attempt{"nobody", &nobody, codes.OK, false})
			case Authenticated:
				as = append(as, attempt{"no certificate", nil, codes.Unauthenticated, true}, attempt{"nobody", &nobody, codes.OK, false})
			case Self:
				as = append(as, attempt{"no certificate", nil, codes.Unauthenticated, true},
					attempt{"a user", &alice, codes.PermissionDenied, true}, attempt{"the bot", &bot, codes.OK, false})
			case Rules, SelfOrRules:
				as = append(as, attempt{"no certificate", nil, codes.Unauthenticated, true},
					attempt{"a role without the rule", &nobody, codes.PermissionDenied, true}, attempt{"an editor", &alice, codes.OK, false})
			}
			if row.Access != Public && row.Access != Credential {
				want := codes.PermissionDenied
				if row.Locked {
					want = codes.OK
				}
				as = append(as, attempt{"a locked editor", &mallory, want, want != codes.OK})
			}
			if row.Access == SelfOrRules {
				// SignUser: alice for herself from her login certificate; not from one
				// routed to a kube cluster, nor from a host certificate with her name.
				as = append(as, attempt{"routed certificate", &routed, codes.PermissionDenied, true},
					attempt{"host named like the user", &kubeHost, codes.PermissionDenied, true})
			}
			for _, a := range as {
				before := ts.env.Audit.Count(audit.APIDenied)
				reached, err := ts.call(t, a.cert, m, req)
				got := status.Code(err)
				switch {
				case a.code == codes.OK && !reached:
					t.Errorf("%s: refused (%v), want it to reach the handler", a.who, err)
				case a.code != codes.OK && reached:
					t.Errorf("%s: reached the handler, want %v", a.who, a.code)
				case a.code != codes.OK && got != a.code:
					t.Errorf("%s: %v, want %v", a.who, err, a.code)
				}
				if n := ts.env.Audit.Count(audit.APIDenied) - before; a.audit && n != 1 {
					t.Errorf("%s: %d api.denied events, want 1", a.who, n)
				}
			}
		})
	}
}

// TestSelfOrRulesSelf: alice may sign her own certificate with no user:update rule.
func TestSelfOrRulesSelf(t *testing.T) {
	ts := newTestServer(t)
	ctx := context.Background()
	admin := auth.Actor{Identity: &tlsca.Identity{Username: "admin", SystemRole: auth.SystemAdmin}}
	if _, err := ts.env.Auth.PutResource(ctx, admin, types.NewUser("carol", "nothing"), auth.Upsert, 0); err != nil {
		t.Fatal(err)
	}
	carol := ts.env.Cert(t, tlsca.Identity{Username: "carol", Roles: []string{"nothing"}})
	if reached, err := ts.call(t, &carol, pb.AuthService_SignUser_FullMethodName, &pb.SignUserRequest{User: "carol"}); !reached {
		t.Fatalf("carol signing for herself was refused: %v", err)
	}
	if reached, _ := ts.call(t, &carol, pb.AuthService_SignUser_FullMethodName, &pb.SignUserRequest{User: "alice"}); reached {
		t.Fatal("carol signed for alice without user:update")
	}
}

// TestDeniedEventNamesCaller: an api.denied event says who, from where, which method and
// why.
func TestDeniedEventNamesCaller(t *testing.T) {
	ts := newTestServer(t)
	nobody := ts.env.Cert(t, tlsca.Identity{Username: "nobody", Roles: []string{"nothing"}})
	if _, err := ts.call(t, &nobody, pb.AuthService_CreateLock_FullMethodName, &pb.CreateLockRequest{User: "alice"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("err = %v", err)
	}
	var ev *audit.Event
	for _, e := range ts.env.Audit.Events() {
		if e.Type == audit.APIDenied {
			ev = &e
		}
	}
	if ev == nil {
		t.Fatal("no api.denied event")
	}
	if ev.User != "nobody" || ev.Fields["method"] != "CreateLock" || !strings.HasPrefix(ev.Fields["addr"].(string), "127.0.0.1:") ||
		!strings.Contains(ev.Message, "create lock") || ev.Success {
		t.Fatalf("event = %+v", ev)
	}
}

// TestInternalErrorsHideTheCause: a caller sees "internal error (ref ID)"; the cause is in
// the log line with that ID and nowhere in the answer.
func TestInternalErrorsHideTheCause(t *testing.T) {
	ts := newTestServer(t)
	const cause = "open /var/lib/keyport/keyport.db: disk I/O error at key /cas/host"
	ts.fail = func(string) error { return errors.New(cause) }
	alice := ts.env.Cert(t, tlsca.Identity{Username: "alice", Roles: []string{"editor"}})
	_, err := ts.call(t, &alice, pb.AuthService_WhoAmI_FullMethodName, &pb.WhoAmIRequest{})
	st := status.Convert(err)
	if st.Code() != codes.Internal || !strings.HasPrefix(st.Message(), "internal error (ref ") {
		t.Fatalf("err = %v, want internal error (ref …)", err)
	}
	for _, part := range []string{"disk I/O", "/var/lib", "/cas/host"} {
		if strings.Contains(st.Message(), part) {
			t.Fatalf("the answer %q leaks %q", st.Message(), part)
		}
	}
	ref := strings.TrimSuffix(strings.TrimPrefix(st.Message(), "internal error (ref "), ")")
	if logs := ts.logs.String(); !strings.Contains(logs, "ref="+ref) || !strings.Contains(logs, "disk I/O error") {
		t.Fatalf("the log does not hold ref %s with its cause:\n%s", ref, logs)
	}
}

package auth

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
	"github.com/keyport/keyport/internal/audit"
	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/tlsca"
	"github.com/keyport/keyport/internal/types"
)

// unauthenticated are the methods that need no client certificate.
var unauthenticated = map[string]bool{
	pb.AuthService_Ping_FullMethodName:     true,
	pb.AuthService_JoinBot_FullMethodName:  true,
	pb.AuthService_JoinHost_FullMethodName: true,
	pb.AuthService_Login_FullMethodName:    true,
}

type actorKey struct{}

// NewGRPCServer returns a gRPC server exposing s as the Auth API. TLS is the caller's
// business (the listener or the proxy's HTTP/2 handler); the server reads the peer's
// certificate and verifies it against the user and host CAs itself, so that errors can
// say what is wrong instead of ending in a TLS alert.
func NewGRPCServer(s *Server, opts ...grpc.ServerOption) *grpc.Server {
	opts = append(opts, grpc.ChainUnaryInterceptor(s.unaryInterceptor))
	g := grpc.NewServer(opts...)
	pb.RegisterAuthServiceServer(g, &grpcAPI{s: s})
	return g
}

func (s *Server) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	actor, err := s.actorFromContext(ctx)
	if err != nil && !unauthenticated[info.FullMethod] {
		return nil, toStatus(err)
	}
	resp, err := handler(context.WithValue(ctx, actorKey{}, actor), req)
	if err != nil {
		return nil, toStatus(err)
	}
	return resp, nil
}

// actorFromContext verifies the peer's certificate.
func (s *Server) actorFromContext(ctx context.Context) (Actor, error) {
	var a Actor
	p, ok := peer.FromContext(ctx)
	if !ok {
		return a, errs.NotAuthenticatedf("no peer information")
	}
	if p.Addr != nil {
		a.Addr = p.Addr.String()
	}
	var certs []*x509.Certificate
	switch info := p.AuthInfo.(type) {
	case credentials.TLSInfo:
		certs = info.State.PeerCertificates
	}
	if v := ctx.Value(forwardedCertsKey{}); v != nil {
		certs = v.([]*x509.Certificate)
	}
	if len(certs) == 0 {
		return a, errs.NotAuthenticatedf("this call needs a client certificate (log in with tsh, or use tctl --identity)")
	}
	id, err := s.VerifyClientCert(certs[0])
	if err != nil {
		return a, err
	}
	a.Identity = id
	return a, nil
}

type forwardedCertsKey struct{}

// VerifyClientCert checks a client certificate against the user CA (users and bots) or
// the host CA (Keyport's own processes and the local admin) and returns its identity.
func (s *Server) VerifyClientCert(cert *x509.Certificate) (*tlsca.Identity, error) {
	now := s.cfg.Clock.Now()
	if id, ok := s.verified.get(cert, now); ok {
		return id, nil
	}
	id, err := s.verifyClientCert(cert, now)
	if err == nil {
		s.verified.put(cert, id)
	}
	return id, err
}

func (s *Server) verifyClientCert(cert *x509.Certificate, now time.Time) (*tlsca.Identity, error) {
	userPool, hostPool := s.Pools()
	id, err := tlsca.Verify(userPool, cert, now)
	if err == nil {
		if id.SystemRole != "" {
			return nil, errs.NotAuthenticatedf("certificate for %q claims a system role but was issued by the user CA", id.Username)
		}
		return id, nil
	}
	if hid, herr := tlsca.Verify(hostPool, cert, now); herr == nil {
		if hid.SystemRole == "" {
			return nil, errs.NotAuthenticatedf("host certificate for %q has no system role", hid.Username)
		}
		return hid, nil
	}
	return nil, err
}

func toStatus(err error) error {
	if _, ok := status.FromError(err); ok && errs.KindOf(err) == errs.Unknown {
		var st interface{ GRPCStatus() *status.Status }
		if errors.As(err, &st) {
			return err
		}
	}
	code := errs.GRPCCode(err)
	msg := err.Error()
	if code == codes.Internal {
		// Internal causes may hold detail that is not the caller's business.
		msg = "internal error: " + msg
	}
	return status.Error(code, msg)
}

type grpcAPI struct {
	pb.UnimplementedAuthServiceServer
	s *Server
}

func actorOf(ctx context.Context) Actor {
	a, _ := ctx.Value(actorKey{}).(Actor)
	return a
}

func (g *grpcAPI) authz(ctx context.Context, kind, verb string) (Actor, error) {
	a := actorOf(ctx)
	return a, g.s.Authorize(a, kind, verb)
}

func (g *grpcAPI) Ping(context.Context, *pb.PingRequest) (*pb.PingResponse, error) {
	p := g.s.Ping()
	return &pb.PingResponse{ClusterName: p.ClusterName, Version: p.Version, HostCaPin: p.HostCAPin, ProxyPublicAddr: p.ProxyPublicAddr, ServerTimeUnix: p.ServerTime.Unix()}, nil
}

func (g *grpcAPI) GetClusterCAs(ctx context.Context, _ *pb.GetClusterCAsRequest) (*pb.GetClusterCAsResponse, error) {
	if actorOf(ctx).Identity == nil {
		return nil, errs.NotAuthenticatedf("this call needs a client certificate")
	}
	var out pb.GetClusterCAsResponse
	for _, ca := range g.s.CAs() {
		out.Cas = append(out.Cas, &pb.CA{Type: ca.Type, CertPem: ca.CertPEM, Fingerprint: ca.Fingerprint, Algorithm: ca.Algorithm, RotationState: ca.RotationState, Pin: ca.Pin})
	}
	return &out, nil
}

func (g *grpcAPI) WhoAmI(ctx context.Context, _ *pb.WhoAmIRequest) (*pb.WhoAmIResponse, error) {
	id := actorOf(ctx).Identity
	if err := g.s.CheckLock(id); err != nil {
		return nil, err
	}
	return &pb.WhoAmIResponse{Username: id.Username, Roles: id.Roles, Traits: toPBTraits(id.Traits), BotName: id.BotName,
		BotInstanceId: id.BotInstanceID, KubeCluster: id.KubeCluster, ExpiresUnix: id.Expires.Unix(), SystemRole: id.SystemRole}, nil
}

func toPBTraits(t map[string][]string) map[string]*pb.StringList {
	if len(t) == 0 {
		return nil
	}
	out := make(map[string]*pb.StringList, len(t))
	for k, v := range t {
		out[k] = &pb.StringList{Values: v}
	}
	return out
}

func fromPBTraits(t map[string]*pb.StringList) types.Traits {
	if len(t) == 0 {
		return nil
	}
	out := types.Traits{}
	for k, v := range t {
		out[k] = v.GetValues()
	}
	return out
}

func toPBResource(r types.Resource) (*pb.Resource, error) {
	data, err := types.EncodeJSON(r)
	if err != nil {
		return nil, err
	}
	return &pb.Resource{Kind: r.GetKind(), Json: data, Revision: r.GetMetadata().Revision}, nil
}

func fromPBResource(p *pb.Resource) (types.Resource, error) {
	if p == nil {
		return nil, errs.BadParameterf("no resource given")
	}
	r, err := types.UnmarshalStorage(p.GetJson())
	if err != nil {
		return nil, errs.Wrap(errs.BadParameter, err)
	}
	return r, nil
}

func (g *grpcAPI) CreateResource(ctx context.Context, req *pb.CreateResourceRequest) (*pb.CreateResourceResponse, error) {
	r, err := fromPBResource(req.GetResource())
	if err != nil {
		return nil, err
	}
	mode, verb := CreateOnly, VerbCreate
	switch {
	case req.GetExpectedRevision() != 0:
		mode, verb = Conditional, VerbUpdate
	case req.GetForce():
		mode = Upsert
	}
	a, err := g.authz(ctx, r.GetKind(), verb)
	if err != nil {
		return nil, err
	}
	if mode == Upsert {
		// Overwriting needs update rights too.
		if err := g.s.Authorize(a, r.GetKind(), VerbUpdate); err != nil {
			return nil, err
		}
	}
	created, err := g.s.PutResource(ctx, a, r, mode, req.GetExpectedRevision())
	if err != nil {
		return nil, err
	}
	return &pb.CreateResourceResponse{Created: created}, nil
}

func (g *grpcAPI) GetResource(ctx context.Context, req *pb.GetResourceRequest) (*pb.Resource, error) {
	if _, err := g.authz(ctx, req.GetKind(), VerbRead); err != nil {
		return nil, err
	}
	name := req.GetName()
	if req.GetKind() == types.KindToken && len(name) != 64 {
		name = hashToken(name)
	}
	r, err := g.s.GetResource(ctx, req.GetKind(), name)
	if err != nil {
		return nil, err
	}
	return toPBResource(r)
}

func (g *grpcAPI) ListResources(ctx context.Context, req *pb.ListResourcesRequest) (*pb.ListResourcesResponse, error) {
	if _, err := g.authz(ctx, req.GetKind(), VerbList); err != nil {
		return nil, err
	}
	rs, err := g.s.ListResources(ctx, req.GetKind())
	if err != nil {
		return nil, err
	}
	out := &pb.ListResourcesResponse{}
	for _, r := range rs {
		p, err := toPBResource(r)
		if err != nil {
			return nil, err
		}
		out.Resources = append(out.Resources, p)
	}
	return out, nil
}

func (g *grpcAPI) DeleteResource(ctx context.Context, req *pb.DeleteResourceRequest) (*pb.DeleteResourceResponse, error) {
	a, err := g.authz(ctx, req.GetKind(), VerbDelete)
	if err != nil {
		return nil, err
	}
	return &pb.DeleteResourceResponse{}, g.s.DeleteResource(ctx, a, req.GetKind(), req.GetName())
}

func (g *grpcAPI) CreateUser(ctx context.Context, req *pb.CreateUserRequest) (*pb.CreateUserResponse, error) {
	a, err := g.authz(ctx, types.KindUser, VerbCreate)
	if err != nil {
		return nil, err
	}
	u := types.NewUser(req.GetName(), req.GetRoles()...)
	u.Spec.Traits = fromPBTraits(req.GetTraits())
	url, exp, err := g.s.CreateUser(ctx, a, u)
	if err != nil {
		return nil, err
	}
	return &pb.CreateUserResponse{InviteUrl: url, ExpiresUnix: exp.Unix()}, nil
}

func (g *grpcAPI) ResetUser(ctx context.Context, req *pb.ResetUserRequest) (*pb.CreateUserResponse, error) {
	a, err := g.authz(ctx, types.KindUser, VerbUpdate)
	if err != nil {
		return nil, err
	}
	url, exp, err := g.s.ResetUser(ctx, a, req.GetName())
	if err != nil {
		return nil, err
	}
	return &pb.CreateUserResponse{InviteUrl: url, ExpiresUnix: exp.Unix()}, nil
}

func (g *grpcAPI) CreateBot(ctx context.Context, req *pb.CreateBotRequest) (*pb.CreateBotResponse, error) {
	a, err := g.authz(ctx, types.KindBot, VerbCreate)
	if err != nil {
		return nil, err
	}
	if err := g.s.Authorize(a, types.KindToken, VerbCreate); err != nil {
		return nil, err
	}
	bot := types.NewBot(req.GetName(), req.GetRoles()...)
	bot.Spec.Traits = fromPBTraits(req.GetTraits())
	bot.Spec.MaxSessionTTL = types.Duration(time.Duration(req.GetMaxSessionTtlSeconds()) * time.Second)
	ttl := time.Duration(req.GetTokenTtlSeconds()) * time.Second
	token, exp, err := g.s.CreateBot(ctx, a, bot, ttl)
	if err != nil {
		return nil, err
	}
	user, role := types.BotResourceNames(req.GetName())
	return &pb.CreateBotResponse{UserName: user, RoleName: role, TokenId: token,
		TokenTtlSeconds: int64(exp.Sub(g.s.cfg.Clock.Now()).Round(time.Second) / time.Second),
		HostCaPin:       g.s.HostCAPin(), ProxyPublicAddr: g.s.cfg.ProxyPublicAddr}, nil
}

func (g *grpcAPI) UpdateBot(ctx context.Context, req *pb.UpdateBotRequest) (*pb.Resource, error) {
	a, err := g.authz(ctx, types.KindBot, VerbUpdate)
	if err != nil {
		return nil, err
	}
	bot, err := g.s.UpdateBot(ctx, a, req.GetName(), req.GetAddRoles(), req.GetSetRoles(), req.GetSet())
	if err != nil {
		return nil, err
	}
	return toPBResource(bot)
}

func (g *grpcAPI) ListBotInstances(ctx context.Context, req *pb.ListBotInstancesRequest) (*pb.ListBotInstancesResponse, error) {
	if _, err := g.authz(ctx, types.KindBotInstance, VerbList); err != nil {
		return nil, err
	}
	bis, err := g.s.BotInstances(ctx, req.GetBotName())
	if err != nil {
		return nil, err
	}
	out := &pb.ListBotInstancesResponse{}
	for _, b := range bis {
		out.Instances = append(out.Instances, &pb.BotInstance{BotName: b.BotName, InstanceId: b.ID, JoinMethod: b.JoinMethod, Hostname: b.Hostname,
			JoinedUnix: b.Joined.Unix(), LastSeenUnix: b.LastSeen.Unix(), Generation: b.Generation, Locked: b.Locked})
	}
	return out, nil
}

func (g *grpcAPI) CreateToken(ctx context.Context, req *pb.CreateTokenRequest) (*pb.CreateTokenResponse, error) {
	a, err := g.authz(ctx, types.KindToken, VerbCreate)
	if err != nil {
		return nil, err
	}
	var role string
	switch req.GetType() {
	case "bot", "Bot":
		role = types.TokenRoleBot
		if req.GetBotName() == "" {
			return nil, errs.BadParameterf("a bot token needs --bot-name")
		}
	case "kube", "Kube":
		role = types.TokenRoleKube
	default:
		return nil, errs.BadParameterf("unknown token type %q (want bot or kube)", req.GetType())
	}
	secret, t, err := g.s.CreateToken(ctx, a, role, req.GetBotName(), req.GetJoinMethod(), req.GetName(), req.GetAllowServiceAccounts(), time.Duration(req.GetTtlSeconds())*time.Second)
	if err != nil {
		return nil, err
	}
	return &pb.CreateTokenResponse{Token: secret, Name: t.GetName(), ExpiresUnix: t.Metadata.Expires.Unix()}, nil
}

func (g *grpcAPI) CreateLock(ctx context.Context, req *pb.CreateLockRequest) (*pb.Resource, error) {
	a, err := g.authz(ctx, types.KindLock, VerbCreate)
	if err != nil {
		return nil, err
	}
	target := types.LockTarget{User: req.GetUser(), Role: req.GetRole(), Bot: req.GetBot(), BotInstanceID: req.GetBotInstanceId(), Login: req.GetLogin()}
	var expires *time.Time
	switch {
	case req.GetExpiresUnix() != 0:
		t := time.Unix(req.GetExpiresUnix(), 0).UTC()
		expires = &t
	case req.GetTtlSeconds() != 0:
		t := g.s.cfg.Clock.Now().Add(time.Duration(req.GetTtlSeconds()) * time.Second).UTC()
		expires = &t
	}
	l, err := g.s.CreateLock(ctx, a, target, req.GetMessage(), expires)
	if err != nil {
		return nil, err
	}
	return toPBResource(l)
}

func (g *grpcAPI) SignUser(ctx context.Context, req *pb.SignUserRequest) (*pb.Certs, error) {
	a := actorOf(ctx)
	ttl := time.Duration(req.GetTtlSeconds()) * time.Second
	// Signing for someone else is an admin act; signing for yourself is a login renewal
	// (tsh kube credentials), which may not outlive the login, nor start from a
	// certificate that was only ever meant for one kube cluster.
	if a.Identity.Username != req.GetUser() || a.Identity.IsBot() {
		if err := g.s.Authorize(a, types.KindUser, VerbUpdate); err != nil {
			return nil, err
		}
	} else {
		if err := g.s.CheckLock(a.Identity); err != nil {
			return nil, err
		}
		if a.Identity.SystemRole == "" {
			if a.Identity.KubeCluster != "" {
				return nil, errs.AccessDeniedf("a certificate routed to kube cluster %q cannot be used to issue certificates; use your login certificate", a.Identity.KubeCluster)
			}
			if left := a.Identity.Expires.Sub(g.s.cfg.Clock.Now()); ttl <= 0 || ttl > left {
				ttl = left
			}
		}
	}
	pub, err := ParsePublicKey(req.GetPublicKeyDer())
	if err != nil {
		return nil, err
	}
	cert, err := g.s.SignUser(ctx, a, req.GetUser(), pub, ttl, req.GetKubeCluster())
	if err != nil {
		return nil, err
	}
	return g.certs(cert, "", 0), nil
}

func (g *grpcAPI) certs(cert []byte, instance string, gen uint64) *pb.Certs {
	return &pb.Certs{TlsCertPem: cert, HostCaPems: [][]byte{g.s.HostCA().CertPEM}, UserCaPems: [][]byte{g.s.UserCA().CertPEM},
		ClusterName: g.s.cfg.ClusterName, BotInstanceId: instance, Generation: gen}
}

func (g *grpcAPI) JoinBot(ctx context.Context, req *pb.JoinBotRequest) (*pb.Certs, error) {
	a := actorOf(ctx)
	pub, err := ParsePublicKey(req.GetPublicKeyDer())
	if err != nil {
		return nil, err
	}
	res, err := g.s.JoinBot(ctx, a.Addr, req.GetJoinMethod(), req.GetToken(), req.GetHostname(), pub, time.Duration(req.GetTtlSeconds())*time.Second)
	if err != nil {
		return nil, err
	}
	return g.certs(res.CertPEM, res.InstanceID, res.Generation), nil
}

func (g *grpcAPI) RenewBot(ctx context.Context, req *pb.RenewBotRequest) (*pb.Certs, error) {
	pub, err := ParsePublicKey(req.GetPublicKeyDer())
	if err != nil {
		return nil, err
	}
	res, err := g.s.RenewBot(ctx, actorOf(ctx), pub, time.Duration(req.GetTtlSeconds())*time.Second)
	if err != nil {
		return nil, err
	}
	return g.certs(res.CertPEM, res.InstanceID, res.Generation), nil
}

func (g *grpcAPI) GenerateBotCerts(ctx context.Context, req *pb.GenerateBotCertsRequest) (*pb.Certs, error) {
	pub, err := ParsePublicKey(req.GetPublicKeyDer())
	if err != nil {
		return nil, err
	}
	a := actorOf(ctx)
	cert, err := g.s.GenerateBotCerts(ctx, a, pub, time.Duration(req.GetTtlSeconds())*time.Second, req.GetKubeCluster())
	if err != nil {
		return nil, err
	}
	return g.certs(cert, a.Identity.BotInstanceID, a.Identity.Generation), nil
}

func (g *grpcAPI) HeartbeatKubeClusters(ctx context.Context, req *pb.HeartbeatKubeClustersRequest) (*pb.HeartbeatKubeClustersResponse, error) {
	a, err := g.authz(ctx, types.KindKubeCluster, VerbUpdate)
	if err != nil {
		return nil, err
	}
	var kcs []*types.KubeCluster
	for _, c := range req.GetClusters() {
		service := c.GetService()
		if service == "" || a.Identity.SystemRole == SystemKube {
			// A Kubernetes Service speaks only for itself: the tunnel routing trusts
			// the registration's service name.
			service = a.Identity.Username
		}
		if a.Identity.SystemRole == SystemKube {
			if r, err := g.s.cache.Get(types.KindKubeCluster, c.GetName()); err == nil {
				if cur := r.(*types.KubeCluster); cur.Spec.Service != service && !expired(cur, g.s.cfg.Clock.Now()) {
					return nil, errs.AlreadyExistsf("kube cluster %q is served by %q; a second Kubernetes Service may not take it over", c.GetName(), cur.Spec.Service)
				}
			}
		}
		kcs = append(kcs, types.NewKubeCluster(c.GetName(), service, c.GetLabels()))
	}
	return &pb.HeartbeatKubeClustersResponse{}, g.s.HeartbeatKubeClusters(ctx, a, kcs, time.Duration(req.GetTtlSeconds())*time.Second)
}

func (g *grpcAPI) ListKubeClusters(ctx context.Context, _ *pb.ListKubeClustersRequest) (*pb.ListKubeClustersResponse, error) {
	a := actorOf(ctx)
	if err := g.s.CheckLock(a.Identity); err != nil {
		return nil, err
	}
	out := &pb.ListKubeClustersResponse{}
	for _, kc := range g.s.KubeClusters() {
		out.Clusters = append(out.Clusters, &pb.KubeCluster{Name: kc.GetName(), Labels: kc.Metadata.Labels, Service: kc.Spec.Service})
		out.Accessible = append(out.Accessible, g.s.CanReachKubeCluster(a.Identity, kc))
	}
	return out, nil
}

func (g *grpcAPI) SearchAudit(ctx context.Context, req *pb.SearchAuditRequest) (*pb.SearchAuditResponse, error) {
	if _, err := g.authz(ctx, types.KindEvent, VerbList); err != nil {
		return nil, err
	}
	f := audit.Filter{User: req.GetUser(), Type: req.GetType(), Limit: int(req.GetLimit())}
	if req.GetSinceUnix() != 0 {
		f.Since = time.Unix(req.GetSinceUnix(), 0)
	}
	events, err := audit.Search(ctx, g.s.cfg.Backend, f)
	if err != nil {
		return nil, err
	}
	out := &pb.SearchAuditResponse{}
	for _, e := range events {
		data, err := json.Marshal(e)
		if err != nil {
			return nil, err
		}
		out.Events = append(out.Events, &pb.AuditEvent{Json: data})
	}
	return out, nil
}

func (g *grpcAPI) KubeCanI(ctx context.Context, req *pb.KubeCanIRequest) (*pb.KubeCanIResponse, error) {
	kind := types.KindUser
	if req.GetBot() != "" {
		kind = types.KindBot
	}
	if _, err := g.authz(ctx, kind, VerbRead); err != nil {
		return nil, err
	}
	group, resource, sub := ParseResource(req.GetResource())
	res, err := g.s.KubeCanI(ctx, req.GetUser(), req.GetBot(), req.GetCluster(), ResourceAttributes{
		Verb: req.GetVerb(), Group: group, Resource: resource, Subresource: sub, Namespace: req.GetNamespace(), Name: req.GetName()})
	if err != nil {
		return nil, err
	}
	return &pb.KubeCanIResponse{Allowed: res.Allowed, DeniedBy: res.DeniedBy, Reason: res.Reason, ImpersonatedUser: res.User, ImpersonatedGroups: res.Groups}, nil
}

// JoinHost is unauthenticated (the token is the credential), except that a Kubernetes
// Service calling it with its own valid host certificate and no token renews it.
func (g *grpcAPI) JoinHost(ctx context.Context, req *pb.JoinHostRequest) (*pb.Certs, error) {
	pub, err := ParsePublicKey(req.GetPublicKeyDer())
	if err != nil {
		return nil, err
	}
	cert, err := g.s.JoinHost(ctx, actorOf(ctx), req.GetToken(), req.GetJoinMethod(), req.GetRole(), req.GetHostname(), pub)
	if err != nil {
		return nil, err
	}
	return g.certs(cert, "", 0), nil
}

// Login exchanges a local user's password and OTP code for a user certificate. It needs
// no client certificate; the limits and the lockout are Server.Login's.
func (g *grpcAPI) Login(ctx context.Context, req *pb.LoginRequest) (*pb.Certs, error) {
	pub, err := ParsePublicKey(req.GetPublicKeyDer())
	if err != nil {
		return nil, err
	}
	cert, err := g.s.Login(ctx, LoginRequest{User: req.GetUser(), Password: req.GetPassword(), OTPCode: req.GetOtpCode(),
		PublicKey: pub, TTL: time.Duration(req.GetTtlSeconds()) * time.Second, Addr: actorOf(ctx).Addr})
	if err != nil {
		return nil, err
	}
	return g.certs(cert, "", 0), nil
}

func expired(r types.Resource, now time.Time) bool {
	exp := r.GetMetadata().Expires
	return exp != nil && !now.Before(*exp)
}

package authapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	pb "github.com/keyport/keyport/api/gen/keyportv1"

	"github.com/keyport/keyport/internal/audit"
	"github.com/keyport/keyport/internal/auth"
	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/types"
)

// handlers translate between protobuf messages and the Auth Service's methods. Every
// call reaching them has been authorised by the edge (table.go).
type handlers struct {
	pb.UnimplementedAuthServiceServer
	s *auth.Server
}

func (g *handlers) Ping(context.Context, *pb.PingRequest) (*pb.PingResponse, error) {
	p := g.s.Ping()
	return &pb.PingResponse{ClusterName: p.ClusterName, Version: p.Version, HostCaPin: p.HostCAPin, ProxyPublicAddr: p.ProxyPublicAddr, ServerTimeUnix: p.ServerTime.Unix()}, nil
}

func (g *handlers) GetClusterCAs(context.Context, *pb.GetClusterCAsRequest) (*pb.GetClusterCAsResponse, error) {
	var out pb.GetClusterCAsResponse
	for _, ca := range g.s.CAs() {
		out.Cas = append(out.Cas, &pb.CA{Type: ca.Type, CertPem: ca.CertPEM, Fingerprint: ca.Fingerprint, Algorithm: ca.Algorithm, RotationState: ca.RotationState, Pin: ca.Pin})
	}
	return &out, nil
}

func (g *handlers) WhoAmI(ctx context.Context, _ *pb.WhoAmIRequest) (*pb.WhoAmIResponse, error) {
	id := actorOf(ctx).Identity
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
	if r.GetKind() != p.GetKind() {
		// The edge authorised the call for p.Kind; the resource must be of that kind.
		return nil, errs.BadParameterf("the resource is a %s, but the request says %s", r.GetKind(), p.GetKind())
	}
	return r, nil
}

func (g *handlers) CreateResource(ctx context.Context, req *pb.CreateResourceRequest) (*pb.CreateResourceResponse, error) {
	r, err := fromPBResource(req.GetResource())
	if err != nil {
		return nil, err
	}
	mode := auth.CreateOnly
	switch {
	case req.GetExpectedRevision() != 0:
		mode = auth.Conditional
	case req.GetForce():
		mode = auth.Upsert
	}
	created, err := g.s.PutResource(ctx, actorOf(ctx), r, mode, req.GetExpectedRevision())
	if err != nil {
		return nil, err
	}
	return &pb.CreateResourceResponse{Created: created}, nil
}

func (g *handlers) GetResource(ctx context.Context, req *pb.GetResourceRequest) (*pb.Resource, error) {
	// A token is found by its name (what tokens ls shows: the hash of a secret, or the
	// plain name of the other join methods) or by the secret itself.
	r, err := g.s.GetResource(ctx, req.GetKind(), req.GetName())
	if errs.IsNotFound(err) && req.GetKind() == types.KindToken {
		r, err = g.s.GetResource(ctx, req.GetKind(), auth.HashToken(req.GetName()))
	}
	if err != nil {
		return nil, err
	}
	return toPBResource(types.Redacted(r))
}

func (g *handlers) ListResources(ctx context.Context, req *pb.ListResourcesRequest) (*pb.ListResourcesResponse, error) {
	rs, err := g.s.ListResources(ctx, req.GetKind())
	if err != nil {
		return nil, err
	}
	out := &pb.ListResourcesResponse{}
	for _, r := range rs {
		p, err := toPBResource(types.Redacted(r))
		if err != nil {
			return nil, err
		}
		out.Resources = append(out.Resources, p)
	}
	return out, nil
}

func (g *handlers) DeleteResource(ctx context.Context, req *pb.DeleteResourceRequest) (*pb.DeleteResourceResponse, error) {
	a := actorOf(ctx)
	return &pb.DeleteResourceResponse{}, g.s.DeleteResource(ctx, a, req.GetKind(), req.GetName())
}

func (g *handlers) CreateUser(ctx context.Context, req *pb.CreateUserRequest) (*pb.CreateUserResponse, error) {
	a := actorOf(ctx)
	u := types.NewUser(req.GetName(), req.GetRoles()...)
	u.Spec.Traits = fromPBTraits(req.GetTraits())
	url, exp, err := g.s.CreateUser(ctx, a, u)
	if err != nil {
		return nil, err
	}
	return &pb.CreateUserResponse{InviteUrl: url, ExpiresUnix: exp.Unix()}, nil
}

func (g *handlers) ResetUser(ctx context.Context, req *pb.ResetUserRequest) (*pb.CreateUserResponse, error) {
	a := actorOf(ctx)
	url, exp, err := g.s.ResetUser(ctx, a, req.GetName())
	if err != nil {
		return nil, err
	}
	return &pb.CreateUserResponse{InviteUrl: url, ExpiresUnix: exp.Unix()}, nil
}

func (g *handlers) CreateBot(ctx context.Context, req *pb.CreateBotRequest) (*pb.CreateBotResponse, error) {
	a := actorOf(ctx)
	bot := types.NewBot(req.GetName(), req.GetRoles()...)
	bot.Spec.Traits = fromPBTraits(req.GetTraits())
	bot.Spec.MaxSessionTTL = types.Duration(time.Duration(req.GetMaxSessionTtlSeconds()) * time.Second)
	ttl := time.Duration(req.GetTokenTtlSeconds()) * time.Second
	user, role := types.BotResourceNames(req.GetName())
	switch req.GetJoinMethod() {
	case "", types.JoinMethodToken:
	case types.JoinMethodBoundKeypair:
		tok, secret, err := g.s.CreateBotBoundKeypair(ctx, a, bot, int(req.GetRejoins()), ttl)
		if err != nil {
			return nil, err
		}
		return &pb.CreateBotResponse{UserName: user, RoleName: role, JoinTokenName: tok.GetName(), RegistrationSecret: secret,
			TokenTtlSeconds: int64(tok.Spec.BoundKeypair.RegisterBefore.Sub(g.s.Now()).Round(time.Second) / time.Second),
			HostCaPin:       g.s.HostCAPin(), ProxyPublicAddr: g.s.ProxyPublicAddr()}, nil
	default:
		return nil, errs.BadParameterf("tctl bots add makes bots that join with method token or bound_keypair; for %s, add the bot and then its token (tctl tokens add or tctl create)", req.GetJoinMethod())
	}
	token, exp, err := g.s.CreateBot(ctx, a, bot, ttl)
	if err != nil {
		return nil, err
	}
	return &pb.CreateBotResponse{UserName: user, RoleName: role, TokenId: token,
		TokenTtlSeconds: int64(exp.Sub(g.s.Now()).Round(time.Second) / time.Second),
		HostCaPin:       g.s.HostCAPin(), ProxyPublicAddr: g.s.ProxyPublicAddr()}, nil
}

func (g *handlers) UpdateBot(ctx context.Context, req *pb.UpdateBotRequest) (*pb.Resource, error) {
	a := actorOf(ctx)
	bot, err := g.s.UpdateBot(ctx, a, req.GetName(), req.GetAddRoles(), req.GetSetRoles(), req.GetSet())
	if err != nil {
		return nil, err
	}
	return toPBResource(bot)
}

func (g *handlers) ListBotInstances(ctx context.Context, req *pb.ListBotInstancesRequest) (*pb.ListBotInstancesResponse, error) {
	bis, err := g.s.BotInstances(ctx, req.GetBotName())
	if err != nil {
		return nil, err
	}
	out := &pb.ListBotInstancesResponse{}
	for _, b := range bis {
		var claims []byte
		if len(b.JoinClaims) > 0 {
			if claims, err = json.Marshal(b.JoinClaims); err != nil {
				return nil, err
			}
		}
		out.Instances = append(out.Instances, &pb.BotInstance{BotName: b.BotName, InstanceId: b.ID, JoinMethod: b.JoinMethod, Hostname: b.Hostname,
			JoinedUnix: b.Joined.Unix(), LastSeenUnix: b.LastSeen.Unix(), Generation: b.Generation, Locked: b.Locked,
			JoinToken: b.JoinToken, JoinClaimsJson: string(claims)})
	}
	return out, nil
}

func (g *handlers) CreateToken(ctx context.Context, req *pb.CreateTokenRequest) (*pb.CreateTokenResponse, error) {
	a := actorOf(ctx)
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

func (g *handlers) CreateLock(ctx context.Context, req *pb.CreateLockRequest) (*pb.Resource, error) {
	a := actorOf(ctx)
	target := types.LockTarget{User: req.GetUser(), Role: req.GetRole(), Bot: req.GetBot(), BotInstanceID: req.GetBotInstanceId(), Login: req.GetLogin(),
		AccessRequest: req.GetAccessRequest()}
	var expires *time.Time
	switch {
	case req.GetExpiresUnix() != 0:
		t := time.Unix(req.GetExpiresUnix(), 0).UTC()
		expires = &t
	case req.GetTtlSeconds() != 0:
		t := g.s.Now().Add(time.Duration(req.GetTtlSeconds()) * time.Second).UTC()
		expires = &t
	}
	l, err := g.s.CreateLock(ctx, a, target, req.GetMessage(), expires)
	if err != nil {
		return nil, err
	}
	return toPBResource(l)
}

func (g *handlers) SignUser(ctx context.Context, req *pb.SignUserRequest) (*pb.Certs, error) {
	pub, err := auth.ParsePublicKey(req.GetPublicKeyDer())
	if err != nil {
		return nil, err
	}
	cert, err := g.s.SignUser(ctx, actorOf(ctx), req.GetUser(), pub, time.Duration(req.GetTtlSeconds())*time.Second, req.GetKubeCluster(), req.GetAccessRequestIds())
	if err != nil {
		return nil, err
	}
	return g.certs(cert, "", 0), nil
}

func (g *handlers) certs(cert []byte, instance string, gen uint64) *pb.Certs {
	return &pb.Certs{TlsCertPem: cert, HostCaPems: [][]byte{g.s.HostCA().CertPEM}, UserCaPems: [][]byte{g.s.UserCA().CertPEM},
		ClusterName: g.s.ClusterName(), BotInstanceId: instance, Generation: gen}
}

func (g *handlers) JoinBot(ctx context.Context, req *pb.JoinBotRequest) (*pb.Certs, error) {
	a := actorOf(ctx)
	pub, err := auth.ParsePublicKey(req.GetPublicKeyDer())
	if err != nil {
		return nil, err
	}
	ttl := time.Duration(req.GetTtlSeconds()) * time.Second
	var res *auth.CertsResult
	if req.GetJoinMethod() == types.JoinMethodBoundKeypair {
		res, err = g.s.JoinBotBoundKeypair(ctx, a.Addr, req.GetToken(), req.GetHostname(), pub, ttl, auth.BoundKeypairProof{
			PublicKeyDER: req.GetBoundPublicKeyDer(), Challenge: req.GetChallenge(), Signature: req.GetChallengeSignature(),
			RegistrationSecret: req.GetRegistrationSecret()})
	} else {
		res, err = g.s.JoinBot(ctx, a.Addr, req.GetJoinMethod(), req.GetToken(), req.GetHostname(), pub, ttl)
	}
	if err != nil {
		return nil, err
	}
	return g.certs(res.CertPEM, res.InstanceID, res.Generation), nil
}

func (g *handlers) BoundKeypairChallenge(ctx context.Context, req *pb.BoundKeypairChallengeRequest) (*pb.BoundKeypairChallengeResponse, error) {
	c, exp, err := g.s.BoundKeypairChallenge(ctx, actorOf(ctx).Addr, req.GetTokenName())
	if err != nil {
		return nil, err
	}
	return &pb.BoundKeypairChallengeResponse{Challenge: c, ExpiresUnix: exp.Unix()}, nil
}

func (g *handlers) RenewBot(ctx context.Context, req *pb.RenewBotRequest) (*pb.Certs, error) {
	pub, err := auth.ParsePublicKey(req.GetPublicKeyDer())
	if err != nil {
		return nil, err
	}
	res, err := g.s.RenewBot(ctx, actorOf(ctx), pub, time.Duration(req.GetTtlSeconds())*time.Second)
	if err != nil {
		return nil, err
	}
	return g.certs(res.CertPEM, res.InstanceID, res.Generation), nil
}

func (g *handlers) GenerateBotCerts(ctx context.Context, req *pb.GenerateBotCertsRequest) (*pb.Certs, error) {
	pub, err := auth.ParsePublicKey(req.GetPublicKeyDer())
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

func (g *handlers) HeartbeatKubeClusters(ctx context.Context, req *pb.HeartbeatKubeClustersRequest) (*pb.HeartbeatKubeClustersResponse, error) {
	kcs := make([]*types.KubeCluster, 0, len(req.GetClusters()))
	for _, c := range req.GetClusters() {
		kcs = append(kcs, types.NewKubeCluster(c.GetName(), c.GetService(), c.GetLabels()))
	}
	return &pb.HeartbeatKubeClustersResponse{}, g.s.HeartbeatKubeClusters(ctx, actorOf(ctx), kcs, time.Duration(req.GetTtlSeconds())*time.Second)
}

func (g *handlers) ListKubeClusters(ctx context.Context, _ *pb.ListKubeClustersRequest) (*pb.ListKubeClustersResponse, error) {
	views, err := g.s.KubeClustersFor(actorOf(ctx).Identity)
	if err != nil {
		return nil, err
	}
	out := &pb.ListKubeClustersResponse{}
	for _, v := range views {
		kc := v.Cluster
		out.Clusters = append(out.Clusters, &pb.KubeCluster{Name: kc.GetName(), Labels: kc.Metadata.Labels, Service: kc.Spec.Service})
		out.Accessible = append(out.Accessible, v.Reachable)
	}
	return out, nil
}

func (g *handlers) SearchAudit(ctx context.Context, req *pb.SearchAuditRequest) (*pb.SearchAuditResponse, error) {
	f := audit.Filter{User: req.GetUser(), Type: req.GetType(), Limit: int(req.GetLimit())}
	if req.GetSinceUnix() != 0 {
		f.Since = time.Unix(req.GetSinceUnix(), 0)
	}
	events, err := g.s.SearchAudit(ctx, f)
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

func (g *handlers) ListRecordings(ctx context.Context, req *pb.ListRecordingsRequest) (*pb.ListRecordingsResponse, error) {
	f := auth.RecordingFilter{User: req.GetUser(), Cluster: req.GetCluster(), Namespace: req.GetNamespace(), Pod: req.GetPod(),
		Limit: int(req.GetLimit())}
	if req.GetFromUnix() != 0 {
		f.From = time.Unix(req.GetFromUnix(), 0)
	}
	if req.GetToUnix() != 0 {
		f.To = time.Unix(req.GetToUnix(), 0)
	}
	list, err := g.s.ListRecordings(ctx, f)
	if err != nil {
		return nil, err
	}
	out := &pb.ListRecordingsResponse{}
	for _, i := range list {
		data, err := json.Marshal(i)
		if err != nil {
			return nil, err
		}
		out.Recordings = append(out.Recordings, &pb.RecordingInfo{Json: data})
	}
	return out, nil
}

// recordingChunk is the most of a recording one GetRecording answer holds.
const recordingChunk = 1 << 20

func (g *handlers) GetRecording(ctx context.Context, req *pb.GetRecordingRequest) (*pb.RecordingChunk, error) {
	if req.GetOffset() < 0 {
		return nil, errs.BadParameterf("offset must not be negative")
	}
	info, rc, err := g.s.OpenRecording(ctx, req.GetSessionId())
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if off := req.GetOffset(); off > 0 {
		if sk, ok := rc.(io.Seeker); ok {
			if _, err := sk.Seek(off, io.SeekStart); err != nil {
				return nil, fmt.Errorf("reading the recording: %w", err)
			}
		} else if _, err := io.CopyN(io.Discard, rc, off); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("reading the recording: %w", err)
		}
	}
	buf := make([]byte, recordingChunk)
	n, err := io.ReadFull(rc, buf)
	eof := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
	if err != nil && !eof {
		return nil, fmt.Errorf("reading the recording: %w", err)
	}
	data, err := json.Marshal(info)
	if err != nil {
		return nil, err
	}
	return &pb.RecordingChunk{Info: &pb.RecordingInfo{Json: data}, Data: buf[:n], Eof: eof}, nil
}

func (g *handlers) ListActiveSessions(ctx context.Context, _ *pb.ListActiveSessionsRequest) (*pb.ListActiveSessionsResponse, error) {
	out := &pb.ListActiveSessionsResponse{}
	for _, m := range g.s.ActiveSessions(ctx, actorOf(ctx)) {
		data, err := json.Marshal(m)
		if err != nil {
			return nil, err
		}
		out.Sessions = append(out.Sessions, &pb.RecordingInfo{Json: data})
	}
	return out, nil
}

func (g *handlers) JoinSession(ctx context.Context, req *pb.JoinSessionRequest) (*pb.JoinSessionResponse, error) {
	data, ended, err := g.s.JoinSession(ctx, actorOf(ctx), req.GetSessionId(), req.GetOffset())
	if err != nil {
		return nil, err
	}
	return &pb.JoinSessionResponse{Data: data, Ended: ended}, nil
}

func (g *handlers) KubeCanI(ctx context.Context, req *pb.KubeCanIRequest) (*pb.KubeCanIResponse, error) {
	res, err := g.s.KubeCanI(ctx, req.GetUser(), req.GetBot(), req.GetCluster(), auth.ResourceAttributes{
		Verb: req.GetVerb(), Resource: req.GetResource(), Namespace: req.GetNamespace(), Name: req.GetName()})
	if err != nil {
		return nil, err
	}
	return &pb.KubeCanIResponse{Allowed: res.Allowed, DeniedBy: res.DeniedBy, Reason: res.Reason, ImpersonatedUser: res.User, ImpersonatedGroups: res.Groups}, nil
}

// JoinHost is unauthenticated (the token is the credential), except that a Kubernetes
// Service calling it with its own valid host certificate and no token renews it.
func (g *handlers) JoinHost(ctx context.Context, req *pb.JoinHostRequest) (*pb.Certs, error) {
	pub, err := auth.ParsePublicKey(req.GetPublicKeyDer())
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
func (g *handlers) Login(ctx context.Context, req *pb.LoginRequest) (*pb.Certs, error) {
	pub, err := auth.ParsePublicKey(req.GetPublicKeyDer())
	if err != nil {
		return nil, err
	}
	cert, err := g.s.Login(ctx, auth.LoginRequest{User: req.GetUser(), Password: req.GetPassword(), OTPCode: req.GetOtpCode(),
		PublicKey: pub, TTL: time.Duration(req.GetTtlSeconds()) * time.Second, Addr: actorOf(ctx).Addr})
	if err != nil {
		return nil, err
	}
	return g.certs(cert, "", 0), nil
}

func (g *handlers) ListProxies(ctx context.Context, _ *pb.ListProxiesRequest) (*pb.ListProxiesResponse, error) {
	ps, err := g.s.Proxies(ctx)
	if err != nil {
		return nil, err
	}
	out := &pb.ListProxiesResponse{}
	for _, p := range ps {
		out.Proxies = append(out.Proxies, &pb.Proxy{Name: p.Name, Addr: p.Addr, Clusters: p.Clusters, ExpiresUnix: p.Expires.Unix()})
	}
	return out, nil
}

func accessRequestPB(ar *types.AccessRequest) (*pb.Resource, error) {
	data, err := json.Marshal(ar)
	if err != nil {
		return nil, err
	}
	return &pb.Resource{Kind: types.KindAccessRequest, Json: data, Revision: ar.Metadata.Revision}, nil
}

func (g *handlers) CreateAccessRequest(ctx context.Context, req *pb.CreateAccessRequestRequest) (*pb.Resource, error) {
	ar, err := g.s.CreateAccessRequest(ctx, actorOf(ctx), auth.CreateAccessRequest{Roles: req.GetRoles(), Resources: req.GetResources(),
		Reason: req.GetReason(), MaxDuration: time.Duration(req.GetMaxDurationSeconds()) * time.Second})
	if err != nil {
		return nil, err
	}
	return accessRequestPB(ar)
}

func (g *handlers) ListAccessRequests(ctx context.Context, req *pb.ListAccessRequestsRequest) (*pb.ListResourcesResponse, error) {
	list, err := g.s.ListAccessRequests(ctx, actorOf(ctx), req.GetState())
	if err != nil {
		return nil, err
	}
	out := &pb.ListResourcesResponse{}
	for _, ar := range list {
		p, err := accessRequestPB(ar)
		if err != nil {
			return nil, err
		}
		out.Resources = append(out.Resources, p)
	}
	return out, nil
}

func (g *handlers) GetAccessRequest(ctx context.Context, req *pb.GetAccessRequestRequest) (*pb.Resource, error) {
	ar, err := g.s.GetAccessRequest(ctx, actorOf(ctx), req.GetId())
	if err != nil {
		return nil, err
	}
	return accessRequestPB(ar)
}

func (g *handlers) DeleteAccessRequest(ctx context.Context, req *pb.GetAccessRequestRequest) (*pb.DeleteResourceResponse, error) {
	return &pb.DeleteResourceResponse{}, g.s.DeleteAccessRequest(ctx, actorOf(ctx), req.GetId())
}

func (g *handlers) ReviewAccessRequest(ctx context.Context, req *pb.ReviewAccessRequestRequest) (*pb.Resource, error) {
	ar, err := g.s.ReviewAccessRequest(ctx, actorOf(ctx), req.GetId(), req.GetApprove(), req.GetReason())
	if err != nil {
		return nil, err
	}
	return accessRequestPB(ar)
}

func (g *handlers) createSSO(ctx context.Context, req *pb.CreateSSOAuthRequestRequest, test bool) (*pb.CreateSSOAuthRequestResponse, error) {
	kind := req.GetKind()
	if kind == "" {
		kind = types.KindOIDC
		if _, err := g.s.GetResource(ctx, types.KindOIDC, req.GetConnector()); errs.IsNotFound(err) {
			if _, gerr := g.s.GetResource(ctx, types.KindGithub, req.GetConnector()); gerr == nil {
				kind = types.KindGithub
			}
		}
	}
	id, u, err := g.s.CreateSSOAuthRequest(ctx, actorOf(ctx), auth.SSOAuthRequest{Kind: kind, Connector: req.GetConnector(),
		PublicKeyDER: req.GetPublicKeyDer(), ClientRedirectURL: req.GetClientRedirectUrl(), SecretHash: req.GetSecretSha256(),
		TTL: time.Duration(req.GetTtlSeconds()) * time.Second, Test: test})
	if err != nil {
		return nil, err
	}
	return &pb.CreateSSOAuthRequestResponse{RequestId: id, AuthUrl: u, Kind: kind}, nil
}

func (g *handlers) CreateSSOAuthRequest(ctx context.Context, req *pb.CreateSSOAuthRequestRequest) (*pb.CreateSSOAuthRequestResponse, error) {
	return g.createSSO(ctx, req, false)
}

func (g *handlers) CreateSSOTestRequest(ctx context.Context, req *pb.CreateSSOAuthRequestRequest) (*pb.CreateSSOAuthRequestResponse, error) {
	if req.GetKind() == "" {
		return nil, errs.BadParameterf("a test names the connector's kind (oidc or github)")
	}
	return g.createSSO(ctx, req, true)
}

func (g *handlers) FinishSSOLogin(ctx context.Context, req *pb.FinishSSOLoginRequest) (*pb.SSOLoginResult, error) {
	res, err := g.s.FinishSSOLogin(ctx, actorOf(ctx).Addr, req.GetRequestId(), req.GetSecret())
	if err != nil {
		return nil, err
	}
	cert := res.CertPEM
	res.CertPEM = nil
	data, err := json.Marshal(res)
	if err != nil {
		return nil, err
	}
	out := &pb.SSOLoginResult{Json: data}
	if cert != nil {
		out.Certs = g.certs(cert, "", 0)
	}
	return out, nil
}

// Package authapi is the Auth API's edge: the gRPC service in front of the Auth Service
// (package auth). It owns the one table of what every method requires (table.go), the
// interceptor that enforces it before any handler runs, the translation between protobuf
// messages and the domain's types, the mapping of error categories to gRPC status codes,
// and the audit of every refused call. The domain methods it calls receive an actor that
// has already been authorised here and keep only their business rules.
package authapi

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"log/slog"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
	"github.com/keyport/keyport/internal/audit"
	"github.com/keyport/keyport/internal/auth"
	"github.com/keyport/keyport/internal/errs"
)

// Config configures the edge.
type Config struct {
	Auth   *auth.Server
	Audit  audit.Emitter
	Logger *slog.Logger
	// Refusals coalesces the audit events of refused calls that carry no verified
	// identity, so that a flood of them cannot flood the log. Nil: one is made.
	Refusals *audit.Coalescer
}

// Edge authorises and serves Auth API calls.
type Edge struct {
	cfg Config
}

// NewServer returns a gRPC server exposing the Auth Service as the Auth API. TLS is the
// caller's business (the listener or the proxy's HTTP/2 handler); the edge reads the
// peer's certificate and verifies it against the user and host CAs itself, so that
// errors can say what is wrong instead of ending in a TLS alert.
func NewServer(cfg Config, opts ...grpc.ServerOption) *grpc.Server {
	e := newEdge(cfg)
	// The edge's interceptors come first: nothing the caller adds runs before them.
	opts = append([]grpc.ServerOption{grpc.ChainUnaryInterceptor(e.unary), grpc.ChainStreamInterceptor(e.stream)}, opts...)
	g := grpc.NewServer(opts...)
	pb.RegisterAuthServiceServer(g, &handlers{s: cfg.Auth})
	return g
}

func newEdge(cfg Config) *Edge {
	if cfg.Audit == nil {
		cfg.Audit = audit.Discard{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Refusals == nil {
		cfg.Refusals = audit.NewCoalescer(audit.CoalescerConfig{Next: cfg.Audit})
	}
	return &Edge{cfg: cfg}
}

type actorKey struct{}

func actorOf(ctx context.Context) auth.Actor {
	a, _ := ctx.Value(actorKey{}).(auth.Actor)
	return a
}

func (e *Edge) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	actor, err := e.authorize(ctx, info.FullMethod, req)
	if err != nil {
		return nil, e.refuse(ctx, info.FullMethod, actor, err)
	}
	resp, err := handler(context.WithValue(ctx, actorKey{}, actor), req)
	if err != nil {
		return nil, e.fail(ctx, info.FullMethod, actor, err)
	}
	return resp, nil
}

func (e *Edge) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx := ss.Context()
	actor, err := e.authorize(ctx, info.FullMethod, nil)
	if err != nil {
		return e.refuse(ctx, info.FullMethod, actor, err)
	}
	if err := handler(srv, &actorStream{ServerStream: ss, ctx: context.WithValue(ctx, actorKey{}, actor)}); err != nil {
		return e.fail(ctx, info.FullMethod, actor, err)
	}
	return nil
}

type actorStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *actorStream) Context() context.Context { return s.ctx }

// authorize applies the method's row. The actor it returns carries the address and,
// when the certificate verified, the identity, also for a refusal (for its audit event).
func (e *Edge) authorize(ctx context.Context, method string, req any) (auth.Actor, error) {
	actor, authErr := e.actorFromContext(ctx)
	row, ok := Table[method]
	if !ok {
		// Deny by default: a method nobody declared is nobody's to call.
		return actor, errs.AccessDeniedf("%s is not in the Auth API's table of methods", method)
	}
	switch row.Access {
	case Public, Credential:
		// The request's own credential is checked by the Auth Service; an identity,
		// if the caller has a valid one, is passed on.
		return actor, nil
	}
	if authErr != nil {
		return actor, authErr
	}
	id := actor.Identity
	if !row.Locked {
		if err := e.cfg.Auth.CheckLock(id); err != nil {
			return actor, err
		}
	}
	switch row.Access {
	case Authenticated:
		return actor, nil
	case Self, SelfOrRules:
		err := row.Self(id, req)
		if err == nil {
			return actor, nil
		}
		if !errors.Is(err, errNotSelf) {
			return actor, err
		}
		if row.Access == Self {
			return actor, errs.AccessDeniedf("access denied: %s requires %s", shortName(method), row.Requires)
		}
	}
	for _, p := range row.Perms(req) {
		if err := e.cfg.Auth.Authorize(actor, p.Kind, p.Verb); err != nil {
			return actor, err
		}
	}
	return actor, nil
}

// actorFromContext verifies the peer's certificate.
func (e *Edge) actorFromContext(ctx context.Context) (auth.Actor, error) {
	var a auth.Actor
	p, ok := peer.FromContext(ctx)
	if !ok {
		return a, errs.NotAuthenticatedf("no peer information")
	}
	if p.Addr != nil {
		a.Addr = p.Addr.String()
	}
	var certs []*x509.Certificate
	if info, ok := p.AuthInfo.(credentials.TLSInfo); ok {
		certs = info.State.PeerCertificates
	}
	if len(certs) == 0 {
		return a, errs.NotAuthenticatedf("this call needs a client certificate (log in with tsh, or use tctl --identity)")
	}
	id, err := e.cfg.Auth.VerifyClientCert(certs[0])
	if err != nil {
		return a, err
	}
	a.Identity = id
	return a, nil
}

// refuse turns the edge's own refusal into a status and audits it.
func (e *Edge) refuse(ctx context.Context, method string, actor auth.Actor, err error) error {
	st := e.toStatus(method, err)
	e.auditDenied(ctx, method, actor, st)
	return st.Err()
}

// fail turns a handler's error into a status. A refusal from a domain method is audited
// here too, except for Credential methods, whose failures the Auth Service records
// itself (bot.join.failure, user.login.failure, host.join.failure).
func (e *Edge) fail(ctx context.Context, method string, actor auth.Actor, err error) error {
	st := e.toStatus(method, err)
	if Table[method].Access != Credential {
		e.auditDenied(ctx, method, actor, st)
	}
	return st.Err()
}

func (e *Edge) auditDenied(ctx context.Context, method string, actor auth.Actor, st *status.Status) {
	if st.Code() != codes.PermissionDenied && st.Code() != codes.Unauthenticated {
		return
	}
	ev := audit.Event{Type: audit.APIDenied, Message: st.Message(),
		Fields: map[string]any{"method": shortName(method), "code": st.Code().String(), "addr": actor.Addr}}
	if id := actor.Identity; id != nil {
		ev.User, ev.Roles, ev.BotName, ev.BotInstanceID = id.Username, id.Roles, id.BotName, id.BotInstanceID
		e.cfg.Audit.Emit(ctx, ev)
		return
	}
	e.cfg.Refusals.Emit(ctx, actor.Addr, ev)
}

// toStatus is the one mapping from errs categories to gRPC status. An internal failure
// reaches the caller as "internal error (ref ID)", and only the log line with the same
// ID holds its cause: causes may name files, keys or peers that are not the caller's
// business.
func (e *Edge) toStatus(method string, err error) *status.Status {
	code := errs.GRPCCode(err)
	if code != codes.Internal {
		return status.New(code, err.Error())
	}
	ref := newRef()
	e.cfg.Logger.Error("Auth API call failed", "method", method, "ref", ref, "error", err)
	return status.New(codes.Internal, "internal error (ref "+ref+")")
}

func newRef() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// shortName is the method's name without its service, as people read it.
func shortName(method string) string {
	for i := len(method) - 1; i >= 0; i-- {
		if method[i] == '/' {
			return method[i+1:]
		}
	}
	return method
}

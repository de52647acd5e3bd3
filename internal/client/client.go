// Package client is the one Auth API client that tctl, tsh, tbot and Keyport's own agents
// share. It dials the Auth Service (directly or through the proxy's one port) with mutual
// TLS, trusting the cluster's host CA, and turns gRPC statuses back into the error
// categories of package errs so that callers can print them as they are.
package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/identityfile"
	"github.com/keyport/keyport/internal/tlsca"
)

// Client is a connection to the Auth API.
type Client struct {
	pb.AuthServiceClient
	conn *grpc.ClientConn
	Addr string
}

// Config says where to connect and how to trust the server.
type Config struct {
	Addr string
	// Identity authenticates the client; nil for unauthenticated calls (Ping, JoinBot).
	Identity *identityfile.Identity
	// RootCAs verifies the server (its certificate must name ServerName); when nil, the
	// identity's host CAs are used.
	RootCAs *x509.CertPool
	// VerifyServer, when set, replaces certificate verification (CA pins at first join).
	VerifyServer func(rawCerts [][]byte) error
	// InsecureSkipVerify skips server verification entirely (--insecure).
	InsecureSkipVerify bool
	// ServerName is the SNI sent to the server (default tlsca.ServerName, which makes a
	// Keyport proxy present its host certificate). A client that verifies the proxy's
	// public https_keypairs certificate against the system roots sends the proxy's host
	// name instead, so that the proxy presents that certificate.
	ServerName  string
	DialTimeout time.Duration
}

// New connects lazily: the first call dials.
func New(cfg Config) (*Client, error) {
	if cfg.Addr == "" {
		return nil, errs.BadParameterf("no auth server address given")
	}
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		return nil, errs.BadParameterf("auth server address %q is not host:port", cfg.Addr)
	}
	if cfg.ServerName == "" {
		cfg.ServerName = tlsca.ServerName
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: cfg.ServerName, NextProtos: []string{"h2"}}
	if cfg.Identity != nil {
		kp, err := cfg.Identity.TLSCertificate()
		if err != nil {
			return nil, fmt.Errorf("loading client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{kp}
	}
	switch {
	case cfg.InsecureSkipVerify:
		tc.InsecureSkipVerify = true
	case cfg.VerifyServer != nil:
		tc.InsecureSkipVerify = true
		tc.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error { return cfg.VerifyServer(raw) }
	case cfg.RootCAs != nil:
		tc.RootCAs = cfg.RootCAs
	case cfg.Identity != nil:
		pool, err := cfg.Identity.HostCAPool()
		if err != nil {
			return nil, err
		}
		tc.RootCAs = pool
	default:
		return nil, errs.BadParameterf("no way to verify the server: give an identity, CA pins, or --insecure")
	}
	conn, err := grpc.NewClient("passthrough:///"+cfg.Addr,
		grpc.WithTransportCredentials(credentials.NewTLS(tc)),
		grpc.WithChainUnaryInterceptor(errorInterceptor(cfg.Addr)),
	)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", cfg.Addr, err)
	}
	return &Client{AuthServiceClient: pb.NewAuthServiceClient(conn), conn: conn, Addr: cfg.Addr}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// errorInterceptor turns gRPC statuses into errs categories with the server's message,
// and connection failures into one clear line.
func errorInterceptor(addr string) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
		}
		err := invoker(ctx, method, req, reply, cc, opts...)
		return FromStatus(addr, err)
	}
}

// FromStatus converts an error from a gRPC call.
func FromStatus(addr string, err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	switch st.Code() {
	case codes.Unavailable:
		msg := st.Message()
		var x509err x509.UnknownAuthorityError
		if errors.As(err, &x509err) {
			msg = "the server's certificate is not signed by a trusted CA"
		}
		return errs.New(errs.Unknown, "cannot reach the Keyport auth server at %s: %s", addr, msg)
	case codes.DeadlineExceeded:
		return errs.New(errs.Unknown, "the Keyport auth server at %s did not answer in time", addr)
	}
	kind := errs.FromGRPCCode(st.Code())
	return &errs.Error{Kind: kind, Msg: st.Message()}
}

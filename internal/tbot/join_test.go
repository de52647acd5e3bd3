package tbot

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
	"github.com/keyport/keyport/internal/clock"
	"github.com/keyport/keyport/internal/tbot/config"
	"github.com/keyport/keyport/internal/tlsca"
)

// fakeAuth is an Auth API that answers Ping and records what JoinBot was sent, then
// refuses it: enough to see what tbot puts on the wire before it joins.
type fakeAuth struct {
	pb.UnimplementedAuthServiceServer
	pin string

	mu   sync.Mutex
	sni  []string
	join *pb.JoinBotRequest
}

func (f *fakeAuth) Ping(context.Context, *pb.PingRequest) (*pb.PingResponse, error) {
	return &pb.PingResponse{ClusterName: "keyport.example.com", HostCaPin: f.pin}, nil
}

func (f *fakeAuth) JoinBot(_ context.Context, req *pb.JoinBotRequest) (*pb.Certs, error) {
	f.mu.Lock()
	f.join = req
	f.mu.Unlock()
	return nil, status.Error(codes.PermissionDenied, "fake: join recorded")
}

func (f *fakeAuth) seen() ([]string, *pb.JoinBotRequest) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.sni...), f.join
}

// startFakeAuth serves fakeAuth over TLS with a leaf for localhost and Keyport's internal
// name, followed by its CA, as a Keyport proxy presents them.
func startFakeAuth(t *testing.T) (*fakeAuth, *tlsca.CA, string) {
	t.Helper()
	now := time.Now()
	ca, err := tlsca.NewCA("keyport.example.com", "host", tlsca.AlgECDSAP256, clock.Rand, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := tlsca.GenerateKey(tlsca.AlgECDSAP256, clock.Rand)
	leafPEM, err := ca.Issue(clock.Rand, now, tlsca.CertRequest{PublicKey: key.Public(), NotAfter: now.Add(time.Hour),
		Identity: tlsca.Identity{Username: "proxy", SystemRole: "proxy"}, DNSNames: []string{tlsca.ServerName, "localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	kp, err := tlsca.KeyPair(append(append([]byte{}, leafPEM...), ca.CertPEM...), key)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeAuth{pin: tlsca.Pin(ca.Cert)}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		f.mu.Lock()
		f.sni = append(f.sni, hello.ServerName)
		f.mu.Unlock()
		return &kp, nil
	}}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(tc)))
	pb.RegisterAuthServiceServer(srv, f)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return f, ca, lis.Addr().String()
}

func joinConfig(t *testing.T, proxy, method, token string, pins []string) *config.Config {
	t.Helper()
	c := &config.Config{Version: config.Version, ProxyServer: proxy, Oneshot: true,
		Onboarding: config.Onboarding{JoinMethod: method, Token: token, CAPins: pins}, Storage: &config.Destination{Type: config.DestMemory},
		Outputs: []config.Output{{Type: config.OutputIdentity, Destination: &config.Destination{Type: config.DestMemory}}}}
	if err := c.CheckAndSetDefaults(); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestKubernetesJoinRequest: with join method kubernetes, tbot sends the token's name and
// the service account token read from its file as "<name>\n<JWT>", with join_method
// kubernetes, and only after the CA pin check (SNI: Keyport's internal name).
func TestKubernetesJoinRequest(t *testing.T) {
	f, ca, addr := startFakeAuth(t)
	dir := t.TempDir()
	jwtPath := filepath.Join(dir, "token")
	const jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"
	if err := os.WriteFile(jwtPath, []byte(jwt+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := New(Options{Config: joinConfig(t, addr, config.JoinKubernetes, "k8s-join", []string{tlsca.Pin(ca.Cert)}), KubernetesTokenPath: jwtPath, Hostname: "pod-0"})
	if err != nil {
		t.Fatal(err)
	}
	err = b.OneShot(context.Background())
	if err == nil || !strings.Contains(err.Error(), "fake: join recorded") {
		t.Fatalf("OneShot = %v", err)
	}
	sni, req := f.seen()
	if req == nil {
		t.Fatal("JoinBot was not called")
	}
	if req.GetJoinMethod() != "kubernetes" || req.GetToken() != "k8s-join\n"+jwt || req.GetHostname() != "pod-0" || len(req.GetPublicKeyDer()) == 0 {
		t.Fatalf("JoinBot request: method %q token %q hostname %q", req.GetJoinMethod(), req.GetToken(), req.GetHostname())
	}
	for _, s := range sni {
		if s != tlsca.ServerName {
			t.Errorf("SNI %q with ca_pins, want %q (the host certificate carries the pinned CA)", s, tlsca.ServerName)
		}
	}

	// A missing token file is a clear error that names where to put it.
	b, err = New(Options{Config: joinConfig(t, addr, config.JoinKubernetes, "k8s-join", []string{tlsca.Pin(ca.Cert)}), KubernetesTokenPath: filepath.Join(dir, "missing")})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.OneShot(context.Background()); err == nil || !strings.Contains(err.Error(), "reading the pod's service account token") || !strings.Contains(err.Error(), KubernetesTokenPathEnv) {
		t.Fatalf("missing token file: %v", err)
	}
	// And so is a missing token name.
	b, err = New(Options{Config: joinConfig(t, addr, config.JoinKubernetes, "", []string{tlsca.Pin(ca.Cert)}), KubernetesTokenPath: jwtPath})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.OneShot(context.Background()); err == nil || !strings.Contains(err.Error(), "set onboarding.token") {
		t.Fatalf("no token name: %v", err)
	}
}

// TestNoPinsSendsProxyHostName: without ca_pins, tbot verifies the proxy against the
// system roots, so it must ask (by SNI) for the certificate issued for the name it
// dialled — the proxy's public certificate — rather than Keyport's internal name.
func TestNoPinsSendsProxyHostName(t *testing.T) {
	f, ca, addr := startFakeAuth(t)
	_, port, _ := net.SplitHostPort(addr)
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	b, err := New(Options{Config: joinConfig(t, net.JoinHostPort("localhost", port), config.JoinToken, "secret", nil), SystemRoots: roots})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.OneShot(context.Background()); err == nil || !strings.Contains(err.Error(), "fake: join recorded") {
		t.Fatalf("OneShot = %v", err)
	}
	sni, req := f.seen()
	if req == nil || req.GetToken() != "secret" || req.GetJoinMethod() != "token" {
		t.Fatalf("JoinBot request = %v", req)
	}
	if len(sni) == 0 {
		t.Fatal("no handshake seen")
	}
	for _, s := range sni {
		if s != "localhost" {
			t.Errorf("SNI %q without pins, want the proxy's host name localhost", s)
		}
	}
}

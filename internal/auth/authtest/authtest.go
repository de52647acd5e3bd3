// Package authtest starts real Auth Servers for tests of the packages around the Auth
// Service (its edge, the proxy): SQLite in a temporary directory, a fake clock and an
// audit recorder, and mints client certificates for any identity.
package authtest

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"path/filepath"
	"testing"
	"time"

	"github.com/keyport/keyport/internal/audit"
	"github.com/keyport/keyport/internal/auth"
	"github.com/keyport/keyport/internal/backend/sqlite"
	"github.com/keyport/keyport/internal/clock"
	"github.com/keyport/keyport/internal/tlsca"
)

// Env is a running Auth Server and what a test needs around it.
type Env struct {
	Auth  *auth.Server
	Clock *clock.Fake
	Audit *audit.Recorder
}

// New starts an Auth Server for cluster keyport.example.com on a fresh SQLite backend,
// with a fake clock at 2026-03-01 10:00 UTC and an audit recorder.
func New(t testing.TB) *Env {
	t.Helper()
	ctx := context.Background()
	clk := clock.NewFake(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC))
	b, err := sqlite.New(ctx, sqlite.Config{Path: filepath.Join(t.TempDir(), "db"), Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	rec := &audit.Recorder{}
	s, err := auth.New(ctx, auth.Config{ClusterName: "keyport.example.com", Backend: b, Clock: clk, Audit: rec})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return &Env{Auth: s, Clock: clk, Audit: rec}
}

// Cert returns a client certificate for id, valid for an hour from the fake clock's now:
// from the host CA when id has a system role, from the user CA otherwise.
func (e *Env) Cert(t testing.TB, id tlsca.Identity) tls.Certificate {
	t.Helper()
	key, err := tlsca.GenerateKey(tlsca.AlgECDSAP256, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca := e.Auth.UserCA()
	if id.SystemRole != "" {
		ca = e.Auth.HostCA()
	}
	now := e.Clock.Now()
	certPEM, err := ca.Issue(rand.Reader, now, tlsca.CertRequest{PublicKey: key.Public(), Identity: id, NotAfter: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	c, err := tlsca.KeyPair(certPEM, key)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

package tbot

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyport/keyport/internal/clock"
	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/tbot/config"
	"github.com/keyport/keyport/internal/tlsca"
)

func TestJitterAndBackoff(t *testing.T) {
	b := &Bot{cfg: &config.Config{RenewalInterval: 20 * time.Minute}}
	for _, tt := range []struct {
		r    float64
		want time.Duration
	}{{0, 18 * time.Minute}, {0.5, 20 * time.Minute}, {0.999999, 22 * time.Minute}} {
		b.jitter = func() float64 { return tt.r }
		if got := b.jittered(20 * time.Minute); got.Round(time.Second) != tt.want {
			t.Errorf("jittered with %v = %s, want %s", tt.r, got, tt.want)
		}
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}
	for i, w := range want {
		if got := b.backoff(i); got != w {
			t.Errorf("backoff(%d) = %s, want %s", i, got, w)
		}
	}
	if got := b.backoff(30); got != 5*time.Minute {
		t.Errorf("backoff cap = %s, want 5m (a quarter of the interval)", got)
	}
}

func TestResolveToken(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	if err := os.WriteFile(file, []byte("  from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ in, want, err string }{
		{"abc123", "abc123", ""},
		{file, "from-file", ""},
		{"", "", "no join token"},
		{filepath.Join(dir, "missing"), "", "does not exist"},
	}
	for _, tt := range tests {
		got, err := resolveToken(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("resolveToken(%q) err = %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("resolveToken(%q) = %q, %v", tt.in, got, err)
		}
	}
}

// serverChain returns the raw chain a Keyport server presents: a leaf issued by a host
// CA, then that CA.
func serverChain(t *testing.T) (raw [][]byte, ca *tlsca.CA) {
	t.Helper()
	now := time.Now()
	ca, err := tlsca.NewCA("keyport.example.com", "host", tlsca.AlgECDSAP256, clock.Rand, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := tlsca.GenerateKey(tlsca.AlgECDSAP256, clock.Rand)
	leafPEM, err := ca.Issue(clock.Rand, now, tlsca.CertRequest{PublicKey: key.Public(), NotAfter: now.Add(time.Hour),
		Identity: tlsca.Identity{Username: "proxy", SystemRole: "proxy"}, DNSNames: []string{tlsca.ServerName}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := tlsca.ParseCertPEM(leafPEM)
	return [][]byte{leaf.Raw, ca.Cert.Raw}, ca
}

func TestFirstContactVerify(t *testing.T) {
	raw, ca := serverChain(t)
	other, otherCA := serverChain(t)
	pin := tlsca.Pin(ca.Cert)
	tests := []struct {
		name  string
		pins  []string
		raw   [][]byte
		roots *x509.CertPool
		want  string
	}{
		{"pin matches", []string{pin}, raw, nil, ""},
		{"one of several pins", []string{tlsca.Pin(otherCA.Cert), strings.ToUpper(pin)}, raw, nil, ""},
		{"pin mismatch", []string{pin}, other, nil, "matches none of the configured ca_pins"},
		{"no CA presented", []string{pin}, raw[:1], nil, "presented no CA certificate"},
		{"leaf from another CA", []string{pin}, [][]byte{other[0], raw[1]}, nil, "its certificate was not issued by that CA"},
		{"no pins, not publicly trusted", nil, raw, x509.NewCertPool(), "does not verify against the system roots"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFirstContact(&config.Config{ProxyServer: "127.0.0.1:3080", Onboarding: config.Onboarding{CAPins: tt.pins}}, tt.roots)
			err := f.verify(tt.raw)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if !errors.Is(f.explain(os.ErrDeadlineExceeded), err) {
				t.Fatal("explain does not return the trust check's reason")
			}
		})
	}
	// Without pins, a chain the roots trust passes.
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	f := newFirstContact(&config.Config{ProxyServer: "127.0.0.1:3080"}, pool)
	if err := f.verify(raw); err != nil {
		t.Fatalf("trusted by roots: %v", err)
	}
}

func TestTransient(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{errs.New(errs.Unknown, "cannot reach the Keyport auth server at x: connection refused"), true},
		{errs.New(errs.Unknown, "the Keyport auth server at x did not answer in time"), true},
		{errs.LimitExceededf("too many join attempts"), true},
		{errs.AccessDeniedf("the join token has already been used"), false},
		{errs.AccessDeniedf("refusing x before sending the join token: cannot reach"), false},
		{errors.New("saving the bot identity: permission denied"), false},
	}
	for _, tt := range tests {
		if got := transient(tt.err); got != tt.want {
			t.Errorf("transient(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// TestDaemonStartRetries: a daemon that cannot reach the cluster keeps retrying with
// backoff (and stops cleanly when told); one that gets a final answer exits with it.
func TestDaemonStartRetries(t *testing.T) {
	cfg := func(joinMethod string) *config.Config {
		c := &config.Config{Version: config.Version, ProxyServer: "127.0.0.1:1", Insecure: true,
			Onboarding: config.Onboarding{Token: "t", JoinMethod: joinMethod}, Storage: &config.Destination{Type: config.DestMemory},
			Outputs: []config.Output{{Type: config.OutputIdentity, Destination: &config.Destination{Type: config.DestMemory}}}}
		if err := c.CheckAndSetDefaults(); err != nil {
			t.Fatal(err)
		}
		return c
	}
	clk := clock.NewFake(time.Now())
	b, err := New(Options{Config: cfg(config.JoinToken), Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	clk.BlockUntil(1) // the first backoff
	clk.Advance(time.Second)
	clk.BlockUntil(1) // and the second
	if st, ok := b.Status(); ok || !strings.Contains(st["identity"].Reason, "cannot reach") {
		t.Fatalf("status = %+v", st)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}

	// A kubernetes join without the pod's token file cannot succeed by retrying.
	b, err = New(Options{Config: cfg(config.JoinKubernetes), Clock: clk, KubernetesTokenPath: filepath.Join(t.TempDir(), "no-token")})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "reading the pod's service account token") {
		t.Fatalf("Run = %v", err)
	}
}

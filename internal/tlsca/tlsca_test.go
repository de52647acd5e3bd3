package tlsca

import (
	"crypto/rand"
	"crypto/x509"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keyport/keyport/internal/errs"
)

var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func TestIssueAndVerify(t *testing.T) {
	for _, alg := range []string{AlgECDSAP256, AlgEd25519, AlgRSA2048} {
		t.Run(alg, func(t *testing.T) {
			ca, err := NewCA("keyport.example.com", "user", alg, rand.Reader, t0, 24*time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if got := KeyAlgorithm(ca.Signer.Public()); got != alg {
				t.Fatalf("algorithm %q", got)
			}
			key, err := GenerateKey(AlgECDSAP256, rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			want := Identity{
				Username: "bot-example", Roles: []string{"bot-example", "example-role"},
				Traits:      map[string][]string{"kubernetes_groups": {"editor"}},
				KubeCluster: "example-k8s-cluster", BotName: "example", BotInstanceID: "i-1",
				Renewable: true, Generation: 3,
			}
			pemCert, err := ca.Issue(rand.Reader, t0, CertRequest{PublicKey: key.Public(), Identity: want, NotAfter: t0.Add(time.Hour)})
			if err != nil {
				t.Fatal(err)
			}
			cert, err := ParseCertPEM(pemCert)
			if err != nil {
				t.Fatal(err)
			}
			pool := x509.NewCertPool()
			pool.AddCert(ca.Cert)
			got, err := Verify(pool, cert, t0.Add(time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			if got.Username != want.Username || got.Generation != 3 || !got.Renewable || got.KubeCluster != want.KubeCluster ||
				got.Traits["kubernetes_groups"][0] != "editor" || len(got.Roles) != 2 || !got.Expires.Equal(t0.Add(time.Hour)) {
				t.Fatalf("identity = %+v", got)
			}
		})
	}
}

func TestVerifyRefusals(t *testing.T) {
	ca, _ := NewCA("c", "user", "", rand.Reader, t0, 24*time.Hour)
	foreign, _ := NewCA("c", "user", "", rand.Reader, t0, 24*time.Hour)
	key, _ := GenerateKey("", rand.Reader)
	issue := func(ca *CA) *x509.Certificate {
		p, err := ca.Issue(rand.Reader, t0, CertRequest{PublicKey: key.Public(), Identity: Identity{Username: "alice"}, NotAfter: t0.Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		c, _ := ParseCertPEM(p)
		return c
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	tests := []struct {
		name string
		cert *x509.Certificate
		now  time.Time
		want string
	}{
		{"expired", issue(ca), t0.Add(2 * time.Hour), `certificate for "alice" expired at 2026-11-01T13:00:00Z`},
		{"not yet valid", issue(ca), t0.Add(-time.Hour), `certificate for "alice" is not valid until`},
		{"foreign CA", issue(foreign), t0, `certificate for "alice" was not issued by this cluster's user CA`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Verify(pool, tt.cert, tt.now)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errs.Is(err, errs.NotAuthenticated) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestPin(t *testing.T) {
	ca, _ := NewCA("c", "host", "", rand.Reader, t0, time.Hour)
	pin := Pin(ca.Cert)
	if !regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).MatchString(pin) {
		t.Fatalf("pin %q", pin)
	}
	if err := CheckPins(ca.Cert, []string{"sha256:00", strings.ToUpper(pin)}); err != nil {
		t.Fatal(err)
	}
	if err := CheckPins(ca.Cert, []string{"sha256:00"}); !errs.IsAccessDenied(err) {
		t.Fatalf("err = %v", err)
	}
}

func TestNoIdentity(t *testing.T) {
	if _, err := FromCertificate(&x509.Certificate{}); !errs.Is(err, errs.NotAuthenticated) {
		t.Fatalf("err = %v", err)
	}
}

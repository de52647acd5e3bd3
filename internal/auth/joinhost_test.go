package auth

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/keyport/keyport/internal/clock"
	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/tlsca"
	"github.com/keyport/keyport/internal/types"
)

func TestJoinHost(t *testing.T) {
	ctx := context.Background()
	s, clk := newTestServer(t, Config{})
	key, _ := tlsca.GenerateKey(tlsca.AlgECDSAP256, clock.Rand)
	pub := key.Public()
	kubeToken := func(ttl time.Duration) string {
		secret, _, err := s.CreateToken(ctx, Actor{}, types.TokenRoleKube, "", types.JoinMethodToken, "", nil, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return secret
	}
	botToken, _, err := s.CreateBot(ctx, Actor{}, types.NewBot("b", "access"), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	good, used, short, forBadName := kubeToken(time.Hour), kubeToken(time.Hour), kubeToken(time.Minute), kubeToken(time.Hour)
	anon := Actor{Addr: "10.0.0.1:1000"}
	if _, err := s.JoinHost(ctx, anon, used, "", "", "agent-0", pub); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Minute)

	tests := []struct {
		name, token, method, role, host string
		want                            string // "" means success
	}{
		{"no token", "", "", "", "agent-1", "no join token given"},
		{"wrong token", strings.Repeat("ab", 32), "", "", "agent-1", "the join token is not valid"},
		{"used token", used, "", "", "agent-1", "already been used; create a new one with `tctl tokens add --type=kube`"},
		{"expired token", short, "", "", "agent-1", "the join token expired at"},
		{"bot token", botToken, "", "", "agent-1", "the join token is not a Kube token"},
		{"other method", good, "github", "", "agent-1", `join method "github" is not supported for Kubernetes Services (want token or kubernetes)`},
		{"kubernetes without a service account token", good, "kubernetes", "", "agent-1", "join method kubernetes needs the token's name"},
		{"other role", good, "", "proxy", "agent-1", `hosts may join only as role "kube"`},
		{"no name", good, "", "", "", "must give its name"},
		{"bad name", forBadName, "", "", "agent 1/x", "only letters, digits"},
		{"joins", good, "token", "kube", "agent-1", ""},
		{"once", good, "token", "kube", "agent-2", "already been used"},
		// A refused name did not spend the token.
		{"bad name left the token", forBadName, "", "", "agent-3", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			certPEM, err := s.JoinHost(ctx, anon, tt.token, tt.method, tt.role, tt.host, pub)
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("err = %v, want %q", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			cert, _ := tlsca.ParseCertPEM(certPEM)
			_, host := s.Pools()
			id, err := tlsca.Verify(host, cert, clk.Now())
			if err != nil || id.Username != tt.host || id.SystemRole != SystemKube {
				t.Fatalf("identity %+v %v", id, err)
			}
		})
	}

	t.Run("renewal with the host certificate", func(t *testing.T) {
		id := &tlsca.Identity{Username: "agent-1", SystemRole: SystemKube}
		certPEM, err := s.JoinHost(ctx, Actor{Identity: id, Addr: anon.Addr}, "", "token", "kube", "ignored", pub)
		if err != nil {
			t.Fatal(err)
		}
		cert, _ := tlsca.ParseCertPEM(certPEM)
		got, _ := tlsca.FromCertificate(cert)
		if got.Username != "agent-1" || got.SystemRole != SystemKube || cert.NotAfter.Sub(clk.Now()) < HostCertTTL-time.Minute {
			t.Fatalf("renewed %+v until %s", got, cert.NotAfter)
		}
		// Other certificates cannot renew into a kube host certificate.
		for _, other := range []*tlsca.Identity{{Username: "alice"}, {Username: "p", SystemRole: SystemProxy}} {
			if _, err := s.JoinHost(ctx, Actor{Identity: other}, "", "", "", "agent-1", pub); !errs.IsAccessDenied(err) {
				t.Errorf("%+v renewed: %v", other, err)
			}
		}
	})
}

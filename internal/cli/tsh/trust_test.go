package tsh

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/keyport/keyport/internal/clock"
	"github.com/keyport/keyport/internal/tlsca"
)

// chain is what a Keyport proxy presents: its leaf (for tlsca.ServerName) then the host CA.
func chain(t *testing.T, ca *tlsca.CA) [][]byte {
	t.Helper()
	now := time.Now()
	key, err := tlsca.GenerateKey(tlsca.AlgECDSAP256, clock.Rand)
	if err != nil {
		t.Fatal(err)
	}
	leafPEM, err := ca.Issue(clock.Rand, now, tlsca.CertRequest{PublicKey: key.Public(), Identity: tlsca.Identity{Username: "proxy", SystemRole: "proxy"},
		NotAfter: now.Add(time.Hour), DNSNames: []string{tlsca.ServerName}})
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := tlsca.ParseCertPEM(leafPEM)
	if err != nil {
		t.Fatal(err)
	}
	return [][]byte{leaf.Raw, ca.Cert.Raw}
}

func newCA(t *testing.T) *tlsca.CA {
	t.Helper()
	ca, err := tlsca.NewCA("keyport.example.com", "host", tlsca.AlgECDSAP256, clock.Rand, time.Now().Add(-time.Minute), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func TestPinCheck(t *testing.T) {
	good, other := newCA(t), newCA(t)
	goodChain := chain(t, good)
	tests := []struct {
		name    string
		check   *pinCheck
		raw     [][]byte
		wantErr string
	}{
		{"first use captures", &pinCheck{capture: true}, goodChain, ""},
		{"trusted pin", &pinCheck{pins: []string{tlsca.Pin(good.Cert)}}, goodChain, ""},
		{"another CA", &pinCheck{pins: []string{tlsca.Pin(other.Cert)}}, goodChain, "its host CA has pin " + tlsca.Pin(good.Cert) + ", but the pin trusted for it is " + tlsca.Pin(other.Cert)},
		{"leaf of another CA with the trusted CA attached", &pinCheck{pins: []string{tlsca.Pin(good.Cert)}}, [][]byte{chain(t, other)[0], good.Cert.Raw}, "presented no Keyport host CA that issued its certificate"},
		{"no CA in the chain", &pinCheck{capture: true}, goodChain[:1], "presented no Keyport host CA"},
		{"nothing", &pinCheck{capture: true}, nil, "presented no certificate"},
		{"garbage", &pinCheck{capture: true}, [][]byte{[]byte("x")}, "unreadable certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.check.addr = "proxy:3080"
			err := tt.check.verify(tt.raw)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if tt.check.caPin() != tlsca.Pin(good.Cert) {
					t.Errorf("captured pin %s", tt.check.caPin())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got %v, want %q", err, tt.wantErr)
			}
		})
	}
	// Once trusted at first use, a later handshake must present the same CA.
	c := &pinCheck{capture: true, addr: "p"}
	if err := c.verify(goodChain); err != nil {
		t.Fatal(err)
	}
	c.trust(c.caPin())
	if err := c.verify(chain(t, other)); err == nil {
		t.Error("a different CA was accepted after first use")
	}
}

func TestPrompterSharesOneBuffer(t *testing.T) {
	var out bytes.Buffer
	p := newPrompter(strings.NewReader("y\n  pass word  \n123 456\n"), &out)
	a, err := p.Line("Trust? ", "answer")
	if err != nil || a != "y" {
		t.Fatalf("%q %v", a, err)
	}
	pw, err := p.Password("Password: ", "password")
	if err != nil || pw != "  pass word  " {
		t.Fatalf("password %q %v", pw, err)
	}
	code, err := p.Line("Code: ", "OTP code")
	if err != nil || code != "123 456" {
		t.Fatalf("code %q %v", code, err)
	}
	if _, err := p.Line("More: ", "OTP code"); err == nil || !strings.Contains(err.Error(), "no OTP code given on standard input") {
		t.Fatalf("at EOF: %v", err)
	}
	if !strings.Contains(out.String(), "Trust? ") || !strings.Contains(out.String(), "Password: ") {
		t.Errorf("prompts: %q", out.String())
	}
}

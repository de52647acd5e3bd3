package oidcjoin_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/keyport/keyport/internal/clock"
	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/oidcjoin"
	"github.com/keyport/keyport/internal/testenv/oidcissuer"
)

const aud = "example.keyport.local"

func TestVerify(t *testing.T) {
	is := oidcissuer.Start(t, oidcissuer.Options{})
	v := oidcjoin.New(oidcjoin.Config{Client: is.Client})
	ctx := context.Background()
	good := oidcissuer.GitHubClaims("org/repo", "refs/heads/main", "")
	good["aud"] = aud
	claims, err := v.Verify(ctx, is.URL, aud, is.Sign(good))
	if err != nil {
		t.Fatal(err)
	}
	if claims["repository"] != "org/repo" {
		t.Fatalf("claims: %v", claims)
	}

	// A rotated key: the cached key set lacks it, so it is fetched again, once.
	hits := is.JWKSHits()
	is.Rotate(false)
	if _, err := v.Verify(ctx, is.URL, aud, is.Sign(good)); err != nil {
		t.Fatalf("after rotation: %v", err)
	}
	if got := is.JWKSHits() - hits; got != 1 {
		t.Fatalf("the key set was fetched %d times after a rotation, want 1", got)
	}
	if _, err := v.Verify(ctx, is.URL, aud, is.Sign(good)); err != nil {
		t.Fatal(err)
	}
	if got := is.JWKSHits() - hits; got != 1 {
		t.Fatalf("a known key fetched the key set again (%d fetches)", got)
	}

	now := time.Now()
	with := func(k string, v any) map[string]any {
		c := is.Claims(good)
		c[k] = v
		return c
	}
	other := oidcissuer.Start(t, oidcissuer.Options{})
	foreignKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	key, kid := is.Key()
	cases := []struct {
		name   string
		token  string
		reason oidcjoin.Reason
		msg    string
	}{
		{"wrong audience", is.Sign(with("aud", "someone-else")), oidcjoin.WrongAudience, `does not include "example.keyport.local"`},
		{"wrong issuer", other.Sign(good), oidcjoin.WrongIssuer, "but the join token trusts"},
		{"expired", is.Sign(with("exp", now.Add(-time.Minute).Unix())), oidcjoin.Expired, "expired at"},
		{"not yet valid", is.Sign(with("nbf", now.Add(5*time.Minute).Unix())), oidcjoin.NotYetValid, "not valid before"},
		{"issued in the future", is.Sign(with("iat", now.Add(5*time.Minute).Unix())), oidcjoin.IssuedInFuture, "issued in the future"},
		{"no expiry", oidcissuer.SignWith(key, kid, "ES256", without(is.Claims(good), "exp")), oidcjoin.Malformed, "no expiry"},
		{"unknown key id", oidcissuer.SignWith(foreignKey, "not-a-key", "ES256", is.Claims(good)), oidcjoin.Signature, `key id "not-a-key"`},
		{"known key id, other key", oidcissuer.SignWith(foreignKey, kid, "ES256", is.Claims(good)), oidcjoin.Signature, "does not verify"},
		{"alg none", unsigned(is.Claims(good)), oidcjoin.Algorithm, `"none" is refused`},
		{"HS256 with the public key", oidcissuer.SignWith(is.PublicKeyDER(), kid, "HS256", is.Claims(good)), oidcjoin.Algorithm, `"HS256" is refused`},
		{"not a JWT", "hello", oidcjoin.Malformed, "not a JWT"},
		{"bad base64", "a.b!.c", oidcjoin.Malformed, "not base64url"},
		{"too long", strings.Repeat("a", 20000), oidcjoin.Malformed, "longer than"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := v.Verify(ctx, is.URL, aud, c.token)
			if err == nil {
				t.Fatal("accepted")
			}
			if !errs.Is(err, errs.AccessDenied) {
				t.Errorf("kind %v, want access denied", errs.KindOf(err))
			}
			if r := oidcjoin.ReasonOf(err); r != c.reason {
				t.Errorf("reason %q, want %q (%v)", r, c.reason, err)
			}
			if !strings.Contains(err.Error(), c.msg) {
				t.Errorf("message %q lacks %q", err, c.msg)
			}
		})
	}
}

func TestVerifyInjectedClock(t *testing.T) {
	is := oidcissuer.Start(t, oidcissuer.Options{PathPrefix: "/_services/token"})
	clk := clock.NewFake(time.Now().Add(time.Hour))
	v := oidcjoin.New(oidcjoin.Config{Client: is.Client, Clock: clk})
	c := oidcissuer.GitHubClaims("org/repo", "refs/heads/main", "")
	c["aud"] = aud
	_, err := v.Verify(context.Background(), is.URL, aud, is.Sign(c))
	if oidcjoin.ReasonOf(err) != oidcjoin.Expired {
		t.Fatalf("a token checked an hour later: %v", err)
	}
}

func TestDiscoveryFailure(t *testing.T) {
	is := oidcissuer.Start(t, oidcissuer.Options{})
	v := oidcjoin.New(oidcjoin.Config{}) // does not trust the issuer's certificate
	c := is.Claims(map[string]any{"aud": aud, "sub": "x"})
	_, err := v.Verify(context.Background(), is.URL, aud, is.Sign(c))
	if oidcjoin.ReasonOf(err) != oidcjoin.Discovery || !strings.Contains(err.Error(), "discovery document") {
		t.Fatalf("got %v", err)
	}
}

func without(c map[string]any, k string) map[string]any {
	delete(c, k)
	return c
}

// unsigned is an "alg: none" token.
func unsigned(claims map[string]any) string {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signed := oidcissuer.SignWith(key, "", "ES256", claims)
	parts := strings.Split(signed, ".")
	return "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0." + parts[1] + "."
}

// FuzzTokenParser feeds arbitrary text to Verify: it must refuse without a panic and
// without a network call for anything that is not a well-formed token of the issuer.
func FuzzTokenParser(f *testing.F) {
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJodHRwczovL3gifQ.sig")
	v := oidcjoin.New(oidcjoin.Config{})
	f.Fuzz(func(t *testing.T, raw string) {
		// The issuer is unreachable: a token that names it would need discovery, which
		// fails; everything else is refused before that.
		_, err := v.Verify(context.Background(), "https://127.0.0.1:1", aud, raw)
		if err == nil {
			t.Fatal("accepted")
		}
		if !errs.Is(err, errs.AccessDenied) {
			t.Fatalf("not an access-denied refusal: %v", err)
		}
	})
}

package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"github.com/keyport/keyport/internal/audit"
	"github.com/keyport/keyport/internal/clock"
	"github.com/keyport/keyport/internal/tlsca"
	"github.com/keyport/keyport/internal/types"
)

// boundJoiner is tbot's side of a bound_keypair join.
type boundJoiner struct {
	s    *Server
	name string
	key  *ecdsa.PrivateKey
}

func newBoundJoiner(s *Server, name string) *boundJoiner {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	return &boundJoiner{s: s, name: name, key: k}
}

func (b *boundJoiner) proof(t *testing.T, secret string) BoundKeypairProof {
	t.Helper()
	c, _, err := b.s.BoundKeypairChallenge(context.Background(), "10.0.0.9:1", b.name)
	if err != nil {
		t.Fatal(err)
	}
	return b.sign(c, secret)
}

func (b *boundJoiner) sign(challenge, secret string) BoundKeypairProof {
	d := sha256.Sum256(types.BoundKeypairSignedText(b.s.ClusterName(), b.name, challenge))
	sig, _ := ecdsa.SignASN1(rand.Reader, b.key, d[:])
	der, _ := x509.MarshalPKIXPublicKey(b.key.Public())
	return BoundKeypairProof{PublicKeyDER: der, Challenge: challenge, Signature: sig, RegistrationSecret: secret}
}

func (b *boundJoiner) join(p BoundKeypairProof) (*CertsResult, error) {
	key, _ := tlsca.GenerateKey(tlsca.AlgECDSAP256, clock.Rand)
	return b.s.JoinBotBoundKeypair(context.Background(), "10.0.0.9:1", b.name, "host", key.Public(), time.Hour, p)
}

func TestBoundKeypair(t *testing.T) {
	ctx := context.Background()
	rec := &audit.Recorder{}
	s, clk := newTestServer(t, Config{Audit: rec, JoinRate: 1000})
	tok, secret, err := s.CreateBotBoundKeypair(ctx, Actor{}, types.NewBot("edge", "access"), 2, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if tok.GetName() != "edge-bound-keypair" || len(secret) != 48 {
		t.Fatalf("token %q secret %q", tok.GetName(), secret)
	}
	stored, _ := s.GetResource(ctx, types.KindToken, tok.GetName())
	if b := stored.(*types.Token).Spec.BoundKeypair; b.RegistrationSecretHash == "" || strings.Contains(b.RegistrationSecretHash, secret) || b.PublicKey != "" {
		t.Fatalf("stored %+v", b)
	}
	tbot := newBoundJoiner(s, tok.GetName())
	thief := newBoundJoiner(s, tok.GetName())

	// Registration binds the key and spends the secret.
	if _, err := tbot.join(tbot.proof(t, secret)); err != nil {
		t.Fatal(err)
	}
	stored, _ = s.GetResource(ctx, types.KindToken, tok.GetName())
	b := stored.(*types.Token).Spec.BoundKeypair
	if b.PublicKey == "" || b.RegistrationSecretHash != "" || b.Joins != 1 || *b.Rejoins != 2 {
		t.Fatalf("after registration %+v", b)
	}
	insts, _ := s.BotInstances(ctx, "edge")
	if len(insts) != 1 || insts[0].JoinClaims["public_key"] == nil || insts[0].JoinToken != tok.GetName() {
		t.Fatalf("instance %+v", insts)
	}

	// Rejoins with the key alone, within the budget.
	if _, err := tbot.join(tbot.proof(t, "")); err != nil {
		t.Fatal(err)
	}
	// The secret sent again with the bound key is harmless (tbot keeps it in its config).
	if _, err := tbot.join(tbot.proof(t, secret)); err != nil {
		t.Fatal(err)
	}

	replayed := tbot.proof(t, "")
	if _, err := tbot.join(replayed); err == nil {
		t.Fatal("a join beyond the rejoin budget succeeded")
	} else if !strings.Contains(err.Error(), "has no rejoins left") {
		t.Fatal(err)
	}

	// Refusals: each its own message, audited, and no certificate.
	unregistered, secret2, err := s.CreateBotBoundKeypair(ctx, Actor{}, types.NewBot("edge2", "access"), 0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	fresh := newBoundJoiner(s, unregistered.GetName())
	_, lateSecret, err := s.CreateBotBoundKeypair(ctx, Actor{}, types.NewBot("late", "access"), 0, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	late := newBoundJoiner(s, "late-bound-keypair")
	otherSig := fresh.proof(t, secret2)
	otherSig.Signature = thief.sign(otherSig.Challenge, "").Signature
	forged := thief.proof(t, "")
	forged.PublicKeyDER = tbot.sign("x", "").PublicKeyDER // claims the bound key, signs with another
	crossToken := tbot.proof(t, "")
	crossToken.Challenge = func() string { c, _, _ := s.BoundKeypairChallenge(ctx, "1.1.1.1:1", unregistered.GetName()); return c }()
	crossToken.Signature = tbot.sign(crossToken.Challenge, "").Signature
	for _, c := range []struct {
		name string
		who  *boundJoiner
		p    BoundKeypairProof
		msg  string
	}{
		{"challenge signed by another key", tbot, forged, "signature does not verify"},
		{"a replayed challenge", tbot, replayed, "already answered"},
		{"a second registration with the same secret", thief, thief.proof(t, secret), "already bound to another key"},
		{"another key without a secret", thief, thief.proof(t, ""), "not the key bound to"},
		{"first join without the secret", fresh, fresh.proof(t, ""), "the first join needs the registration secret"},
		{"a wrong registration secret", fresh, fresh.proof(t, "not-the-secret"), "is not the one of join token"},
		{"a signature over another challenge", fresh, otherSig, "signature does not verify"},
		{"a challenge of another token", tbot, crossToken, "issued for another join token"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := rec.Count(audit.BotJoinFailure)
			n, _ := s.BotInstances(ctx, "")
			res, err := c.who.join(c.p)
			if err == nil || res != nil {
				t.Fatal("joined")
			}
			if !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("%q lacks %q", err, c.msg)
			}
			if rec.Count(audit.BotJoinFailure) != before+1 {
				t.Error("not audited")
			}
			if m, _ := s.BotInstances(ctx, ""); len(m) != len(n) {
				t.Error("an instance was made")
			}
		})
	}
	// A registration secret has a deadline (the token TTL of tctl bots add).
	clk.Advance(2 * time.Minute)
	if _, err := late.join(late.proof(t, lateSecret)); err == nil || !strings.Contains(err.Error(), "registration secret of join token \"late-bound-keypair\" expired at") {
		t.Fatalf("late registration: %v", err)
	}
	// Without recovery, the key joins once.
	off := false
	stored, _ = s.GetResource(ctx, types.KindToken, unregistered.GetName())
	ut := stored.(*types.Token)
	ut.Spec.BoundKeypair.Recovery = &off
	if _, err := s.putToken(ctx, Actor{}, ut, Upsert); err != nil {
		t.Fatal(err)
	}
	if _, err := fresh.join(fresh.proof(t, secret2)); err != nil {
		t.Fatal(err)
	}
	if _, err := fresh.join(fresh.proof(t, "")); err == nil || !strings.Contains(err.Error(), "recovery is false") {
		t.Fatalf("second join without recovery: %v", err)
	}
}

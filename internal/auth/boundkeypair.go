package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"time"

	"github.com/keyport/keyport/internal/backend"
	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/types"
)

// The bound_keypair join method: tbot keeps a key pair of its own; the key is bound to
// the token resource once, with a one-time registration secret, and from then on a join
// proves possession of the private key by signing a fresh, single-use challenge. No
// reusable secret leaves the host.

const (
	boundChallengePrefix = "/bound_challenges/"
	boundChallengeTTL    = time.Minute
)

// BoundKeypairProof is what a bound_keypair join carries besides the token's name.
type BoundKeypairProof struct {
	// PublicKeyDER is the bound key (PKIX DER).
	PublicKeyDER []byte
	Challenge    string
	Signature    []byte
	// RegistrationSecret is sent with the first join, which binds the key.
	RegistrationSecret string
}

// NewBoundKeypairToken makes the token resource of a bound_keypair bot and returns its
// one-time registration secret, valid for ttl.
func (s *Server) NewBoundKeypairToken(botName string, rejoins int, ttl time.Duration) (*types.Token, string, error) {
	secret, err := randomHex(s.cfg.Rand, 24)
	if err != nil {
		return nil, "", err
	}
	if ttl <= 0 {
		ttl = DefaultTokenTTL
	}
	deadline := s.cfg.Clock.Now().Add(ttl).UTC()
	b := &types.BoundKeypairJoin{RegistrationSecretHash: HashToken(secret), RegisterBefore: &deadline}
	if rejoins > 0 {
		b.Rejoins = &rejoins
	}
	t := &types.Token{Header: types.Header{Kind: types.KindToken, Version: types.V2, Metadata: types.Metadata{Name: botName + "-bound-keypair"}},
		Spec: types.TokenSpec{Roles: []string{types.TokenRoleBot}, BotName: botName, JoinMethod: types.JoinMethodBoundKeypair, BoundKeypair: b}}
	if err := t.CheckAndSetDefaults(); err != nil {
		return nil, "", err
	}
	return t, secret, nil
}

// BoundKeypairChallenge returns a fresh challenge for the bound_keypair token name. It
// is single use and expires in a minute.
func (s *Server) BoundKeypairChallenge(ctx context.Context, addr, name string) (string, time.Time, error) {
	if !s.joinLimiter.Allow(sourceHost(addr)) {
		return "", time.Time{}, errs.LimitExceededf("too many join attempts from %s; wait a minute", sourceHost(addr))
	}
	tok, err := s.boundKeypairToken(ctx, name)
	if err != nil {
		return "", time.Time{}, err
	}
	c, err := randomHex(s.cfg.Rand, 32)
	if err != nil {
		return "", time.Time{}, err
	}
	exp := s.cfg.Clock.Now().Add(boundChallengeTTL)
	if _, err := s.cfg.Backend.Create(ctx, backend.Item{Key: []byte(boundChallengePrefix + c), Value: []byte(tok.GetName()), Expires: exp}); err != nil {
		return "", time.Time{}, err
	}
	return c, exp, nil
}

func (s *Server) boundKeypairToken(ctx context.Context, name string) (*types.Token, error) {
	return s.namedJoinToken(ctx, name, types.JoinMethodBoundKeypair)
}

// checkBoundKeypairJoin spends the challenge, checks the signature with the bound key
// (binding it first when the registration secret comes with it), and counts the join
// against the token's rejoin budget.
func (s *Server) checkBoundKeypairJoin(ctx context.Context, name string, p BoundKeypairProof) (*types.Token, map[string]any, error) {
	// The challenge goes first, whatever follows: a challenge is answered once.
	key := []byte(boundChallengePrefix + p.Challenge)
	it, err := s.cfg.Backend.Get(ctx, key)
	if p.Challenge == "" || errs.IsNotFound(err) {
		return nil, nil, errs.AccessDeniedf("the challenge is unknown, expired or already answered: ask for a new one")
	}
	if err != nil {
		return nil, nil, err
	}
	if err := s.cfg.Backend.Delete(ctx, key); errs.IsNotFound(err) {
		return nil, nil, errs.AccessDeniedf("the challenge is unknown, expired or already answered: ask for a new one")
	} else if err != nil {
		return nil, nil, err
	}
	if string(it.Value) != name {
		return nil, nil, errs.AccessDeniedf("the challenge was issued for another join token")
	}
	for attempt := 0; ; attempt++ {
		tok, err := s.boundKeypairToken(ctx, name)
		if err != nil {
			return nil, nil, err
		}
		b := tok.Spec.BoundKeypair
		pub, err := x509.ParsePKIXPublicKey(p.PublicKeyDER)
		if err != nil {
			return nil, nil, errs.BadParameterf("the bound public key: %v", err)
		}
		pemKey := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: p.PublicKeyDER}))
		registering := b.PublicKey == ""
		if registering {
			if p.RegistrationSecret == "" {
				return nil, nil, errs.AccessDeniedf("join token %q has no key bound yet: the first join needs the registration secret `tctl bots add` printed (onboarding.bound_keypair.registration_secret)", name)
			}
			if subtle.ConstantTimeCompare([]byte(HashToken(p.RegistrationSecret)), []byte(b.RegistrationSecretHash)) != 1 {
				return nil, nil, errs.AccessDeniedf("the registration secret is not the one of join token %q", name)
			}
			if b.RegisterBefore != nil && !s.cfg.Clock.Now().Before(*b.RegisterBefore) {
				return nil, nil, errs.AccessDeniedf("the registration secret of join token %q expired at %s: make a new one with `tctl bots add`", name, b.RegisterBefore.UTC().Format(time.RFC3339))
			}
		} else if b.PublicKey != pemKey {
			if p.RegistrationSecret != "" {
				return nil, nil, errs.AccessDeniedf("join token %q is already bound to another key: a registration secret binds one key, once", name)
			}
			return nil, nil, errs.AccessDeniedf("the key presented is not the key bound to join token %q", name)
		}
		if !verifyBound(pub, types.BoundKeypairSignedText(s.cfg.ClusterName, name, p.Challenge), p.Signature) {
			return nil, nil, errs.AccessDeniedf("the challenge's signature does not verify with the key presented")
		}
		if b.Joins > 0 {
			if !*b.Recovery {
				return nil, nil, errs.AccessDeniedf("join token %q allows one join and has been used (spec.bound_keypair.recovery is false); the bot lives on its renewals", name)
			}
			if *b.Rejoins <= 0 {
				return nil, nil, errs.AccessDeniedf("join token %q has no rejoins left: raise spec.bound_keypair.rejoins with `tctl edit token/%s`", name, name)
			}
			n := *b.Rejoins - 1
			b.Rejoins = &n
		}
		b.Joins++
		if registering {
			b.PublicKey, b.RegistrationSecretHash, b.RegisterBefore = pemKey, "", nil
		}
		data, err := itemFor(tok)
		if err != nil {
			return nil, nil, err
		}
		if _, err := s.cfg.Backend.CompareAndSwap(ctx, data, tok.Metadata.Revision); errs.IsCompareFailed(err) && attempt < 5 {
			continue
		} else if err != nil {
			return nil, nil, err
		}
		sum := sha256.Sum256(p.PublicKeyDER)
		return tok, map[string]any{"public_key": "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:]),
			"joins": b.Joins, "rejoins_remaining": *b.Rejoins, "registered": registering}, nil
	}
}

func verifyBound(pub crypto.PublicKey, text, sig []byte) bool {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		d := sha256.Sum256(text)
		return ecdsa.VerifyASN1(k, d[:], sig)
	case ed25519.PublicKey:
		return ed25519.Verify(k, text, sig)
	}
	return false
}

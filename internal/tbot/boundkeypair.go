package tbot

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
	"github.com/keyport/keyport/internal/client"
	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/tbot/config"
	"github.com/keyport/keyport/internal/tlsca"
	"github.com/keyport/keyport/internal/types"
)

// storageBoundKey is the file in the bot's storage that holds the bound_keypair key. It
// never leaves the host: the cluster keeps only its public half.
const storageBoundKey = "bound_key"

// boundKeypairProof fills req for a bound_keypair join: the token's name, the bound
// key (made and stored on first use), its signature over a fresh challenge, and the
// registration secret when one is configured (the server uses it only while no key is
// bound, and refuses it for a key other than the bound one).
func (s *identityService) boundKeypairProof(ctx context.Context, clt *client.Client, cluster string, req *pb.JoinBotRequest) error {
	ob := s.b.cfg.Onboarding
	name := strings.TrimSpace(ob.Token)
	if name == "" {
		return errs.BadParameterf("join method bound_keypair: set onboarding.token (or --token) to the join token's name `tctl bots add` printed")
	}
	key, err := s.boundKey(ctx)
	if err != nil {
		return err
	}
	ch, err := clt.BoundKeypairChallenge(ctx, &pb.BoundKeypairChallengeRequest{TokenName: name})
	if err != nil {
		return fmt.Errorf("asking for a bound_keypair challenge: %w", err)
	}
	digest := sha256.Sum256(types.BoundKeypairSignedText(cluster, name, ch.GetChallenge()))
	sig, err := ecdsa.SignASN1(rand.Reader, key, digest[:])
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return err
	}
	req.Token, req.BoundPublicKeyDer, req.Challenge, req.ChallengeSignature = name, der, ch.GetChallenge(), sig
	if ob.BoundKeypair != nil && ob.BoundKeypair.RegistrationSecret != "" {
		secret, err := resolveToken(ob.BoundKeypair.RegistrationSecret)
		if err != nil {
			return fmt.Errorf("onboarding.bound_keypair.registration_secret: %w", err)
		}
		req.RegistrationSecret = secret
	}
	return nil
}

// boundKey loads the bound key from storage, or makes and stores one.
func (s *identityService) boundKey(ctx context.Context) (*ecdsa.PrivateKey, error) {
	data, err := s.store.Read(ctx, storageBoundKey)
	if err == nil {
		block, _ := pem.Decode(data)
		if block == nil {
			return nil, errs.BadParameterf("%s/%s is not a PEM key", s.store, storageBoundKey)
		}
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, errs.BadParameterf("%s/%s: %v", s.store, storageBoundKey, err)
		}
		ek, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			return nil, errs.BadParameterf("%s/%s is not an ECDSA key", s.store, storageBoundKey)
		}
		return ek, nil
	}
	if !errs.IsNotFound(err) {
		return nil, fmt.Errorf("reading the bound key from %s: %w", s.store, err)
	}
	if s.b.cfg.Storage != nil && s.b.cfg.Storage.Type == config.DestMemory {
		return nil, errs.BadParameterf("join method bound_keypair keeps its key in the bot's storage: use a directory storage, not memory")
	}
	signer, err := tlsca.GenerateKey(tlsca.AlgECDSAP256, s.b.rand)
	if err != nil {
		return nil, err
	}
	ek := signer.(*ecdsa.PrivateKey)
	der, err := x509.MarshalPKCS8PrivateKey(ek)
	if err != nil {
		return nil, err
	}
	if err := s.store.Write(ctx, map[string][]byte{storageBoundKey: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})}); err != nil {
		return nil, fmt.Errorf("saving the bound key to %s: %w", s.store, err)
	}
	s.b.log.Info("made the bound key", "storage", s.store.String())
	return ek, nil
}

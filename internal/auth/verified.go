package auth

import (
	"crypto/sha256"
	"crypto/x509"
	"sync"
	"time"

	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/tlsca"
)

// maxVerified bounds the cache of verified certificates.
const maxVerified = 16384

// verifiedCerts remembers certificates whose chain has been verified, so that a client
// making many calls on one connection (a proxy, a bot fetching output certificates, every
// kubectl request) costs one signature verification, not one per call. An entry is used
// only until the certificate expires; locks are checked on every call regardless.
type verifiedCerts struct {
	mu sync.RWMutex
	m  map[[32]byte]*tlsca.Identity
}

func (v *verifiedCerts) get(cert *x509.Certificate, now time.Time) (*tlsca.Identity, bool) {
	key := sha256.Sum256(cert.Raw)
	v.mu.RLock()
	id, ok := v.m[key]
	v.mu.RUnlock()
	if !ok || !now.Before(cert.NotAfter) || now.Before(cert.NotBefore) {
		return nil, false
	}
	return id, true
}

func (v *verifiedCerts) put(cert *x509.Certificate, id *tlsca.Identity) {
	key := sha256.Sum256(cert.Raw)
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.m == nil {
		v.m = make(map[[32]byte]*tlsca.Identity)
	}
	if len(v.m) >= maxVerified {
		// Drop an arbitrary half; they are re-verified on their next use.
		n := 0
		for k := range v.m {
			delete(v.m, k)
			if n++; n >= maxVerified/2 {
				break
			}
		}
	}
	v.m[key] = id
}

// VerifyClientCert checks a client certificate against the user CA (users and bots) or
// the host CA (Keyport's own processes and the local admin) and returns its identity.
func (s *Server) VerifyClientCert(cert *x509.Certificate) (*tlsca.Identity, error) {
	now := s.cfg.Clock.Now()
	if id, ok := s.verified.get(cert, now); ok {
		return id, nil
	}
	id, err := s.verifyClientCert(cert, now)
	if err == nil {
		s.verified.put(cert, id)
	}
	return id, err
}

func (s *Server) verifyClientCert(cert *x509.Certificate, now time.Time) (*tlsca.Identity, error) {
	userPool, hostPool := s.Pools()
	id, err := tlsca.Verify(userPool, cert, now)
	if err == nil {
		if id.SystemRole != "" {
			return nil, errs.NotAuthenticatedf("certificate for %q claims a system role but was issued by the user CA", id.Username)
		}
		return id, nil
	}
	if hid, herr := tlsca.Verify(hostPool, cert, now); herr == nil {
		if hid.SystemRole == "" {
			return nil, errs.NotAuthenticatedf("host certificate for %q has no system role", hid.Username)
		}
		return hid, nil
	}
	return nil, err
}

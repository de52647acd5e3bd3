package auth

import (
	"crypto/sha256"
	"crypto/x509"
	"sync"
	"time"

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

package proxy

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"strings"
)

// Continue tokens under filtering. The API server's continue token is base64 JSON that
// holds the key of the last object it read, and a filtered page may have dropped that
// object: passed on as it is, the token would name an object the caller's roles hide.
// So on a filtered list the proxy seals the token (AES-256-GCM under a key all proxies of
// the cluster share, with the identity, the kube cluster and the request's path as
// associated data) and opens it when it comes back on the next page. A token that does
// not open, one made for another identity or path, or the API server's own token on a
// filtered request, is refused with a 400 Status, as the API server refuses an invalid
// one. Unfiltered requests carry the API server's tokens untouched.

// sealedPrefix marks a sealed continue token.
const sealedPrefix = "kp1."

type continueSealer struct{ aead cipher.AEAD }

// newContinueSealer makes a sealer whose AES-256 key is the SHA-256 of key.
func newContinueSealer(key []byte) *continueSealer {
	k := sha256.Sum256(key)
	block, err := aes.NewCipher(k[:])
	if err != nil {
		panic(err) // a 32-byte key is always valid
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return &continueSealer{aead: aead}
}

func (s *continueSealer) seal(token, ad string) (string, error) {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(token)+s.aead.Overhead())
	if _, err := io.ReadFull(rand.Reader, nonce); err != nil {
		return "", err
	}
	out := s.aead.Seal(nonce, nonce, []byte(token), []byte(ad))
	return sealedPrefix + base64.RawURLEncoding.EncodeToString(out), nil
}

var errBadContinue = errors.New("the continue token is not valid for this request (it was made for another identity, cluster or path, or has been changed); start the list again without it")

func (s *continueSealer) open(sealed, ad string) (string, error) {
	b64, ok := strings.CutPrefix(sealed, sealedPrefix)
	if !ok {
		return "", errBadContinue
	}
	data, err := base64.RawURLEncoding.DecodeString(b64)
	if err != nil || len(data) < s.aead.NonceSize() {
		return "", errBadContinue
	}
	n := s.aead.NonceSize()
	plain, err := s.aead.Open(nil, data[:n], data[n:], []byte(ad))
	if err != nil {
		return "", errBadContinue
	}
	return string(plain), nil
}

// continueAD binds a sealed token to who asked for which list.
func continueAD(st *requestState, path string) string {
	return st.id.Username + "\x00" + st.cluster.Name + "\x00" + path
}

// openContinue replaces the sealed continue token of a filtered list with the API
// server's own before the request goes on. It runs inside withAuthorization, and only for
// filtered requests: a chain stage of its own would deepen every request's stack.
func openContinue(r *http.Request, st *requestState, s *continueSealer) error {
	if !strings.Contains(r.URL.RawQuery, "continue=") {
		return nil
	}
	q := r.URL.Query()
	token := q.Get("continue")
	if token == "" {
		return nil
	}
	raw, err := s.open(token, continueAD(st, r.URL.Path))
	if err != nil {
		return err
	}
	q.Set("continue", raw)
	r.URL.RawQuery = q.Encode()
	return nil
}

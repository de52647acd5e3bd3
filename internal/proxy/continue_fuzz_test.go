package proxy

import (
	"strings"
	"testing"
)

// FuzzContinueToken: a client's continue token is opened on a filtered list; whatever it
// sends, open neither panics nor accepts anything but a token sealed for the same
// identity, cluster and path.
func FuzzContinueToken(f *testing.F) {
	s := newContinueSealer([]byte("fuzz key"))
	const plain = `{"v":"meta.k8s.io/v1","rv":42,"start":"team-a/a-0\u0000"}`
	good, err := s.seal(plain, "alice\x00c\x00/api/v1/pods")
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{good, "", "kp1.", "kp1.AAAA", "eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ", good[:len(good)-1], strings.Repeat("kp1.A", 100)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, token string) {
		raw, err := s.open(token, "alice\x00c\x00/api/v1/pods")
		if err == nil && raw != plain {
			// Only what this sealer sealed opens: a fuzzer does not forge GCM tags.
			t.Fatalf("opened %q from %q", raw, token)
		}
	})
}

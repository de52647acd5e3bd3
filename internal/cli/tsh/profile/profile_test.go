package profile

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/keyport/keyport/internal/clock"
	"github.com/keyport/keyport/internal/identityfile"
	"github.com/keyport/keyport/internal/tlsca"
)

func TestNormalizeProxy(t *testing.T) {
	for in, want := range map[string]string{
		"keyport.example.com":              "keyport.example.com:3080",
		"keyport.example.com:443":          "keyport.example.com:443",
		"https://keyport.example.com:3080": "keyport.example.com:3080",
		"127.0.0.1:41234":                  "127.0.0.1:41234",
		"[::1]:3080":                       "[::1]:3080",
		"::1":                              "[::1]:3080",
	} {
		got, err := NormalizeProxy(in)
		if err != nil || got != want {
			t.Errorf("NormalizeProxy(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", ":3080", "host/path:1", "a b"} {
		if got, err := NormalizeProxy(bad); err == nil {
			t.Errorf("NormalizeProxy(%q) = %q, want an error", bad, got)
		}
	}
}

func identity(t *testing.T, user string, ttl time.Duration) *identityfile.Identity {
	t.Helper()
	now := time.Now()
	ca, err := tlsca.NewCA("c", "user", tlsca.AlgECDSAP256, clock.Rand, now.Add(-time.Hour), 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	key, err := tlsca.GenerateKey(tlsca.AlgECDSAP256, clock.Rand)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := ca.Issue(clock.Rand, now, tlsca.CertRequest{PublicKey: key.Public(), Identity: tlsca.Identity{Username: user}, NotAfter: now.Add(ttl)})
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := tlsca.ParseCertPEM(certPEM)
	return &identityfile.Identity{Key: key, CertPEM: certPEM, Cert: cert, HostCAs: [][]byte{ca.CertPEM}}
}

func TestStore(t *testing.T) {
	home := t.TempDir()
	st, err := Default(func(k string) string { return map[string]string{"HOME": home}[k] })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Current(); !IsNotLoggedIn(err) {
		t.Fatalf("empty store: %v", err)
	}
	p := &Profile{ProxyAddr: "proxy.example.com:3080", User: "alice", ClusterName: "keyport.example.com"}
	if err := st.Save(p, identity(t, "alice", time.Hour)); err != nil {
		t.Fatal(err)
	}
	for path, mode := range map[string]os.FileMode{
		filepath.Join(home, ".tsh"): 0o700,
		filepath.Join(home, ".tsh", "keys", "proxy.example.com:3080", "alice"):             0o700,
		filepath.Join(home, ".tsh", "keys", "proxy.example.com:3080", "alice", "identity"): 0o600,
		filepath.Join(home, ".tsh", "proxy.example.com:3080.yaml"):                         0o600,
	} {
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: %v %v, want %v", path, fi.Mode(), err, mode)
		}
	}
	cur, err := st.Current()
	if err != nil || *cur != *p {
		t.Fatalf("current %+v %v", cur, err)
	}
	if _, err := st.ValidIdentity(p, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := st.ValidIdentity(p, time.Now().Add(2*time.Hour)); err == nil {
		t.Error("an expired login is valid")
	}

	// Kube certificates are cached per cluster and dropped by the next login.
	if err := st.SaveKubeIdentity(p, "k1", identity(t, "alice", time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := st.KubeIdentity(p, "k1"); err != nil {
		t.Fatal(err)
	}
	if err := st.Save(p, identity(t, "alice", time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := st.KubeIdentity(p, "k1"); err == nil {
		t.Error("kube certificate of the previous login kept")
	}

	// Trusted pins.
	if err := st.TrustPin("proxy.example.com:3080", "sha256:aa"); err != nil {
		t.Fatal(err)
	}
	if err := st.TrustPin("proxy.example.com:3080", "sha256:aa"); err != nil {
		t.Fatal(err)
	}
	if err := st.TrustPin("other:3080", "sha256:bb"); err != nil {
		t.Fatal(err)
	}
	if got := st.TrustedPins("proxy.example.com:3080"); len(got) != 1 || got[0] != "sha256:aa" {
		t.Errorf("pins %v", got)
	}

	if err := st.Remove(p); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Current(); !IsNotLoggedIn(err) {
		t.Errorf("after remove: %v", err)
	}
	if _, err := os.Stat(filepath.Join(home, ".tsh", "keys", "proxy.example.com:3080")); !os.IsNotExist(err) {
		t.Errorf("keys left: %v", err)
	}
}

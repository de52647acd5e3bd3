// Package tools finds the external programs that Keyport's tests run for real (etcd,
// kube-apiserver, kube-controller-manager, kwok, kubectl, helm, minio, dex, chromium). They
// live in $KEYPORT_CACHE/bin (default $HOME/.cache/keyport/bin), put there by
// `make kube-tools`.
// A test that needs one and does not find it fails, naming the command that installs it:
// tests never skip for a missing binary.
package tools

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// CacheDir is $KEYPORT_CACHE, or $HOME/.cache/keyport.
func CacheDir() string {
	if d := os.Getenv("KEYPORT_CACHE"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = os.TempDir()
	}
	return filepath.Join(home, ".cache", "keyport")
}

// BinDir is where `make kube-tools` installs programs.
func BinDir() string { return filepath.Join(CacheDir(), "bin") }

// Lookup returns the path of the program name: first in BinDir, then on $PATH.
func Lookup(name string) (string, error) {
	p := filepath.Join(BinDir(), name)
	if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
		return p, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%s not found in %s or on $PATH: install it with `make kube-tools` (it runs scripts/kube-tools.sh)", name, BinDir())
}

// Path returns the path of the program name or fails the test with the command that
// installs it.
func Path(t testing.TB, name string) string {
	t.Helper()
	p, err := Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

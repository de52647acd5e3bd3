//go:build unix

package destination

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/tbot/config"
)

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode()
}

func TestDirectoryWrite(t *testing.T) {
	ctx := context.Background()
	for _, policy := range []string{config.SymlinksSecure, config.SymlinksTrySecure, "try-secure-fallback", config.SymlinksInsecure} {
		t.Run(policy, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "a", "out")
			d, err := NewDirectory(path, strings.TrimSuffix(policy, "-fallback"), nil)
			if err != nil {
				t.Fatal(err)
			}
			d.noOpenat2 = strings.HasSuffix(policy, "-fallback")
			if _, err := d.Read(ctx, "key"); !errs.IsNotFound(err) {
				t.Fatalf("read before write: %v", err)
			}
			if err := d.Write(ctx, map[string][]byte{"key": []byte("k1"), "tlscert": []byte("c1")}); err != nil {
				t.Fatal(err)
			}
			if m := mode(t, path); m.Perm() != 0o700 || !m.IsDir() {
				t.Errorf("directory mode %v", m)
			}
			for _, f := range []string{"key", "tlscert"} {
				if m := mode(t, filepath.Join(path, f)); m != 0o600 {
					t.Errorf("%s mode %v", f, m)
				}
			}
			if err := d.Write(ctx, map[string][]byte{"key": []byte("k2")}); err != nil {
				t.Fatal(err)
			}
			if got, err := d.Read(ctx, "key"); err != nil || string(got) != "k2" {
				t.Fatalf("read = %q, %v", got, err)
			}
			entries, _ := os.ReadDir(path)
			if len(entries) != 2 {
				t.Errorf("entries = %v (temporaries left?)", entries)
			}
		})
	}
}

func TestDirectoryTightensMode(t *testing.T) {
	path := t.TempDir()
	if err := os.Chmod(path, 0o755); err != nil {
		t.Fatal(err)
	}
	d, _ := NewDirectory(path, "", nil)
	if err := d.Write(context.Background(), map[string][]byte{"x": []byte("y")}); err != nil {
		t.Fatal(err)
	}
	if m := mode(t, path); m.Perm() != 0o700 {
		t.Fatalf("mode %v", m)
	}
}

func TestDirectorySymlinks(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name     string
		policy   string
		fallback bool
		setup    func(t *testing.T, root string) string // returns the destination path
		want     string                                 // error substring; "" means success
	}{
		{"planted file link", config.SymlinksTrySecure, false, plantFileLink, "is a symlink; refusing to write credentials through it"},
		{"planted file link, fallback", config.SymlinksTrySecure, true, plantFileLink, "is a symlink; refusing to write credentials through it"},
		{"planted file link, secure", config.SymlinksSecure, false, plantFileLink, "is a symlink; refusing"},
		{"linked directory", config.SymlinksSecure, false, linkedDir, "is a symlink; refusing to write credentials through it"},
		{"linked parent", config.SymlinksSecure, false, linkedParent, "the path contains a symlink, which symlinks: secure refuses"},
		{"linked parent, fallback", config.SymlinksTrySecure, true, linkedParent, "the path contains a symlink (parent)"},
		{"linked parent, insecure", config.SymlinksInsecure, false, linkedParent, ""},
		{"linked directory, insecure", config.SymlinksInsecure, false, linkedDir, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			path := tt.setup(t, root)
			d, err := NewDirectory(path, tt.policy, nil)
			if err != nil {
				t.Fatal(err)
			}
			d.noOpenat2 = tt.fallback
			err = d.Write(ctx, map[string][]byte{"kubeconfig.yaml": []byte("new"), "key": []byte("secret")})
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if data, _ := os.ReadFile(filepath.Join(root, "victim")); string(data) != "old" {
				t.Fatalf("victim changed: %q", data)
			}
			if _, err := os.Stat(filepath.Join(root, "real", "key")); err == nil {
				t.Fatal("key written through a symlink")
			}
		})
	}
}

func plantFileLink(t *testing.T, root string) string {
	dest := filepath.Join(root, "real")
	must(t, os.Mkdir(dest, 0o700))
	must(t, os.WriteFile(filepath.Join(root, "victim"), []byte("old"), 0o644))
	must(t, os.Symlink(filepath.Join(root, "victim"), filepath.Join(dest, "kubeconfig.yaml")))
	return dest
}

func linkedDir(t *testing.T, root string) string {
	must(t, os.Mkdir(filepath.Join(root, "real"), 0o700))
	must(t, os.WriteFile(filepath.Join(root, "victim"), []byte("old"), 0o644))
	must(t, os.Symlink(filepath.Join(root, "real"), filepath.Join(root, "link")))
	return filepath.Join(root, "link")
}

func linkedParent(t *testing.T, root string) string {
	must(t, os.MkdirAll(filepath.Join(root, "elsewhere", "out"), 0o700))
	must(t, os.WriteFile(filepath.Join(root, "victim"), []byte("old"), 0o644))
	must(t, os.Symlink(filepath.Join(root, "elsewhere"), filepath.Join(root, "parent")))
	return filepath.Join(root, "parent", "out")
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestDirectoryKeepsOldSet: when one file of the set cannot be written, none is replaced.
func TestDirectoryKeepsOldSet(t *testing.T) {
	ctx := context.Background()
	path := t.TempDir()
	d, _ := NewDirectory(path, "", nil)
	must(t, d.Write(ctx, map[string][]byte{"a": []byte("old-a")}))
	must(t, os.Mkdir(filepath.Join(path, "b"), 0o700))
	err := d.Write(ctx, map[string][]byte{"a": []byte("new-a"), "b": []byte("new-b")})
	if err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Fatalf("err = %v", err)
	}
	if got, _ := d.Read(ctx, "a"); string(got) != "old-a" {
		t.Fatalf("a = %q after a failed set write", got)
	}
	if err := d.Write(ctx, map[string][]byte{"../x": nil}); err == nil {
		t.Fatal("a name outside the directory was accepted")
	}
}

func TestMemory(t *testing.T) {
	ctx := context.Background()
	m := NewMemory()
	must(t, m.Write(ctx, map[string][]byte{"a": []byte("1")}))
	if got, err := m.Read(ctx, "a"); err != nil || string(got) != "1" {
		t.Fatalf("read = %q, %v", got, err)
	}
	if _, err := m.Read(ctx, "b"); !errs.IsNotFound(err) {
		t.Fatalf("missing: %v", err)
	}
}

// fakeSecrets is the corner of the Kubernetes API a Secret destination uses.
type fakeSecrets struct {
	mu      sync.Mutex
	secrets map[string]secret
	rv      int
	auth    string
}

func (f *fakeSecrets) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.auth = r.Header.Get("Authorization")
	const prefix = "/api/v1/namespaces/ns/secrets"
	name := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, prefix), "/")
	switch r.Method {
	case http.MethodGet:
		s, ok := f.secrets[name]
		if !ok {
			http.Error(w, `{"message":"not found"}`, http.StatusNotFound)
			return
		}
		_ = json.NewEncoder(w).Encode(s)
	case http.MethodPost, http.MethodPut:
		var s secret
		data, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(data, &s)
		if cur, ok := f.secrets[s.Metadata.Name]; ok && (r.Method == http.MethodPost || cur.Metadata.ResourceVersion != s.Metadata.ResourceVersion) {
			http.Error(w, `{"message":"conflict"}`, http.StatusConflict)
			return
		}
		f.rv++
		s.Metadata.ResourceVersion = string(rune('0' + f.rv))
		f.secrets[s.Metadata.Name] = s
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(s)
	}
}

func TestKubeSecret(t *testing.T) {
	ctx := context.Background()
	api := &fakeSecrets{secrets: map[string]secret{}}
	srv := httptest.NewServer(api)
	defer srv.Close()
	k := NewKubeSecret("keyport-kube", "ns", map[string]string{"app": "tbot"})
	k.API, k.Client, k.Token = srv.URL, srv.Client(), func() (string, error) { return "sa-token", nil }
	if _, err := k.Read(ctx, "key"); !errs.IsNotFound(err) {
		t.Fatalf("read before write: %v", err)
	}
	must(t, k.Write(ctx, map[string][]byte{"key": []byte("k1"), "tlscert": []byte("c1")}))
	must(t, k.Write(ctx, map[string][]byte{"key": []byte("k2")}))
	if got, err := k.Read(ctx, "key"); err != nil || string(got) != "k2" {
		t.Fatalf("read = %q, %v", got, err)
	}
	s := api.secrets["keyport-kube"]
	if string(s.Data["tlscert"]) != "c1" || s.Metadata.Labels["app"] != "tbot" || s.Type != "Opaque" || api.auth != "Bearer sa-token" {
		t.Fatalf("secret = %+v, auth %q", s, api.auth)
	}
}

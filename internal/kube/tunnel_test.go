package kube

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/keyport/keyport/internal/tunnel"
)

// upstream is a recording stand-in for an API server.
type upstream struct {
	mu   sync.Mutex
	reqs []*http.Request
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.reqs = append(u.reqs, r.Clone(r.Context()))
	u.mu.Unlock()
	if strings.EqualFold(r.Header.Get("Upgrade"), "echo") {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\nX-Stream: yes\r\n\r\n")
		_ = brw.Flush()
		line, _ := brw.ReadString('\n')
		_, _ = io.WriteString(conn, "echo: "+line)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"path":%q}`, r.URL.Path)
}

func (u *upstream) last() *http.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.reqs) == 0 {
		return nil
	}
	return u.reqs[len(u.reqs)-1]
}

func newTestService(t *testing.T) (*Service, *upstream) {
	t.Helper()
	up := &upstream{}
	// clientcmd sends credentials only over TLS.
	srv := httptest.NewTLSServer(up)
	t.Cleanup(srv.Close)
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: %s, insecure-skip-tls-verify: true}
users:
- name: u
  user: {token: service-token}
contexts:
- name: prod
  context: {cluster: c, user: u}
current-context: prod
`, srv.URL)
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{KubeconfigFile: path, ServiceName: "agent-1"})
	if err != nil {
		t.Fatal(err)
	}
	return s, up
}

// TestTunnelHandler checks what the service accepts from its tunnel: only requests the
// proxy authorised (one Impersonate-User), for its own clusters, sent with the service's
// own credentials and never the client's.
func TestTunnelHandler(t *testing.T) {
	s, up := newTestService(t)
	h := s.TunnelHandler()
	cases := []struct {
		name    string
		path    string
		headers map[string][]string
		code    int
		msg     string
		reached bool
	}{
		{"no impersonation", "/v1/kube/prod/api/v1/pods", nil, http.StatusForbidden, "only requests the proxy has authorised", false},
		{"two users", "/v1/kube/prod/api/v1/pods", map[string][]string{"Impersonate-User": {"a", "b"}}, http.StatusForbidden, "only requests the proxy has authorised", false},
		{"empty user", "/v1/kube/prod/api/v1/pods", map[string][]string{"Impersonate-User": {""}}, http.StatusForbidden, "only requests the proxy has authorised", false},
		{"unknown cluster", "/v1/kube/other/api/v1/pods", map[string][]string{"Impersonate-User": {"alice"}}, http.StatusNotFound, "is not served by this Kubernetes Service", false},
		{"not kube path", "/webapi/ping", map[string][]string{"Impersonate-User": {"alice"}}, http.StatusNotFound, "not a Kubernetes path", false},
		{"authorised", "/v1/kube/prod/api/v1/pods?limit=5", map[string][]string{"Impersonate-User": {"alice"}, "Impersonate-Group": {"editor"}, "Authorization": {"Bearer stolen"}},
			http.StatusOK, `"path":"/api/v1/pods"`, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(up.reqs)
			r := httptest.NewRequest(http.MethodGet, "http://tunnel"+tc.path, nil)
			for k, vs := range tc.headers {
				for _, v := range vs {
					r.Header.Add(k, v)
				}
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tc.code || !strings.Contains(w.Body.String(), tc.msg) {
				t.Fatalf("got %d %s, want %d with %q", w.Code, w.Body.String(), tc.code, tc.msg)
			}
			if reached := len(up.reqs) > before; reached != tc.reached {
				t.Fatalf("reached the API server: %v, want %v", reached, tc.reached)
			}
			if tc.reached {
				got := up.last()
				if got.Header.Get("Authorization") != "Bearer service-token" {
					t.Errorf("Authorization upstream = %q, want the service's own token", got.Header.Get("Authorization"))
				}
				if got.Header.Get("Impersonate-User") != "alice" || got.Header.Get("Impersonate-Group") != "editor" {
					t.Errorf("impersonation upstream = %v", got.Header)
				}
				if got.URL.RawQuery != "limit=5" {
					t.Errorf("query upstream = %q", got.URL.RawQuery)
				}
			}
		})
	}
}

// TestTunnelUpgrade checks that an upgrade carried in tunnel.HeaderUpgrade is performed against
// the API server and that the stream then carries the upgraded connection both ways.
func TestTunnelUpgrade(t *testing.T) {
	s, up := newTestService(t)
	srv := httptest.NewUnstartedServer(s.TunnelHandler())
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	pr, pw := io.Pipe()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/kube/prod/api/v1/namespaces/default/pods/web-0/exec", pr)
	req.Header.Set(tunnel.HeaderUpgrade, "echo")
	req.Header.Set("Impersonate-User", "alice")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusOK || resp.Header.Get(tunnel.HeaderUpgradeStatus) != "101" || resp.Header.Get(tunnel.HeaderUpgrade) != "echo" {
		t.Fatalf("response %s %d %v", resp.Proto, resp.StatusCode, resp.Header)
	}
	if resp.Header.Get("X-Stream") != "yes" {
		t.Errorf("the API server's 101 headers were not passed on: %v", resp.Header)
	}
	if _, err := io.WriteString(pw, "hello\n"); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "echo: hello\n" {
		t.Fatalf("read %q, %v", line, err)
	}
	_ = pw.Close()
	got := up.last()
	if got.Header.Get("Upgrade") != "echo" || got.Header.Get(tunnel.HeaderUpgrade) != "" || got.Header.Get("Authorization") != "Bearer service-token" {
		t.Errorf("upstream upgrade request headers: %v", got.Header)
	}
}

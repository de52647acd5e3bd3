package proxy

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyport/keyport/internal/kube"
	"github.com/keyport/keyport/internal/tlsca"
	"github.com/keyport/keyport/internal/tunnel"
	"github.com/keyport/keyport/internal/types"
)

// hostCAAuth verifies client certificates against one CA, as the Auth Service does.
type hostCAAuth struct{ pool *x509.CertPool }

func (a hostCAAuth) VerifyClientCert(c *x509.Certificate) (*tlsca.Identity, error) {
	return tlsca.Verify(a.pool, c, time.Now())
}
func (hostCAAuth) CheckLock(*tlsca.Identity) error { return nil }

// recordingListener remembers accepted connections so that a test can cut them.
type recordingListener struct {
	net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func (l *recordingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		l.conns = append(l.conns, c)
		l.mu.Unlock()
	}
	return c, err
}

func (l *recordingListener) cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		_ = c.Close()
	}
	l.conns = nil
}

// echoAPIServer stands in for an API server: JSON for ordinary requests, and an
// "Upgrade: echo" that answers each line it reads.
func echoAPIServer(t *testing.T) string {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Impersonate-User") == "" {
			http.Error(w, "no impersonation", http.StatusForbidden)
			return
		}
		if strings.EqualFold(r.Header.Get("Upgrade"), "echo") {
			conn, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer conn.Close()
			_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
			_ = brw.Flush()
			for {
				line, err := brw.ReadString('\n')
				if err != nil {
					return
				}
				_, _ = io.WriteString(conn, "echo: "+line)
			}
		}
		fmt.Fprintf(w, `{"path":%q,"user":%q}`, r.URL.Path, r.Header.Get("Impersonate-User"))
	}))
	t.Cleanup(srv.Close)
	kc := fmt.Sprintf("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: %s, insecure-skip-tls-verify: true}\n"+
		"users:\n- name: u\n  user: {token: t}\ncontexts:\n- name: prod\n  context: {cluster: c, user: u}\ncurrent-context: prod\n", srv.URL)
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestReverseTunnel runs both ends of a tunnel: the service dials out, the proxy finds
// the cluster's forwarder, ordinary requests and upgrades cross it, and when the
// connection is cut the service reconnects on its own.
func TestReverseTunnel(t *testing.T) {
	ca, err := tlsca.NewCA("test", "host", tlsca.AlgECDSAP256, rand.Reader, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(id tlsca.Identity, dns ...string) tls.Certificate {
		key, err := tlsca.GenerateKey(tlsca.AlgECDSAP256, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		certPEM, err := ca.Issue(rand.Reader, time.Now(), tlsca.CertRequest{PublicKey: key.Public(), Identity: id, NotAfter: time.Now().Add(time.Hour), DNSNames: dns})
		if err != nil {
			t.Fatal(err)
		}
		kp, err := tlsca.KeyPair(certPEM, key)
		if err != nil {
			t.Fatal(err)
		}
		return kp
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	registered := map[string]string{"prod": "agent-1", "stolen": "agent-1", "elsewhere": "agent-2"}
	tunnels := NewTunnels(TunnelConfig{Auth: hostCAAuth{pool}, Context: ctx, Logger: slog.New(slog.DiscardHandler),
		Registered: func(name string) (*types.KubeCluster, bool) {
			svc, ok := registered[name]
			if !ok {
				return nil, false
			}
			return types.NewKubeCluster(name, svc, nil), true
		}})
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rl := &recordingListener{Listener: raw}
	proxyCert := issue(tlsca.Identity{Username: "proxy", SystemRole: "proxy"}, tlsca.ServerName)
	l := tls.NewListener(rl, &tls.Config{Certificates: []tls.Certificate{proxyCert}, ClientAuth: tls.RequestClientCert, NextProtos: []string{"h2", "http/1.1"}})
	srv := &http.Server{Handler: tunnels}
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()

	svc, err := kube.New(kube.Config{KubeconfigFile: echoAPIServer(t), ServiceName: "agent-1", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	agentCert := issue(tlsca.Identity{Username: "agent-1", SystemRole: "kube"})
	var ups sync.WaitGroup
	ups.Add(1)
	go func() {
		defer ups.Done()
		_ = svc.RunTunnel(ctx, kube.TunnelConfig{ProxyAddr: raw.Addr().String(), Logger: slog.New(slog.DiscardHandler),
			TLS: func() (*tls.Config, error) {
				return &tls.Config{Certificates: []tls.Certificate{agentCert}, RootCAs: pool, ServerName: tlsca.ServerName}, nil
			}})
	}()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 10s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	var fw *kube.Cluster
	waitFor("tunnel registered", func() bool { var ok bool; fw, ok = tunnels.Forwarder("prod"); return ok })

	t.Run("ordinary request", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, fw.Server.String()+"/api/v1/pods", nil)
		req.Header.Set("Impersonate-User", "alice")
		resp, err := fw.Transport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(body) != `{"path":"/api/v1/pods","user":"alice"}` {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	})

	t.Run("upgrade", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, fw.Server.String()+"/api/v1/namespaces/d/pods/p/exec", nil)
		req.Header.Set("Impersonate-User", "alice")
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "echo")
		resp, err := fw.UpgradeTransport.RoundTrip(req) //nolint:bodyclose // the body is the upgraded conn, closed below
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Upgrade") != "echo" || resp.Header.Get("Connection") != "Upgrade" || resp.ProtoMajor != 1 {
			t.Fatalf("%s %d %v", resp.Proto, resp.StatusCode, resp.Header)
		}
		conn := resp.Body.(io.ReadWriteCloser)
		defer conn.Close()
		br := bufio.NewReader(conn)
		for _, word := range []string{"one", "two"} {
			if _, err := io.WriteString(conn, word+"\n"); err != nil {
				t.Fatal(err)
			}
			if line, err := br.ReadString('\n'); err != nil || line != "echo: "+word+"\n" {
				t.Fatalf("read %q %v", line, err)
			}
		}
	})

	t.Run("routes only registered clusters of the tunnel's own service", func(t *testing.T) {
		if _, ok := tunnels.Forwarder("elsewhere"); ok {
			t.Error("a cluster registered by agent-2 was routed to agent-1's tunnel")
		}
		if _, ok := tunnels.Forwarder("unregistered"); ok {
			t.Error("an unregistered cluster was routed")
		}
	})

	t.Run("reconnects after the connection drops", func(t *testing.T) {
		rl.cut()
		waitFor("old tunnel gone", func() bool { c, ok := tunnels.Forwarder("prod"); return !ok || c != fw })
		waitFor("tunnel back", func() bool { c, ok := tunnels.Forwarder("prod"); return ok && c != fw })
		fw2, _ := tunnels.Forwarder("prod")
		req, _ := http.NewRequest(http.MethodGet, fw2.Server.String()+"/version", nil)
		req.Header.Set("Impersonate-User", "bob")
		resp, err := fw2.Transport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("after reconnecting: %d", resp.StatusCode)
		}
	})

	t.Run("CloseAll ends the tunnels and refuses new ones", func(t *testing.T) {
		tunnels.CloseAll()
		waitFor("tunnel closed by CloseAll", func() bool { return len(tunnels.Connected()) == 0 })
		req := httptest.NewRequest(http.MethodGet, tunnel.Path, nil)
		req.Header.Set("Upgrade", tunnel.Protocol)
		rec := httptest.NewRecorder()
		tunnels.ServeHTTP(rec, req)
		if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "the proxy is stopping") {
			t.Fatalf("a tunnel after CloseAll: %d %s", rec.Code, rec.Body)
		}
	})

	cancel()
	waitFor("tunnel closed on shutdown", func() bool { return len(tunnels.Connected()) == 0 })
	ups.Wait()
}

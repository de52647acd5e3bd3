package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keyport/keyport/internal/audit"
	"github.com/keyport/keyport/internal/backend/sqlite"
	"github.com/keyport/keyport/internal/kube"
	"github.com/keyport/keyport/internal/tlsca"
	"github.com/keyport/keyport/internal/types"
)

// The guide's role and one identity, as in the e2e setup: what every request of a
// kubectl session through Keyport goes through.
type benchAuth struct{ id *tlsca.Identity }

func (a benchAuth) VerifyClientCert(*x509.Certificate) (*tlsca.Identity, error) { return a.id, nil }
func (a benchAuth) CheckLock(*tlsca.Identity) error                             { return nil }

type benchRoles struct{ roles []*types.Role }

func (r benchRoles) Roles([]string) []*types.Role { return r.roles }

type benchClusters struct {
	kc *types.KubeCluster
	fw *kube.Cluster
}

func (c benchClusters) KubeCluster(string) (*types.KubeCluster, bool) { return c.kc, true }
func (c benchClusters) Forwarder(string) (*kube.Cluster, bool)        { return c.fw, true }

// cannedUpstream answers every request with a small pod, without a network.
type cannedUpstream struct{}

const podJSON = `{"kind":"Pod","apiVersion":"v1","metadata":{"name":"web-0","namespace":"default"}}`

func (cannedUpstream) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Proto: "HTTP/2.0", ProtoMajor: 2, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(podJSON)), ContentLength: int64(len(podJSON)), Request: r}, nil
}

func guideRole(tb testing.TB) *types.Role {
	role := types.NewRole("example-role", types.V6, types.RoleSpec{Allow: types.RoleConditions{
		KubernetesLabels:    types.Labels{"*": {"*"}},
		KubernetesGroups:    []string{"editor"},
		KubernetesResources: []types.KubernetesResource{{Kind: "*", Namespace: "*", Name: "*"}},
	}})
	if err := role.CheckAndSetDefaults(); err != nil {
		tb.Fatal(err)
	}
	return role
}

// BenchmarkKubeHandlerGet is the whole chain for GET pod, minus TLS, HTTP/2 framing and
// the audit log's storage: what Keyport's own code costs per request.
func BenchmarkKubeHandlerGet(b *testing.B) { benchKubeHandlerGet(b, nil) }

// BenchmarkKubeHandlerGetAudited is the same with the audit log the daemon uses: SQLite
// and events.log, kube.request events queued and written in batches.
func BenchmarkKubeHandlerGetAudited(b *testing.B) {
	dir := b.TempDir()
	be, err := sqlite.New(context.Background(), sqlite.Config{Path: filepath.Join(dir, "db")})
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	al, err := audit.New(audit.Config{Backend: be, Dir: filepath.Join(dir, "log"), Node: "proxy"})
	if err != nil {
		b.Fatal(err)
	}
	defer al.Close()
	benchKubeHandlerGet(b, al)
}

func benchKubeHandlerGet(b *testing.B, al audit.Emitter) {
	id := &tlsca.Identity{Username: "alice", Roles: []string{"example-role"}}
	u, _ := url.Parse("https://127.0.0.1:6443")
	fw := &kube.Cluster{Name: "c", Labels: map[string]string{"env": "dev"}, Server: u, Transport: cannedUpstream{}, UpgradeTransport: cannedUpstream{}}
	h := NewKubeHandler(KubeConfig{
		Auth: benchAuth{id}, Clusters: benchClusters{types.NewKubeCluster("c", "", fw.Labels), fw},
		Decider: NewAccessDecider(benchRoles{[]*types.Role{guideRole(b)}}), Audit: al,
	})
	cert := &x509.Certificate{Raw: []byte("x")}
	b.ReportAllocs()
	start := processCPU(b)
	defer func() {
		if c, ok := al.(interface{ Close() error }); ok {
			_ = c.Close() // what is queued is part of the cost
		}
		b.ReportMetric(float64((processCPU(b)-start).Nanoseconds())/float64(b.N), "cpu-ns/op")
	}()
	for b.Loop() {
		r := httptest.NewRequest(http.MethodGet, "https://proxy/v1/kube/c/api/v1/namespaces/default/pods/web-0", nil)
		r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}}
		r.Header.Set("Accept", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != 200 {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}

func BenchmarkDecide(b *testing.B) {
	id := &tlsca.Identity{Username: "alice", Roles: []string{"example-role"}}
	d := NewAccessDecider(benchRoles{[]*types.Role{guideRole(b)}})
	kc := types.NewKubeCluster("c", "", map[string]string{"env": "dev"})
	r := httptest.NewRequest(http.MethodGet, "/api/v1/namespaces/default/pods/web-0", nil)
	info, err := requestInfoFactory.NewRequestInfo(r)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.Decide(id, kc, info, "", nil); err != nil {
			b.Fatal(err)
		}
	}
}

// processCPU is this process's user+system CPU time, which counts the audit writer's
// work on another core that ns/op does not.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

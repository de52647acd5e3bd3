package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/keyport/keyport/internal/audit"
	"github.com/keyport/keyport/internal/kube"
	"github.com/keyport/keyport/internal/tlsca"
	"github.com/keyport/keyport/internal/types"
)

// stalledUpstream never answers; it returns when the request is cancelled.
type stalledUpstream struct{ arrived chan struct{} }

func (u stalledUpstream) RoundTrip(r *http.Request) (*http.Response, error) {
	close(u.arrived)
	<-r.Context().Done()
	return nil, r.Context().Err()
}

// A request that ends before any response (here: the client went away; a lock or
// shutdown does the same) is audited as 499, not as a success.
func TestAuditRequestEndedBeforeResponse(t *testing.T) {
	rec := &audit.Recorder{}
	up := stalledUpstream{arrived: make(chan struct{})}
	u, _ := url.Parse("https://127.0.0.1:6443")
	fw := &kube.Cluster{Name: "c", Labels: map[string]string{"env": "dev"}, Server: u, Transport: up, UpgradeTransport: up}
	h := NewKubeHandler(KubeConfig{
		Auth: benchAuth{&tlsca.Identity{Username: "alice", Roles: []string{"example-role"}}}, Clusters: benchClusters{types.NewKubeCluster("c", "", fw.Labels), fw},
		Decider: NewAccessDecider(benchRoles{[]*types.Role{guideRole(t)}}), Audit: rec,
	})
	ctx, cancel := context.WithCancel(context.Background())
	r := httptest.NewRequestWithContext(ctx, http.MethodGet, "https://proxy/v1/kube/c/api/v1/namespaces/default/pods/web-0", nil)
	r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{{Raw: []byte("x")}}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.ServeHTTP(httptest.NewRecorder(), r)
	}()
	<-up.arrived
	cancel()
	<-done
	events := rec.Events()
	if len(events) != 1 {
		t.Fatalf("%d events, want 1", len(events))
	}
	e := events[0]
	if e.Type != audit.KubeRequest || e.Success || e.Fields["status"] != statusClientClosedRequest {
		t.Fatalf("event = %+v, want kube.request, success false, status 499", e)
	}
}

package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/keyport/keyport/internal/audit"
	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/kube"
	"github.com/keyport/keyport/internal/tlsca"
	"github.com/keyport/keyport/internal/types"
)

// refusalAuth knows one good certificate (Raw "alice"), one host certificate (Raw
// "host"), and locks "mallory".
type refusalAuth struct{}

func (refusalAuth) VerifyClientCert(c *x509.Certificate) (*tlsca.Identity, error) {
	switch string(c.Raw) {
	case "alice":
		return &tlsca.Identity{Username: "alice", Roles: []string{"example-role"}}, nil
	case "routed":
		return &tlsca.Identity{Username: "alice", Roles: []string{"example-role"}, KubeCluster: "other"}, nil
	case "mallory":
		return &tlsca.Identity{Username: "mallory", Roles: []string{"example-role"}}, nil
	case "reader":
		return &tlsca.Identity{Username: "rita", Roles: []string{"pods-only"}}, nil
	case "host":
		return &tlsca.Identity{Username: "node-1", SystemRole: "proxy"}, nil
	}
	return nil, errs.NotAuthenticatedf("certificate expired at 2026-01-01T00:00:00Z")
}

func (refusalAuth) CheckLock(id *tlsca.Identity) error {
	if id.Username == "mallory" {
		return errs.AccessDeniedf("access denied: user \"mallory\" is locked: incident 42")
	}
	return nil
}

// namedRoles returns the roles whose names are asked for.
type namedRoles []*types.Role

func (n namedRoles) Roles(names []string) []*types.Role {
	var out []*types.Role
	for _, r := range n {
		if slices.Contains(names, r.GetName()) {
			out = append(out, r)
		}
	}
	return out
}

// TestEveryRefusalIsAudited: every way the chain refuses a request gives one kube.request
// event with the status, the reason, the client's address and, once a certificate
// verified, the identity; and nothing reaches the API server.
func TestEveryRefusalIsAudited(t *testing.T) {
	var reached atomic.Int64
	up := countingUpstream{&reached}
	u, _ := url.Parse("https://127.0.0.1:6443")
	clusters := mapClusters{"c": &kube.Cluster{Name: "c", Labels: map[string]string{"env": "dev"}, Server: u, Transport: up, UpgradeTransport: up}}
	podsOnly := types.NewRole("pods-only", types.V7, types.RoleSpec{Allow: types.RoleConditions{
		KubernetesLabels: types.Labels{"*": {"*"}}, KubernetesGroups: []string{"viewers"},
		KubernetesResources: []types.KubernetesResource{{Kind: "pod", Namespace: "team-a", Name: "*", Verbs: []string{"get"}}},
	}})
	if err := podsOnly.CheckAndSetDefaults(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		cert   string // "" for none
		path   string
		header http.Header
		code   int
		user   string // the audited user; "" when no certificate verified
		reason string
	}{
		{"no certificate", "", "/v1/kube/c/api/v1/pods", nil, 401, "", "no client certificate"},
		{"failed authentication", "expired", "/v1/kube/c/api/v1/pods", nil, 401, "", "certificate expired"},
		{"host certificate", "host", "/v1/kube/c/api/v1/pods", nil, 403, "node-1", "host certificates cannot access Kubernetes"},
		{"locked identity", "mallory", "/v1/kube/c/api/v1/pods", nil, 403, "mallory", "is locked: incident 42"},
		{"certificate for another cluster", "routed", "/v1/kube/c/api/v1/pods", nil, 403, "alice", `this certificate is for kube cluster "other"`},
		{"unknown cluster", "alice", "/v1/kube/nope/api/v1/pods", nil, 404, "alice", `kube cluster "nope" is not registered`},
		{"malformed path", "alice", "/v1/kube/c/api/v1/../../secrets", nil, 400, "alice", "relative path segments"},
		{"impersonation refused", "alice", "/v1/kube/c/api/v1/pods", http.Header{"Impersonate-Uid": {"0"}}, 403, "alice", "Impersonate-Uid is not allowed"},
		{"impersonating a group not allowed", "alice", "/v1/kube/c/api/v1/pods", http.Header{"Impersonate-User": {"alice"}, "Impersonate-Group": {"system:masters"}}, 403, "alice", "system:masters"},
		{"RBAC refusal", "reader", "/v1/kube/c/api/v1/namespaces/kube-system/secrets", nil, 403, "rita", "secrets"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &audit.Recorder{}
			h := NewKubeHandler(KubeConfig{Auth: refusalAuth{}, Clusters: clusters, Audit: rec,
				Decider: NewAccessDecider(namedRoles{guideRole(t), podsOnly})})
			r := httptest.NewRequest(http.MethodGet, "https://proxy"+tt.path, nil)
			r.RemoteAddr = "192.0.2.7:41000"
			if tt.cert != "" {
				r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{{Raw: []byte(tt.cert)}}}
			}
			for k, v := range tt.header {
				r.Header[k] = v
			}
			before := reached.Load()
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tt.code {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.code, w.Body)
			}
			if reached.Load() != before {
				t.Fatal("the refused request reached the API server")
			}
			events := rec.Events()
			if len(events) != 1 {
				t.Fatalf("%d events, want 1: %+v", len(events), events)
			}
			e := events[0]
			reason, _ := e.Fields["reason"].(string)
			if e.Type != audit.KubeRequest || e.Success || e.Fields["status"] != tt.code || e.User != tt.user ||
				e.Fields["addr"] != "192.0.2.7:41000" || !strings.Contains(reason, tt.reason) {
				t.Fatalf("event = %+v\nwant kube.request, status %d, user %q, addr 192.0.2.7:41000, reason containing %q", e, tt.code, tt.user, tt.reason)
			}
		})
	}
}

// TestUnauthenticatedFloodIsCoalesced: past the burst, refusals from one source are
// counted, and the count is recorded, not dropped.
func TestUnauthenticatedFloodIsCoalesced(t *testing.T) {
	rec := &audit.Recorder{}
	refusals := audit.NewCoalescer(audit.CoalescerConfig{Next: rec, Burst: 3})
	h := NewKubeHandler(KubeConfig{Auth: refusalAuth{}, Clusters: mapClusters{}, Audit: rec, Refusals: refusals,
		Decider: NewAccessDecider(benchRoles{nil})})
	for range 100 {
		r := httptest.NewRequest(http.MethodGet, "https://proxy/v1/kube/c/api", nil)
		r.RemoteAddr = "198.51.100.1:5000"
		h.ServeHTTP(httptest.NewRecorder(), r)
	}
	if n := rec.Count(audit.KubeRequest); n != 3 {
		t.Fatalf("%d events before the window closed, want the burst of 3", n)
	}
	refusals.Close(t.Context())
	events := rec.Events()
	last := events[len(events)-1]
	if len(events) != 4 || last.Fields["coalesced"] != 97 || last.Fields["source"] != "198.51.100.1" {
		t.Fatalf("events = %+v, want 3 and one summary of 97 from 198.51.100.1", events)
	}
}

package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/keyport/keyport/internal/auth"
	"github.com/keyport/keyport/internal/auth/authtest"
	"github.com/keyport/keyport/internal/kube"
	"github.com/keyport/keyport/internal/tlsca"
	"github.com/keyport/keyport/internal/types"
)

// mapClusters serves several clusters, each forwarded to the same counting upstream.
type mapClusters map[string]*kube.Cluster

func (m mapClusters) KubeCluster(name string) (*types.KubeCluster, bool) {
	c, ok := m[name]
	if !ok {
		return nil, false
	}
	return types.NewKubeCluster(name, "", c.Labels), true
}
func (m mapClusters) Forwarder(name string) (*kube.Cluster, bool) { c, ok := m[name]; return c, ok }

// countingUpstream answers 200 and counts what reached it.
type countingUpstream struct{ n *atomic.Int64 }

func (u countingUpstream) RoundTrip(r *http.Request) (*http.Response, error) {
	u.n.Add(1)
	return cannedUpstream{}.RoundTrip(r)
}

// Label selector values the generator draws from: literals, '*', globs, regexes and
// trait templates, the forms SPEC section 6 allows.
var (
	selectorKeys   = []string{"env", "team", "*"}
	selectorValues = []string{"prod", "dev", "*", "pro*", "*ing", "^(dev|staging)$", "^prod.*$", "{{internal.env}}", "{{external.team}}", "{{internal.none}}"}
	clusterLabels  = []map[string]string{
		{"env": "prod", "team": "a"}, {"env": "production", "team": "b"}, {"env": "dev", "team": "a"},
		{"env": "staging"}, {"team": "b"}, {}, {"env": "qa", "team": "c"}, {"env": "prod-eu", "team": "a"},
	}
)

func randomSelector(rng *rand.Rand) types.Labels {
	if rng.IntN(4) == 0 {
		return nil
	}
	sel := types.Labels{}
	for range 1 + rng.IntN(2) {
		k := selectorKeys[rng.IntN(len(selectorKeys))]
		if k == "*" {
			sel[k] = types.Strings{"*"}
			continue
		}
		var vals types.Strings
		for range 1 + rng.IntN(2) {
			vals = append(vals, selectorValues[rng.IntN(len(selectorValues))])
		}
		sel[k] = vals
	}
	return sel
}

// TestListingAndProxyAgree generates role sets (allow and deny kubernetes_labels made of
// literals, globs, regexes and trait templates) and identities, and proves, for every
// pair of role set and cluster, that the Auth Service's listing (kube ls, tsh kube ls and
// login) calls the cluster reachable exactly when the proxy forwards a request to it.
func TestListingAndProxyAgree(t *testing.T) {
	env := authtest.New(t)
	ctx := context.Background()
	admin := auth.Actor{Identity: &tlsca.Identity{Username: "admin", SystemRole: auth.SystemAdmin}}
	var reached atomic.Int64
	up := countingUpstream{&reached}
	clusters := mapClusters{}
	for i, l := range clusterLabels {
		u, _ := url.Parse("https://127.0.0.1:6443")
		name := fmt.Sprintf("c%d", i)
		clusters[name] = &kube.Cluster{Name: name, Labels: l, Server: u, Transport: up, UpgradeTransport: up}
		if err := env.Auth.HeartbeatKubeClusters(ctx, admin, []*types.KubeCluster{types.NewKubeCluster(name, "kube-1", l)}, 0); err != nil {
			t.Fatal(err)
		}
	}
	ch := env.Auth.Cache().Subscribe()
	for len(env.Auth.KubeClusters()) != len(clusterLabels) {
		<-ch
	}
	traitSets := []map[string][]string{nil, {"env": {"dev"}, "team": {"b"}}, {"env": {"prod", "qa"}}}
	rng := rand.New(rand.NewPCG(26, 5))
	const roleSets = 150
	var agreedReachable, agreedRefused int
	for i := range roleSets {
		var roles []types.Resource
		var names []string
		for j := range 1 + rng.IntN(3) {
			spec := types.RoleSpec{Allow: types.RoleConditions{KubernetesLabels: randomSelector(rng), KubernetesGroups: []string{"g"}}}
			if rng.IntN(3) == 0 {
				spec.Deny.KubernetesLabels = randomSelector(rng)
			}
			r := types.NewRole(fmt.Sprintf("r%d-%d", i, j), types.V7, spec)
			roles = append(roles, r)
			names = append(names, r.GetName())
		}
		for _, r := range roles {
			if _, err := env.Auth.PutResource(ctx, admin, r, auth.Upsert, 0); err != nil {
				t.Fatalf("role %d: %v", i, err)
			}
		}
		waitForRoles(t, env.Auth, names)
		id := &tlsca.Identity{Username: fmt.Sprintf("u%d", i), Roles: names, Traits: traitSets[i%len(traitSets)]}
		views, err := env.Auth.KubeClustersFor(id)
		if err != nil {
			t.Fatal(err)
		}
		h := NewKubeHandler(KubeConfig{Auth: fixedAuth{env.Auth, id}, Clusters: clusters, Decider: NewAccessDecider(env.Auth.Cache())})
		for _, v := range views {
			name := v.Cluster.GetName()
			before := reached.Load()
			r := httptest.NewRequest(http.MethodGet, "https://proxy/v1/kube/"+name+"/api/v1/namespaces/default/pods/web-0", nil)
			r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{{Raw: []byte("x")}}}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			served := reached.Load() > before
			if served != v.Reachable {
				t.Fatalf("roles %v, traits %v, cluster %s %v: listing says reachable=%v, proxy answered %d: %s",
					describe(env.Auth, names), id.Traits, name, clusterLabels[slices.Index(clusterNames(), name)], v.Reachable, w.Code, w.Body)
			}
			if served {
				agreedReachable++
			} else {
				agreedRefused++
			}
		}
	}
	t.Logf("%d role sets × %d clusters: %d reachable, %d refused, all agreed", roleSets, len(clusterLabels), agreedReachable, agreedRefused)
	if agreedReachable == 0 || agreedRefused == 0 {
		t.Fatal("the generator made only one kind of answer")
	}
}

func clusterNames() []string {
	var out []string
	for i := range clusterLabels {
		out = append(out, fmt.Sprintf("c%d", i))
	}
	return out
}

func describe(a *auth.Server, names []string) string {
	var s string
	for _, r := range a.Cache().Roles(names) {
		s += fmt.Sprintf("%s{allow %v deny %v} ", r.GetName(), r.Spec.Allow.KubernetesLabels, r.Spec.Deny.KubernetesLabels)
	}
	return s
}

// fixedAuth verifies every certificate as id, with the Auth Service's locks.
type fixedAuth struct {
	a  *auth.Server
	id *tlsca.Identity
}

func (f fixedAuth) VerifyClientCert(*x509.Certificate) (*tlsca.Identity, error) { return f.id, nil }
func (f fixedAuth) CheckLock(id *tlsca.Identity) error                          { return f.a.CheckLock(id) }

func waitForRoles(t *testing.T, a *auth.Server, names []string) {
	t.Helper()
	ch := a.Cache().Subscribe()
	for len(a.Cache().Roles(names)) != len(names) {
		<-ch
	}
}

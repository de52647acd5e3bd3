package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
	"github.com/keyport/keyport/internal/clock"
	"github.com/keyport/keyport/internal/identityfile"
	"github.com/keyport/keyport/internal/testenv"
	"github.com/keyport/keyport/internal/tlsca"
	"github.com/keyport/keyport/internal/types"
)

// kubeHTTP is a raw HTTP client for the proxy's Kubernetes path with a given identity,
// for requests kubectl would never send.
func kubeHTTP(t *testing.T, id *identityfile.Identity, hostCA []byte) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(hostCA)
	tc := &tls.Config{RootCAs: pool, ServerName: "kube." + testenv.ClusterName}
	if id != nil {
		kp, err := id.TLSCertificate()
		if err != nil {
			t.Fatal(err)
		}
		tc.Certificates = []tls.Certificate{kp}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true}, Timeout: 30 * time.Second}
}

type attack struct {
	name    string
	id      *identityfile.Identity // default: alice
	method  string
	path    string // after https://proxy
	rawPath bool   // send path bytes as they are (no client-side cleaning)
	headers map[string][]string
	code    int
	msg     string // substring of the Status message
}

// TestAttacks sends requests Keyport must refuse and proves, from the API server's own
// audit log, that none of them reached it.
func TestAttacks(t *testing.T) {
	ctx := context.Background()
	s := newKubeSetup(t)
	admin := s.admin
	// Roles for the cases: a deny, a namespace restriction, a get-only role, a role for
	// another environment.
	createResource(t, admin, types.NewRole("no-secrets", types.V7, types.RoleSpec{Deny: types.RoleConditions{
		KubernetesResources: []types.KubernetesResource{{Kind: "secret", Namespace: "*", Name: "*", Verbs: []string{"*"}}}}}))
	createResource(t, admin, types.NewRole("default-only", types.V7, types.RoleSpec{Allow: types.RoleConditions{
		KubernetesLabels: types.Labels{"*": {"*"}}, KubernetesGroups: []string{"editor"},
		KubernetesResources: []types.KubernetesResource{{Kind: "pod", Namespace: "default", Name: "*", Verbs: []string{"*"}}}}}))
	createResource(t, admin, types.NewRole("get-only", types.V7, types.RoleSpec{Allow: types.RoleConditions{
		KubernetesLabels: types.Labels{"*": {"*"}}, KubernetesGroups: []string{"editor"},
		KubernetesResources: []types.KubernetesResource{{Kind: "pod", Namespace: "*", Name: "*", Verbs: []string{"get", "list"}}}}}))
	createResource(t, admin, types.NewRole("prod-only", types.V7, types.RoleSpec{Allow: types.RoleConditions{
		KubernetesLabels: types.Labels{"env": {"prod"}}, KubernetesGroups: []string{"editor"}}}))
	users := map[string][]string{
		"alice": {"example-role"}, "denied": {"example-role", "no-secrets"}, "nsuser": {"default-only"},
		"getter": {"get-only"}, "produser": {"prod-only"}, "locked": {"example-role"},
	}
	ids := map[string]*identityfile.Identity{}
	for u, roles := range users {
		if _, err := admin.CreateUser(ctx, &pb.CreateUserRequest{Name: u, Roles: roles}); err != nil {
			t.Fatal(err)
		}
		ids[u] = signIdentity(t, admin, u)
	}
	if _, err := admin.CreateLock(ctx, &pb.CreateLockRequest{User: "locked", Message: "incident 7"}); err != nil {
		t.Fatal(err)
	}
	hostCA := ids["alice"].HostCAs[0]

	// A certificate from a foreign CA, and an expired one from the real user CA.
	foreignCA, err := tlsca.NewCA(testenv.ClusterName, "user", "", clock.Rand, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ids["foreign"] = issueWith(t, foreignCA, tlsca.Identity{Username: "alice", Roles: []string{"example-role"}}, time.Now().Add(time.Hour), hostCA)
	ids["expired"] = issueWith(t, s.env.Process.Auth.UserCA(), tlsca.Identity{Username: "alice", Roles: []string{"example-role"}}, time.Now().Add(-time.Minute), hostCA)
	ids["routed"] = issueWith(t, s.env.Process.Auth.UserCA(), tlsca.Identity{Username: "alice", Roles: []string{"example-role"}, KubeCluster: "other-cluster"}, time.Now().Add(time.Hour), hostCA)

	base := "/v1/kube/" + guideCluster
	pods := base + "/api/v1/namespaces/default/pods"
	h := func(kv ...string) map[string][]string {
		m := map[string][]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = append(m[kv[i]], kv[i+1])
		}
		return m
	}
	attacks := []attack{
		{name: "impersonate system:admin", path: pods, headers: h("Impersonate-User", "system:admin"), code: 403, msg: "system:admin"},
		{name: "impersonate group system:masters", path: pods, headers: h("Impersonate-User", "alice", "Impersonate-Group", "system:masters"), code: 403, msg: "system:masters"},
		{name: "lower-case impersonation header", path: pods, headers: h("impersonate-user", "system:admin"), code: 403, msg: "system:admin"},
		{name: "duplicated Impersonate-User", path: pods, headers: h("Impersonate-User", "alice", "Impersonate-User", "system:admin"), code: 403, msg: "more than one Impersonate-User"},
		{name: "Impersonate-Uid", path: pods, headers: h("Impersonate-Uid", "1234"), code: 403, msg: "Impersonate-Uid is not allowed"},
		{name: "Impersonate-Extra-scopes", path: pods, headers: h("Impersonate-Extra-Scopes", "view"), code: 403, msg: "Impersonate-Extra-* headers are not allowed"},
		{name: "group without user", path: pods, headers: h("Impersonate-Group", "editor"), code: 403, msg: "Impersonate-Group without Impersonate-User"},
		{name: "--as a user outside the set", path: pods, headers: h("Impersonate-User", "bob"), code: 403, msg: "bob"},
		{name: "no client certificate", id: &identityfile.Identity{}, path: pods, code: 401, msg: "no client certificate"},
		{name: "foreign CA", id: ids["foreign"], path: pods, code: 401, msg: "was not issued by this cluster's user CA"},
		{name: "expired certificate", id: ids["expired"], path: pods, code: 401, msg: "expired at"},
		{name: "locked user", id: ids["locked"], path: pods, code: 403, msg: "incident 7"},
		{name: "labels no role matches", id: ids["produser"], path: pods, code: 403, msg: guideCluster},
		{name: "deny overrides allow", id: ids["denied"], path: base + "/api/v1/namespaces/default/secrets", code: 403, msg: "no-secrets"},
		{name: "exec with only get", id: ids["getter"], method: "POST", path: pods + "/web-0/exec?command=id&stdout=true", code: 403, msg: "exec"},
		{name: "pods proxy with only get", id: ids["getter"], path: pods + "/web-0/proxy/", code: 403, msg: ""},
		{name: "services proxy outside namespace", id: ids["nsuser"], path: base + "/api/v1/namespaces/kube-system/services/dns/proxy/", code: 403, msg: ""},
		{name: "dot-dot to another cluster", path: base + "/../other/api/v1/pods", rawPath: true, code: 400, msg: "relative path segments"},
		{name: "escaped dot-dot", path: base + "/api/v1/namespaces/%2e%2e/pods", rawPath: true, code: 400, msg: "escaped characters"},
		{name: "escaped slash", path: base + "/api/v1/namespaces/default%2Fpods", rawPath: true, code: 400, msg: "escaped characters"},
		{name: "double slash", path: base + "//api/v1/pods", rawPath: true, code: 400, msg: "empty path segments"},
		{name: "unknown cluster", path: "/v1/kube/nope/api/v1/pods", code: 404, msg: "not registered"},
		{name: "certificate routed to another cluster", id: ids["routed"], path: pods, code: 403, msg: `for kube cluster "other-cluster"`},
		{name: "namespace-restricted role, other namespace", id: ids["nsuser"], path: base + "/api/v1/namespaces/kube-system/pods", code: 403, msg: "kube-system"},
	}
	proxy := "https://" + s.env.WebAddr
	for i, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			id := a.id
			if id == nil {
				id = ids["alice"]
			}
			if id.Key == nil {
				id = nil
			}
			method := a.method
			if method == "" {
				method = http.MethodGet
			}
			req, err := http.NewRequest(method, proxy+"/", nil)
			if err != nil {
				t.Fatal(err)
			}
			// Opaque keeps the path bytes exactly as written: no client-side cleaning.
			req.URL.Opaque = "//" + s.env.WebAddr + a.path
			if q := strings.IndexByte(a.path, '?'); q >= 0 {
				req.URL.Opaque = "//" + s.env.WebAddr + a.path[:q]
				req.URL.RawQuery = a.path[q+1:]
			}
			for k, vs := range a.headers {
				req.Header[k] = vs // as sent: not canonicalised by the client
			}
			req.Header.Set("User-Agent", fmt.Sprintf("keyport-attack-%02d", i))
			resp, err := kubeHTTP(t, id, hostCA).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			var st struct {
				Kind    string `json:"kind"`
				Message string `json:"message"`
				Code    int    `json:"code"`
			}
			_ = json.Unmarshal(body, &st)
			if resp.StatusCode != a.code || st.Kind != "Status" || st.Code != a.code || !strings.Contains(st.Message, a.msg) {
				t.Errorf("got %d %s, want %d Status with %q", resp.StatusCode, body, a.code, a.msg)
			}
		})
	}

	// A client Authorization header is removed; the request goes on as alice.
	req, _ := http.NewRequest(http.MethodGet, proxy+pods, nil)
	req.Header.Set("Authorization", "Bearer stolen-admin-token")
	req.Header.Set("User-Agent", "keyport-attack-bearer")
	resp, err := kubeHTTP(t, ids["alice"], hostCA).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("request with a client bearer token: %d", resp.StatusCode)
	}

	// Filtering: a namespace-restricted user lists and watches pods across namespaces and
	// sees only default's.
	nsClient := kubeHTTP(t, ids["nsuser"], hostCA)
	resp, err = nsClient.Get(proxy + base + "/api/v1/pods")
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Items []struct {
			Metadata struct{ Namespace, Name string } `json:"metadata"`
		} `json:"items"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(list.Items) != 1 || list.Items[0].Metadata.Namespace != "default" {
		t.Errorf("filtered list: %d %+v", resp.StatusCode, list.Items)
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	wreq, _ := http.NewRequestWithContext(wctx, http.MethodGet, proxy+base+"/api/v1/pods?watch=true", nil)
	wresp, err := nsClient.Do(wreq)
	if err != nil {
		t.Fatal(err)
	}
	// The initial ADDED events replay current pods; then a new pod in kube-system must
	// not show, and one in default must.
	if err := s.kube.CreatePod(ctx, "kube-system", "dns-1"); err != nil {
		t.Fatal(err)
	}
	if err := s.kube.CreatePod(ctx, "default", "web-1"); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(wresp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	seen := map[string]bool{}
	for sc.Scan() && !seen["default/web-1"] {
		var ev struct {
			Object struct {
				Metadata struct{ Namespace, Name string } `json:"metadata"`
			} `json:"object"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("bad watch event %q: %v", sc.Text(), err)
		}
		seen[ev.Object.Metadata.Namespace+"/"+ev.Object.Metadata.Name] = true
	}
	cancel()
	wresp.Body.Close()
	for k := range seen {
		if !strings.HasPrefix(k, "default/") {
			t.Errorf("watch leaked an event for %s", k)
		}
	}
	if !seen["default/web-1"] {
		t.Errorf("watch did not deliver default/web-1: %v", seen)
	}

	// Nothing refused reached the API server; the bearer request reached it as alice.
	var events []kubeAudit
	waitUntil(t, 10*time.Second, func() bool {
		events = auditEvents(t, s)
		for _, e := range events {
			if e.UserAgent == "keyport-attack-bearer" {
				return true
			}
		}
		return false
	})
	for _, e := range events {
		if strings.HasPrefix(e.UserAgent, "keyport-attack-") && e.UserAgent != "keyport-attack-bearer" {
			t.Errorf("a refused request reached the API server: %s %s", e.UserAgent, e.RequestURI)
		}
		if e.UserAgent == "keyport-attack-bearer" && (e.ImpersonatedUser == nil || e.ImpersonatedUser.Username != "alice") {
			t.Errorf("bearer request reached the API server as %+v", e.ImpersonatedUser)
		}
	}
	checkRefusalsAudited(t, s, attacks)
}

// checkRefusalsAudited proves from `tctl audit ls --format=json` that every attack was
// recorded by Keyport as a refused kube.request with its status and reason.
func checkRefusalsAudited(t *testing.T, s *kubeSetup, attacks []attack) {
	t.Helper()
	var missing []attack
	// The audit log writes in batches: wait for the last ones to land.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		events := auditJSON(t, s.env.ConfigPath(), "--type=kube.request", "--limit=5000")
		missing = missing[:0]
		for _, a := range attacks {
			if !slices.ContainsFunc(events, func(e map[string]any) bool { return isRefusal(e, a.code, a.msg) }) {
				missing = append(missing, a)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
	}
	for _, a := range missing {
		t.Errorf("%s: no refused kube.request event with status %d and reason %q in tctl audit ls", a.name, a.code, a.msg)
	}
}

// isRefusal reports whether e is a refused kube.request with status code, a reason
// containing msg and the client's loopback address.
func isRefusal(e map[string]any, code int, msg string) bool {
	f, _ := e["fields"].(map[string]any)
	reason, _ := f["reason"].(string)
	status, _ := f["status"].(float64)
	addr, _ := f["addr"].(string)
	return e["success"] == false && int(status) == code && strings.Contains(reason, msg) && strings.HasPrefix(addr, "127.0.0.1:")
}

type kubeAudit struct {
	UserAgent        string
	RequestURI       string
	ImpersonatedUser *struct{ Username string }
}

func auditEvents(t *testing.T, s *kubeSetup) []kubeAudit {
	t.Helper()
	evs, err := s.kube.AuditEvents()
	if err != nil {
		t.Fatal(err)
	}
	out := make([]kubeAudit, 0, len(evs))
	for _, e := range evs {
		k := kubeAudit{UserAgent: e.UserAgent, RequestURI: e.RequestURI}
		if e.ImpersonatedUser != nil {
			k.ImpersonatedUser = &struct{ Username string }{e.ImpersonatedUser.Username}
		}
		out = append(out, k)
	}
	return out
}

// issueWith makes an identity signed by ca directly (for certificates the Auth Service
// would never issue: foreign, expired, routed elsewhere).
func issueWith(t *testing.T, ca *tlsca.CA, id tlsca.Identity, notAfter time.Time, hostCA []byte) *identityfile.Identity {
	t.Helper()
	key, err := tlsca.GenerateKey("", clock.Rand)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if notAfter.Before(now) {
		now = notAfter.Add(-time.Hour)
	}
	certPEM, err := ca.Issue(clock.Rand, now, tlsca.CertRequest{PublicKey: key.Public(), Identity: id, NotAfter: notAfter})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tlsca.ParseCertPEM(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &identityfile.Identity{Key: key, CertPEM: certPEM, Cert: cert, HostCAs: [][]byte{hostCA}}
}

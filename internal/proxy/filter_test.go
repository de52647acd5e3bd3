package proxy

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/kube"
	"github.com/keyport/keyport/internal/tlsca"
	"github.com/keyport/keyport/internal/types"
)

// pagedUpstream serves pods the way the API server pages them: limit, and a continue
// token that is base64 JSON naming the last key read; a Table when asked for one.
type pagedUpstream struct {
	pods    []string // namespace/name, in key order
	reached *atomic.Int64
	accepts *[]string
}

func (u pagedUpstream) RoundTrip(r *http.Request) (*http.Response, error) {
	u.reached.Add(1)
	*u.accepts = append(*u.accepts, r.Header.Get("Accept"))
	q := r.URL.Query()
	start := 0
	if c := q.Get("continue"); c != "" {
		raw, err := base64.RawURLEncoding.DecodeString(c)
		var tok struct{ Start string }
		if err != nil || json.Unmarshal(raw, &tok) != nil {
			return jsonResponse(r, 400, `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"continue key is not valid","code":400}`), nil
		}
		start = slices.Index(u.pods, tok.Start) + 1
	}
	limit := len(u.pods)
	if l, err := strconv.Atoi(q.Get("limit")); err == nil && l > 0 {
		limit = l
	}
	end := min(start+limit, len(u.pods))
	meta := map[string]any{"resourceVersion": "42"}
	if end < len(u.pods) {
		tok, _ := json.Marshal(map[string]string{"Start": u.pods[end-1]})
		meta["continue"] = base64.RawURLEncoding.EncodeToString(tok)
		meta["remainingItemCount"] = len(u.pods) - end
	}
	table := strings.Contains(r.Header.Get("Accept"), "as=Table")
	var entries []any
	for _, p := range u.pods[start:end] {
		ns, name, _ := strings.Cut(p, "/")
		obj := map[string]any{"kind": "Pod", "apiVersion": "v1", "metadata": map[string]any{"namespace": ns, "name": name}}
		if table {
			obj["kind"], obj["apiVersion"] = "PartialObjectMetadata", "meta.k8s.io/v1"
			entries = append(entries, map[string]any{"cells": []any{name, "1/1", "Running"}, "object": obj})
		} else {
			entries = append(entries, obj)
		}
	}
	body := map[string]any{"kind": "PodList", "apiVersion": "v1", "metadata": meta, "items": entries}
	if table {
		body = map[string]any{"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "rows": entries,
			"columnDefinitions": []any{map[string]any{"name": "Name"}, map[string]any{"name": "Ready"}, map[string]any{"name": "Status"}}}
	}
	b, _ := json.Marshal(body)
	return jsonResponse(r, 200, string(b)), nil
}

func jsonResponse(r *http.Request, code int, body string) *http.Response {
	return &http.Response{StatusCode: code, Proto: "HTTP/2.0", ProtoMajor: 2, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)), Request: r}
}

// twoUsers verifies the certificate "alice" and "bob", both restricted to team-a.
type twoUsers struct{}

func (twoUsers) VerifyClientCert(c *x509.Certificate) (*tlsca.Identity, error) {
	switch string(c.Raw) {
	case "alice", "bob":
		return &tlsca.Identity{Username: string(c.Raw), Roles: []string{"team-a"}}, nil
	case "admin":
		return &tlsca.Identity{Username: "admin", Roles: []string{"example-role"}}, nil
	}
	return nil, errs.NotAuthenticatedf("unknown certificate")
}
func (twoUsers) CheckLock(*tlsca.Identity) error { return nil }

type pagingSetup struct {
	h       *KubeHandler
	reached atomic.Int64
	accepts []string
}

func newPagingSetup(t *testing.T) *pagingSetup {
	t.Helper()
	s := &pagingSetup{}
	up := pagedUpstream{pods: []string{"default/web-0", "kube-system/dns-0", "team-a/a-0", "team-b/b-0", "team-a/a-1", "team-b/b-1"},
		reached: &s.reached, accepts: &s.accepts}
	u, _ := url.Parse("https://127.0.0.1:6443")
	clusters := mapClusters{"c": &kube.Cluster{Name: "c", Labels: map[string]string{"env": "dev"}, Server: u, Transport: up, UpgradeTransport: up}}
	teamA := types.NewRole("team-a", types.V7, types.RoleSpec{Allow: types.RoleConditions{
		KubernetesLabels: types.Labels{"*": {"*"}}, KubernetesGroups: []string{"viewers"},
		KubernetesResources: []types.KubernetesResource{{Kind: "pod", Namespace: "team-a", Name: "*", Verbs: []string{"get", "list", "watch"}}},
	}})
	if err := teamA.CheckAndSetDefaults(); err != nil {
		t.Fatal(err)
	}
	s.h = NewKubeHandler(KubeConfig{Auth: twoUsers{}, Clusters: clusters, Decider: NewAccessDecider(namedRoles{teamA, guideRole(t)})})
	return s
}

func (s *pagingSetup) get(cert, query, accept string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodGet, "https://proxy/v1/kube/c/api/v1/pods?"+query, nil)
	r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{{Raw: []byte(cert)}}}
	if accept != "" {
		r.Header.Set("Accept", accept)
	}
	w := httptest.NewRecorder()
	s.h.ServeHTTP(w, r)
	return w
}

var hidden = []string{"web-0", "dns-0", "b-0", "b-1", "default", "kube-system", "team-b"}

// leaks returns what of hidden a page shows, in its body or inside its continue token.
func leaks(t *testing.T, body []byte) []string {
	t.Helper()
	var page struct {
		Metadata map[string]any `json:"metadata"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		t.Fatalf("page %s: %v", body, err)
	}
	var out []string
	if _, ok := page.Metadata["remainingItemCount"]; ok {
		out = append(out, "remainingItemCount")
	}
	text := string(body)
	if c, _ := page.Metadata["continue"].(string); c != "" {
		for _, enc := range []*base64.Encoding{base64.RawURLEncoding, base64.URLEncoding, base64.StdEncoding, base64.RawStdEncoding} {
			if raw, err := enc.DecodeString(strings.TrimPrefix(c, sealedPrefix)); err == nil {
				text += string(raw)
			}
		}
	}
	for _, h := range hidden {
		if strings.Contains(text, h) {
			out = append(out, h)
		}
	}
	return out
}

// TestFilteredPagination: paging a filtered list one item at a time shows every visible
// pod and nothing of the hidden ones: no name, no count, no token that decodes to one.
// Empty pages still carry a token, so a pager goes on to the end.
func TestFilteredPagination(t *testing.T) {
	for _, accept := range []string{"application/json", "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"} {
		t.Run(accept, func(t *testing.T) {
			s := newPagingSetup(t)
			var seen []string
			cont := ""
			for page := 0; ; page++ {
				if page > 10 {
					t.Fatal("the pager does not end")
				}
				q := "limit=1"
				if cont != "" {
					q += "&continue=" + url.QueryEscape(cont)
				}
				w := s.get("alice", q, accept)
				if w.Code != 200 {
					t.Fatalf("page %d: %d %s", page, w.Code, w.Body)
				}
				body := w.Body.Bytes()
				if l := leaks(t, body); len(l) > 0 {
					t.Fatalf("page %d leaks %v: %s", page, l, body)
				}
				var list struct {
					Metadata struct{ Continue string } `json:"metadata"`
					Items    []objectMeta              `json:"items"`
					Rows     []tableRow                `json:"rows"`
					Columns  []any                     `json:"columnDefinitions"`
				}
				if err := json.Unmarshal(body, &list); err != nil {
					t.Fatal(err)
				}
				for _, it := range list.Items {
					seen = append(seen, it.Metadata.Namespace+"/"+it.Metadata.Name)
				}
				for _, r := range list.Rows {
					seen = append(seen, r.Object.Metadata.Namespace+"/"+r.Object.Metadata.Name)
				}
				if strings.Contains(accept, "Table") && len(list.Columns) != 3 {
					t.Fatalf("page %d lost the table's columns: %s", page, body)
				}
				if cont = list.Metadata.Continue; cont == "" {
					break
				}
				if !strings.HasPrefix(cont, sealedPrefix) {
					t.Fatalf("page %d: the API server's own token went out: %q", page, cont)
				}
			}
			if !slices.Equal(seen, []string{"team-a/a-0", "team-a/a-1"}) {
				t.Fatalf("listed %v, want team-a/a-0 and team-a/a-1", seen)
			}
			if strings.Contains(accept, "Table") && !strings.Contains(s.accepts[0], "as=Table") {
				t.Fatalf("the API server was asked for %q, not a table", s.accepts[0])
			}
		})
	}
}

// TestContinueTokenRefusals: a changed token, another identity's, one for another path,
// and the API server's own token on a filtered list are refused with a 400 Status before
// anything reaches the API server.
func TestContinueTokenRefusals(t *testing.T) {
	s := newPagingSetup(t)
	w := s.get("alice", "limit=1", "")
	var page struct {
		Metadata struct{ Continue string } `json:"metadata"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &page); err != nil || page.Metadata.Continue == "" {
		t.Fatalf("no continue token: %v %s", err, w.Body)
	}
	token := page.Metadata.Continue
	raw, _ := json.Marshal(map[string]string{"Start": "kube-system/dns-0"})
	tampered := []byte(token)
	tampered[len(tampered)-3] ^= 1
	tests := map[string]struct{ cert, token string }{
		"changed":          {"alice", string(tampered)},
		"another identity": {"bob", token},
		"the API server's": {"alice", base64.RawURLEncoding.EncodeToString(raw)},
		"garbage":          {"alice", "kp1.!!!"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			before := s.reached.Load()
			w := s.get(tt.cert, "limit=1&continue="+url.QueryEscape(tt.token), "")
			if w.Code != 400 || !bytes.Contains(w.Body.Bytes(), []byte(`"kind":"Status"`)) || !strings.Contains(w.Body.String(), "continue token is not valid") {
				t.Fatalf("%d %s, want a 400 Status", w.Code, w.Body)
			}
			if s.reached.Load() != before {
				t.Fatal("the refused request reached the API server")
			}
		})
	}
	// A token is bound to the identity, the cluster and the path it was made for.
	sealer := newContinueSealer([]byte("k"))
	sealed, err := sealer.seal("raw", "alice\x00c\x00/api/v1/pods")
	if err != nil {
		t.Fatal(err)
	}
	for _, ad := range []string{"alice\x00c\x00/api/v1/secrets", "alice\x00d\x00/api/v1/pods", "bob\x00c\x00/api/v1/pods"} {
		if _, err := sealer.open(sealed, ad); err == nil {
			t.Errorf("a token for alice, c, /api/v1/pods opened as %q", ad)
		}
	}
	if got, err := sealer.open(sealed, "alice\x00c\x00/api/v1/pods"); err != nil || got != "raw" {
		t.Errorf("open = %q, %v", got, err)
	}
	// An unfiltered caller's tokens are the API server's own, untouched.
	w = s.get("admin", "limit=1", "")
	if err := json.Unmarshal(w.Body.Bytes(), &page); err != nil || strings.HasPrefix(page.Metadata.Continue, sealedPrefix) || page.Metadata.Continue == "" {
		t.Fatalf("unfiltered page: %v %s", err, w.Body)
	}
	if !strings.Contains(w.Body.String(), "remainingItemCount") {
		t.Fatalf("unfiltered page lost remainingItemCount: %s", w.Body)
	}
}

func TestAcceptJSON(t *testing.T) {
	for in, want := range map[string]string{
		"": "application/json",
		"application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
		"application/vnd.kubernetes.protobuf,application/json":                                                            "application/json",
		"application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1":                             "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
		"application/yaml":                   "application/json",
		"*/*":                                "application/json",
		"application/json, application/yaml": "application/json",
	} {
		if got := acceptJSON(in); got != want {
			t.Errorf("acceptJSON(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestWatchTableEvents: a watch of tables (kubectl get -w) keeps the allowed rows of
// each event and drops events with none.
func TestWatchTableEvents(t *testing.T) {
	ev := func(ns, name string) string {
		return fmt.Sprintf(`{"type":"ADDED","object":{"kind":"Table","apiVersion":"meta.k8s.io/v1","columnDefinitions":[{"name":"Name"}],"rows":[{"cells":[%q],"object":{"metadata":{"namespace":%q,"name":%q}}}]}}`+"\n", name, ns, name)
	}
	src := ev("team-a", "a-0") + ev("team-b", "b-0") + `{"type":"BOOKMARK","object":{"kind":"Pod","metadata":{"resourceVersion":"9"}}}` + "\n"
	f := newWatchFilter(io.NopCloser(strings.NewReader(src)), func(ns, _ string) bool { return ns == "team-a" })
	out, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "a-0") || !strings.Contains(lines[0], "columnDefinitions") || strings.Contains(string(out), "b-0") || !strings.Contains(lines[1], "BOOKMARK") {
		t.Fatalf("filtered watch:\n%s", out)
	}
}

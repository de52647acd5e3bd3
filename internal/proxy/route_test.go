package proxy

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestSplitKubePath(t *testing.T) {
	tests := []struct {
		raw, cluster, rest, err string
	}{
		{"/v1/kube/c/api/v1/pods", "c", "/api/v1/pods", ""},
		{"/v1/kube/c", "c", "/", ""},
		{"/v1/kube/c/", "c", "/", ""},
		{"/v1/kube//api", "", "", "no kube cluster"},
		{"/v1/kube/c/../d/api", "", "", "relative path segments"},
		{"/v1/kube/../x", "", "", "relative path segments"},
		{"/v1/kube/c/./api", "", "", "relative path segments"},
		{"/v1/kube/c/api//v1", "", "", "empty path segments"},
		{"/v1/kube/c/api/%2e%2e/x", "", "", "escaped characters"},
		{"/v1/kube/c/api/a%2Fb", "", "", "escaped characters"},
		{"/v2/kube/c/api", "", "", "not a Kubernetes path"},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			u, err := url.Parse(tt.raw)
			if err != nil {
				t.Fatal(err)
			}
			c, rest, err := splitKubePath(u.Path, u.RawPath)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || c != tt.cluster || rest != tt.rest {
				t.Fatalf("= %q %q %v, want %q %q", c, rest, err, tt.cluster, tt.rest)
			}
		})
	}
}

// FuzzSplitKubePath: whatever a client sends, an accepted path names one cluster and an
// API path with no relative or empty segments, so the API server cannot resolve it to
// anything else.
func FuzzSplitKubePath(f *testing.F) {
	for _, s := range []string{"/v1/kube/c/api/v1/pods", "/v1/kube/c/../d", "/v1/kube/c/%2e%2e/", "/v1/kube/c//x", "/v1/kube/c/api/v1/namespaces/d/pods/p/exec?x=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := url.Parse(raw)
		if err != nil {
			return
		}
		c, rest, err := splitKubePath(u.Path, u.RawPath)
		if err != nil {
			return
		}
		if c == "" || strings.Contains(c, "/") || c == "." || c == ".." {
			t.Fatalf("bad cluster %q from %q", c, raw)
		}
		if !strings.HasPrefix(rest, "/") || strings.Contains(rest, "//") {
			t.Fatalf("bad rest %q from %q", rest, raw)
		}
		for _, seg := range strings.Split(rest, "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("relative segment in %q from %q", rest, raw)
			}
		}
	})
}

// FuzzRequestInfo: the request parser and the impersonation header reader never panic,
// and a request they accept carries no impersonation header Keyport refuses.
func FuzzRequestInfo(f *testing.F) {
	f.Add("GET", "/api/v1/namespaces/default/pods/web-0/exec", "Impersonate-User", "alice")
	f.Add("POST", "/apis/apps/v1/namespaces/x/deployments", "Impersonate-Uid", "1")
	f.Add("GET", "/api/v1/pods?watch=true", "Impersonate-Extra-Scopes", "a")
	f.Fuzz(func(t *testing.T, method, path, hk, hv string) {
		r, err := http.NewRequest(method, "https://x"+path, nil)
		if err != nil {
			return
		}
		if _, err := requestInfoFactory.NewRequestInfo(r); err != nil {
			return
		}
		h := http.Header{}
		h.Add(hk, hv)
		if _, _, err := clientImpersonation(h); err == nil {
			ck := http.CanonicalHeaderKey(hk)
			if ck == "Impersonate-Uid" || strings.HasPrefix(ck, "Impersonate-Extra-") {
				t.Fatalf("accepted %q", hk)
			}
		}
	})
}

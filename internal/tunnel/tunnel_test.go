package tunnel

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestClusters: a tunnel must name its clusters, and only with cluster names.
func TestClusters(t *testing.T) {
	req := func(h string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, Path, nil)
		r.Header.Set(HeaderClusters, h)
		return r
	}
	tests := []struct {
		name   string
		header string
		want   string
	}{
		{"no clusters", "", "must name its kube clusters"},
		{"path in name", "a/b", "is not a kube cluster name"},
		{"dot dot", "..", "is not a kube cluster name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Clusters(req(tt.header))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
	if got, err := Clusters(req(" a, b,a ,")); err != nil || strings.Join(got, ",") != "a,b" {
		t.Fatalf("names = %v %v", got, err)
	}
}

// TestCheckRequest: GET with Upgrade: keyport-tunnel over HTTP/1.1, nothing else.
func TestCheckRequest(t *testing.T) {
	ok := httptest.NewRequest(http.MethodGet, Path, nil)
	ok.Header.Set("Upgrade", Protocol)
	if err := CheckRequest(ok); err != nil {
		t.Fatalf("a tunnel request was refused: %v", err)
	}
	post := ok.Clone(ok.Context())
	post.Method = http.MethodPost
	h2 := ok.Clone(ok.Context())
	h2.ProtoMajor = 2
	other := ok.Clone(ok.Context())
	other.Header.Set("Upgrade", "websocket")
	for name, r := range map[string]*http.Request{"POST": post, "HTTP/2": h2, "another upgrade": other} {
		if err := CheckRequest(r); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

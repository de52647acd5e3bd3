package e2e

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
)

// TestLockEndsStreams: a lock made while a watch is open ends the watch at once, and
// the proxy's metrics count what went through.
func TestLockEndsStreams(t *testing.T) {
	ctx := context.Background()
	s := newKubeSetup(t)
	if _, err := s.admin.CreateUser(ctx, &pb.CreateUserRequest{Name: "watcher", Roles: []string{"example-role"}}); err != nil {
		t.Fatal(err)
	}
	id := signIdentity(t, s.admin, "watcher")
	clt := kubeHTTP(t, id, id.HostCAs[0])
	ended := openPodWatch(t, s, clt)
	start := time.Now()
	if _, err := s.admin.CreateLock(ctx, &pb.CreateLockRequest{User: "watcher", Message: "stop watching"}); err != nil {
		t.Fatal(err)
	}
	select {
	case at := <-ended:
		t.Logf("watch ended %v after the lock was created", at.Sub(start))
	case <-time.After(10 * time.Second):
		t.Fatal("the watch is still open 10s after the lock")
	}
	// New requests are refused with the lock's message.
	r2, err := clt.Get("https://" + s.env.WebAddr + "/v1/kube/" + guideCluster + "/api/v1/namespaces/default/pods")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(r2.Body)
	r2.Body.Close()
	if r2.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "stop watching") {
		t.Fatalf("after lock: %d %s", r2.StatusCode, body)
	}

	m, err := http.Get("http://" + s.env.DiagAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(m.Body)
	m.Body.Close()
	for _, want := range []string{
		`keyport_kube_requests_total{cluster="example-k8s-cluster",code="200",verb="watch"} 1`,
		`keyport_kube_request_duration_seconds_bucket{cluster="example-k8s-cluster",verb="watch"`,
		"keyport_kube_active_streams 0",
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %q:\n%s", want, grepLines(string(metrics), "keyport_kube"))
		}
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// openPodWatch watches default's pods through Keyport with clt and returns once the first
// event has arrived; the channel receives the time the stream ended.
func openPodWatch(t *testing.T, s *kubeSetup, clt *http.Client) <-chan time.Time {
	t.Helper()
	resp, err := clt.Get("https://" + s.env.WebAddr + "/v1/kube/" + guideCluster + "/api/v1/namespaces/default/pods?watch=true")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = resp.Body.Close() })
	br := bufio.NewReader(resp.Body)
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatalf("first watch event: %v", err)
	}
	ended := make(chan time.Time, 1)
	go func() {
		_, _ = io.Copy(io.Discard, br)
		ended <- time.Now()
	}()
	return ended
}

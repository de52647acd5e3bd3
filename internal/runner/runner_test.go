package runner

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestAllStopsEveryTaskAtTheFirstFailure(t *testing.T) {
	boom := errors.New("boom")
	stopped := make(chan string, 2)
	wait := func(name string) Task {
		return Task{Name: name, Run: func(ctx context.Context) error { <-ctx.Done(); stopped <- name; return ctx.Err() }}
	}
	err := All(context.Background(), slog.New(slog.DiscardHandler), []Task{
		wait("a"), wait("b"), {Name: "c", Run: func(context.Context) error { return boom }},
	})
	if !errors.Is(err, boom) || !strings.HasPrefix(err.Error(), "c: ") {
		t.Fatalf("err = %v, want c: boom", err)
	}
	if len(stopped) != 2 {
		t.Fatalf("%d tasks stopped, want 2", len(stopped))
	}
}

func TestAllEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := All(ctx, slog.New(slog.DiscardHandler), []Task{{Name: "a", Run: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }}})
	if err != nil {
		t.Fatalf("err = %v, want nil: ending the context is no failure", err)
	}
}

func TestHTTPServesDiagUntilCancelled(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	task := HTTP("diag", l, Diag(func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "not yet", http.StatusServiceUnavailable) }, prometheus.NewRegistry(), false))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- task.Run(ctx) }()
	for path, want := range map[string]int{"/livez": 200, "/readyz": 503, "/metrics": 200, "/debug/pprof/": 404} {
		resp, err := http.Get("http://" + l.Addr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v, want nil after cancel", err)
	}
}

// TestDiagProfiling: with profiling on, Go's profiles are served (here the index and a
// one-second CPU profile, which pprof would read).
func TestDiagProfiling(t *testing.T) {
	h := Diag(func(w http.ResponseWriter, _ *http.Request) {}, prometheus.NewRegistry(), true)
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/profile?seconds=1", "/debug/pprof/heap"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != http.StatusOK || rec.Body.Len() == 0 {
			t.Errorf("%s: %d, %d bytes", path, rec.Code, rec.Body.Len())
		}
	}
}

// Package runner owns how Keyport's daemons (keyport and tbot) run their long-lived
// parts: a list of named tasks run together until the first one fails or the context
// ends, HTTP servers as such tasks, and the diagnostics endpoints every daemon serves on
// its diag_addr.
package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Task is one long-lived part of a daemon.
type Task struct {
	Name string
	Run  func(ctx context.Context) error
}

// All runs tasks until ctx ends or one of them returns; then it cancels the rest and
// waits for them, so that nothing outlives the daemon. It returns the first failure,
// named after its task; a task that returns nil or fails after the end began is no
// failure.
func All(ctx context.Context, log *slog.Logger, tasks []Task) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, len(tasks))
	for _, t := range tasks {
		go func() {
			err := t.Run(ctx)
			if err != nil && ctx.Err() == nil {
				err = fmt.Errorf("%s: %w", t.Name, err)
				log.Error("component failed; stopping", "component", t.Name, "error", err)
			} else {
				err = nil
			}
			errc <- err
			cancel()
		}()
	}
	var first error
	for range tasks {
		if err := <-errc; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// HTTP returns a task that serves h on l until its context ends.
func HTTP(name string, l net.Listener, h http.Handler) Task {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	return Task{Name: name, Run: func(ctx context.Context) error {
		go func() { <-ctx.Done(); _ = srv.Close() }()
		err := srv.Serve(l)
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	}}
}

// Diag returns the diagnostics endpoints: /livez (the process answers), /readyz (ready
// decides) and /metrics (g's series in Prometheus's format); with profiling, also Go's
// profiles under /debug/pprof/ (the CPU profile, heap, goroutines, trace), which cost
// nothing until asked for but show the process's internals to whoever reaches the port.
func Diag(ready http.HandlerFunc, g prometheus.Gatherer, profiling bool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", ready)
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	if profiling {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	return mux
}

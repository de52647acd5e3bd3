package audit_test

import (
	"context"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/keyport/keyport/internal/audit"
	"github.com/keyport/keyport/internal/backend/sqlite"
)

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// kubeRequestEvent is a kube.request event as the proxy emits it for a GET of a pod, its
// fields map built anew as the proxy builds it for every request.
func kubeRequestEvent() audit.Event {
	return audit.Event{Type: audit.KubeRequest, User: "bot-example", Roles: []string{"bot-example"}, BotName: "example",
		BotInstanceID: "0f0e5ad4-5b3a-4d55-9d55-1e4a3c7b2d11", Success: true,
		Fields: map[string]any{
			"cluster": "example-k8s-cluster", "verb": "get", "api_group": "", "resource": "pods",
			"subresource": "", "namespace": "default", "name": "web-0", "path": "/api/v1/namespaces/default/pods/web-0",
			"status": 200, "latency_ms": 1.234,
		}}
}

// BenchmarkEmitKubeRequest is the proxy's audit cost per Kubernetes request: a
// kube.request event like the proxy's, emitted from 16 goroutines into a Log on SQLite
// with events.log, drained by Close. cpu-µs/op is this process's CPU per event.
func BenchmarkEmitKubeRequest(b *testing.B) {
	dir := b.TempDir()
	be, err := sqlite.New(context.Background(), sqlite.Config{Path: filepath.Join(dir, "db")})
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	l, err := audit.New(audit.Config{Backend: be, Dir: filepath.Join(dir, "log"), Node: "proxy-1"})
	if err != nil {
		b.Fatal(err)
	}
	start := cpuTime(b)
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Emit(context.Background(), kubeRequestEvent())
		}
	})
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64((cpuTime(b)-start).Microseconds())/float64(b.N), "cpu-µs/op")
}

// BenchmarkBatch is the audit log's whole cost per kube.request event — Emit, encoding,
// the batch's SQLite record and its events.log append — when the writer stores batches
// of 50 (a proxy at 1,000 requests/s with the 50 ms flush), 250 and 1,000 events: what a
// batch costs once (a transaction and its fsync) against what each event costs.
func BenchmarkBatch(b *testing.B) {
	for _, n := range []int{50, 250, 1000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			dir := b.TempDir()
			be, err := sqlite.New(context.Background(), sqlite.Config{Path: filepath.Join(dir, "db")})
			if err != nil {
				b.Fatal(err)
			}
			defer be.Close()
			l, err := audit.New(audit.Config{Backend: be, Dir: filepath.Join(dir, "log"), Node: "proxy-1", FlushDelay: 1e9})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			start := cpuTime(b)
			for b.Loop() {
				for range n {
					l.Emit(context.Background(), kubeRequestEvent())
				}
				// Not queued: Emit returns once the batch, this event included, is stored.
				e := kubeRequestEvent()
				e.Type = audit.SessionStart
				l.Emit(context.Background(), e)
			}
			b.ReportMetric(float64((cpuTime(b)-start).Nanoseconds())/float64(b.N*(n+1))/1000, "cpu-µs/event")
		})
	}
}

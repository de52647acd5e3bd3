package audit_test

import (
	"context"
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
	ev := audit.Event{Type: audit.KubeRequest, User: "bot-example", Roles: []string{"bot-example"}, BotName: "example",
		BotInstanceID: "0f0e5ad4-5b3a-4d55-9d55-1e4a3c7b2d11", Success: true}
	start := cpuTime(b)
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			e := ev
			e.Fields = map[string]any{
				"cluster": "example-k8s-cluster", "verb": "get", "api_group": "", "resource": "pods",
				"subresource": "", "namespace": "default", "name": "web-0", "path": "/api/v1/namespaces/default/pods/web-0",
				"status": 200, "latency_ms": 1.234,
			}
			l.Emit(context.Background(), e)
		}
	})
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64((cpuTime(b)-start).Microseconds())/float64(b.N), "cpu-µs/op")
}

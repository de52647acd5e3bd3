package audit_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/keyport/keyport/internal/audit"
	"github.com/keyport/keyport/internal/backend/sqlite"
)

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
			ev := audit.Event{Type: audit.KubeRequest, User: "bot-example", Roles: []string{"bot-example"}, BotName: "example",
				BotInstanceID: "0f0e5ad4-5b3a-4d55-9d55-1e4a3c7b2d11", Success: true}
			start := cpuTime(b)
			for b.Loop() {
				for range n {
					e := ev
					e.Fields = map[string]any{
						"cluster": "example-k8s-cluster", "verb": "get", "api_group": "", "resource": "pods",
						"subresource": "", "namespace": "default", "name": "web-0", "path": "/api/v1/namespaces/default/pods/web-0",
						"status": 200, "latency_ms": 1.234,
					}
					l.Emit(context.Background(), e)
				}
				e := ev
				e.Type = audit.SessionStart
				l.Emit(context.Background(), e)
			}
			b.ReportMetric(float64((cpuTime(b)-start).Nanoseconds())/float64(b.N*(n+1))/1000, "cpu-µs/event")
		})
	}
}

package audit

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// decoded is what a reader of the audit log sees of an event.
func decoded(t *testing.T, data []byte) map[string]any {
	t.Helper()
	if !json.Valid(data) {
		t.Fatalf("invalid JSON: %q", data)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func checkSameAsEncodingJSON(t *testing.T, e Event) {
	t.Helper()
	want, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	got := e.appendJSON(nil)
	if g, w := decoded(t, got), decoded(t, want); !reflect.DeepEqual(g, w) {
		t.Fatalf("appendJSON decodes to\n%v\nencoding/json to\n%v\n(%s)", g, w, got)
	}
}

func TestEventJSON(t *testing.T) {
	at := time.Date(2026, 11, 25, 15, 4, 5, 123456789, time.UTC)
	for _, e := range []Event{
		{Time: at, Type: KubeRequest, ID: "x"},
		{Time: at.In(time.FixedZone("x", 3600)), Type: KubeRequest, ID: "x", User: "alice", Roles: []string{"a", "b"}, BotName: "ci",
			BotInstanceID: "i", Success: true, Message: "m", Fields: map[string]any{
				"cluster": "c", "status": 200, "latency_ms": 1.25, "big": 1e21, "small": 1e-7, "ok": true, "none": nil,
				"list": []string{"x", "y"}, "nil list": []string(nil), "empty list": []string{}, "int64": int64(-5), "nested": map[string]any{"k": []int{1, 2}},
				"path": "/api/v1/namespaces/d/pods/\"</script>\u2028\x00\xff\t\n\r\\"}},
	} {
		checkSameAsEncodingJSON(t, e)
	}
	// A time encoding/json refuses is written as null, not as a line nobody can read.
	far := Event{Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), Type: KubeRequest, ID: "x"}
	if m := decoded(t, far.appendJSON(nil)); m["time"] != nil || m["type"] != KubeRequest {
		t.Fatalf("event in year 10000 decodes to %v", m)
	}
}

// FuzzEventJSON: whatever a client puts in a request path or name, the event is valid
// JSON that decodes exactly as encoding/json's encoding of it does.
func FuzzEventJSON(f *testing.F) {
	for _, s := range []string{"", "plain", "\"\\/\b\f\n\r\t", "\x00\x1f\x7f", "\xff\xfe", "\u2028\u2029", "<>&", "日本語", "\xed\xa0\x80"} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, user, path string) {
		e := Event{Time: time.Unix(1700000000, 5).UTC(), Type: KubeRequest, ID: path, User: user, Roles: []string{user},
			Fields: map[string]any{"path": path, user: path, "status": len(path)}}
		checkSameAsEncodingJSON(t, e)
	})
}

func TestNewID(t *testing.T) {
	l := &Log{node: "proxy-1"}
	at := time.Date(2026, 11, 25, 15, 4, 5, 120000000, time.FixedZone("x", 3600))
	if got, want := l.newID(at), "20261125T140405.120000000-proxy-1-00000001"; got != want {
		t.Fatalf("newID = %q, want %q", got, want)
	}
	l.seq.Store(123456788)
	if got, want := l.newID(at), "20261125T140405.120000000-proxy-1-123456789"; got != want {
		t.Fatalf("newID = %q, want %q", got, want)
	}
}

func benchEvent() Event {
	return Event{Time: time.Now().UTC(), Type: KubeRequest, ID: "20261125T150405.123456789-proxy-1-00000042", User: "bot-example",
		Roles: []string{"bot-example"}, BotName: "example", BotInstanceID: "0f0e5ad4-5b3a-4d55-9d55-1e4a3c7b2d11", Success: true,
		Fields: map[string]any{"cluster": "example-k8s-cluster", "verb": "get", "api_group": "", "resource": "pods",
			"subresource": "", "namespace": "default", "name": "web-0", "path": "/api/v1/namespaces/default/pods/web-0",
			"status": 200, "latency_ms": 1.234}}
}

// BenchmarkEventJSON compares the audit log's encoder with encoding/json on a
// kube.request event.
func BenchmarkEventJSON(b *testing.B) {
	e := benchEvent()
	b.Run("appendJSON", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = e.appendJSON(make([]byte, 0, 512))
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(e); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestAppendIDTime: the ID's time is what AppendFormat writes, for times from year 0 to
// past 9999 (those go through AppendFormat) and every nanosecond width.
func TestAppendIDTime(t *testing.T) {
	const layout = "20060102T150405.000000000"
	for _, at := range []time.Time{
		time.Date(2026, 11, 25, 14, 4, 5, 120000000, time.UTC),
		time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC),
		time.Date(1999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 1, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 6, 15, 12, 30, 0, 0, time.UTC),
		time.Unix(0, 0).UTC(),
	} {
		if got, want := string(appendIDTime(nil, at)), at.Format(layout); got != want {
			t.Errorf("appendIDTime(%v) = %q, want %q", at, got, want)
		}
	}
}

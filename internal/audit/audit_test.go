package audit_test

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/keyport/keyport/internal/audit"
	"github.com/keyport/keyport/internal/backend"
	"github.com/keyport/keyport/internal/backend/sqlite"
)

func newBackend(t *testing.T) backend.Backend {
	t.Helper()
	b, err := sqlite.New(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func fileEvents(t *testing.T, dir string) []audit.Event {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "events.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []audit.Event
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e audit.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("events.log line %d: %v", len(out)+1, err)
		}
		out = append(out, e)
	}
	return out
}

// Events other than kube.request are stored by the time Emit returns.
func TestEmitStoresBeforeReturning(t *testing.T) {
	b, dir := newBackend(t), t.TempDir()
	l, err := audit.New(audit.Config{Backend: b, Dir: dir, Node: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, typ := range []string{audit.UserLogin, audit.LockCreate, audit.SessionStart, audit.SessionEnd, audit.BotInstanceLocked} {
		l.Emit(t.Context(), audit.Event{Type: typ, User: "alice"})
		got, err := audit.Search(t.Context(), b, audit.Filter{Type: typ})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].User != "alice" {
			t.Fatalf("%s: Search right after Emit found %+v, want the one event", typ, got)
		}
	}
	if n := len(fileEvents(t, dir)); n != 5 {
		t.Fatalf("events.log has %d lines, want 5", n)
	}
	info, err := os.Stat(filepath.Join(dir, "events.log"))
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Fatalf("events.log mode %v, want 0600", info.Mode().Perm())
	}
}

// kube.request events are queued; Close stores every one, in order, in both places.
func TestCloseStoresQueuedEvents(t *testing.T) {
	b, dir := newBackend(t), t.TempDir()
	l, err := audit.New(audit.Config{Backend: b, Dir: dir, Node: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	const clients, each = 16, 200
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for i := range each {
				l.Emit(context.Background(), audit.Event{Type: audit.KubeRequest, User: "bot-ci", Fields: map[string]any{"client": c, "i": i}})
			}
		})
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := audit.Search(t.Context(), b, audit.Filter{Type: audit.KubeRequest, Limit: clients * each * 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != clients*each {
		t.Fatalf("backend has %d kube.request events after Close, want %d", len(got), clients*each)
	}
	lines := fileEvents(t, dir)
	if len(lines) != clients*each {
		t.Fatalf("events.log has %d lines, want %d", len(lines), clients*each)
	}
	// Each client's events are in the order it emitted them.
	next := map[float64]float64{}
	for _, e := range lines {
		c, i := e.Fields["client"].(float64), e.Fields["i"].(float64)
		if i != next[c] {
			t.Fatalf("client %v: event %v after %v", c, i, next[c]-1)
		}
		next[c] = i + 1
	}
	// After Close, an event is reported lost, not written, and nothing panics.
	l.Emit(t.Context(), audit.Event{Type: audit.KubeRequest})
	l.Emit(t.Context(), audit.Event{Type: audit.UserLogin})
	if n := len(fileEvents(t, dir)); n != clients*each {
		t.Fatalf("events.log grew to %d lines after Close", n)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// gate is a backend whose Put waits until the test opens it.
type gate struct {
	backend.Backend
	open    chan struct{}
	entered chan struct{}
	once    sync.Once
}

func (g *gate) Put(ctx context.Context, i backend.Item) (int64, error) {
	g.once.Do(func() { close(g.entered) })
	<-g.open
	return g.Backend.Put(ctx, i)
}

// A full queue makes Emit wait for room; nothing is dropped.
func TestFullQueueWaitsNeverDrops(t *testing.T) {
	g := &gate{Backend: newBackend(t), open: make(chan struct{}), entered: make(chan struct{})}
	l, err := audit.New(audit.Config{Backend: g, QueueSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	l.Emit(t.Context(), audit.Event{Type: audit.KubeRequest}) // the writer takes it and stalls
	<-g.entered
	l.Emit(t.Context(), audit.Event{Type: audit.KubeRequest}) // fills the queue
	l.Emit(t.Context(), audit.Event{Type: audit.KubeRequest})
	returned := make(chan struct{})
	go func() {
		l.Emit(context.Background(), audit.Event{Type: audit.KubeRequest})
		close(returned)
	}()
	select {
	case <-returned:
		t.Fatal("Emit returned while the queue was full: the event was dropped or the queue is unbounded")
	case <-time.After(100 * time.Millisecond):
	}
	close(g.open)
	<-returned
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := audit.Search(t.Context(), g.Backend, audit.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 {
		t.Fatalf("stored %d events, want 4", len(got))
	}
}

// A batch is one backend record; Search reads the events back out of it.
func TestBatchIsOneRecord(t *testing.T) {
	b := newBackend(t)
	l, err := audit.New(audit.Config{Backend: b, FlushDelay: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		l.Emit(t.Context(), audit.Event{Type: audit.KubeRequest, User: "bot-ci", Fields: map[string]any{"i": i}})
	}
	if err := l.Close(); err != nil { // the writer is still waiting for company; Close ends the wait
		t.Fatal(err)
	}
	items, err := b.GetRange(t.Context(), []byte(audit.Prefix), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 1 {
		t.Fatalf("10 queued events became %d backend records, want 1", len(items))
	}
	got, err := audit.Search(t.Context(), b, audit.Filter{User: "bot-ci"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 10 {
		t.Fatalf("Search found %d events, want 10", len(got))
	}
	for i, e := range got {
		if e.Fields["i"] != float64(i) {
			t.Fatalf("event %d has fields %v", i, e.Fields)
		}
	}
}

package sqlite

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keyport/keyport/internal/backend"
	"github.com/keyport/keyport/internal/backend/backendtest"
	"github.com/keyport/keyport/internal/clock"
	"github.com/keyport/keyport/internal/errs"
)

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func open(t testing.TB, cfg Config) *Backend {
	t.Helper()
	if cfg.Path == "" {
		cfg.Path = filepath.Join(t.TempDir(), "keyport.db")
	}
	b, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestConformance(t *testing.T) {
	backendtest.RunSuite(t, func(t *testing.T) backendtest.Harness {
		clk := clock.NewFake(epoch)
		b := open(t, Config{Clock: clk})
		return backendtest.Harness{
			Backend: b,
			Clock:   clk,
			Expire: func(ctx context.Context) error {
				_, err := b.SweepExpired(ctx)
				return err
			},
			Compact:      b.CompactThrough,
			MaxValueSize: 10 << 20,
		}
	})
}

func TestConfigCheckAndSetDefaults(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		kind errs.Kind // Unknown means valid
	}{
		{"path required", Config{}, errs.BadParameter},
		{"question mark would be read as DSN parameters", Config{Path: "/tmp/a?b.db"}, errs.BadParameter},
		{"defaults filled", Config{Path: "/tmp/keyport.db"}, errs.Unknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			err := cfg.CheckAndSetDefaults()
			if tt.kind != errs.Unknown {
				if errs.KindOf(err) != tt.kind {
					t.Fatalf("err = %v, want kind %v", err, tt.kind)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Clock == nil || cfg.Logger == nil || cfg.SweepInterval != DefaultSweepInterval || cfg.EventRetention != DefaultEventRetention {
				t.Fatalf("defaults not set: %+v", cfg)
			}
		})
	}
}

// TestFileMode checks that the database, which holds CA keys, is private to its owner.
func TestFileMode(t *testing.T) {
	b := open(t, Config{})
	if _, err := b.Put(t.Context(), backend.Item{Key: []byte("k"), Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	for _, suffix := range []string{"", "-wal"} {
		st, err := os.Stat(b.cfg.Path + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if mode := st.Mode().Perm(); mode != 0o600 {
			t.Fatalf("%s has mode %o, want 600", filepath.Base(b.cfg.Path+suffix), mode)
		}
	}
}

func TestReopenKeepsDataAndRevision(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyport.db")
	b := open(t, Config{Path: path})
	rev, err := b.Put(t.Context(), backend.Item{Key: []byte("k"), Value: []byte("v")})
	if err != nil {
		t.Fatal(err)
	}
	b.Close()

	b = open(t, Config{Path: path})
	it, err := b.Get(t.Context(), []byte("k"))
	if err != nil || string(it.Value) != "v" || it.Revision != rev {
		t.Fatalf("after reopen Get = %+v, %v", it, err)
	}
	rev2, err := b.Put(t.Context(), backend.Item{Key: []byte("k2"), Value: []byte("v")})
	if err != nil || rev2 <= rev {
		t.Fatalf("after reopen Put revision %d (before %d), %v", rev2, rev, err)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyport.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(fmt.Sprintf("PRAGMA user_version = %d", schemaVersion+1)); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if b, err := New(t.Context(), Config{Path: path}); err == nil {
		b.Close()
		t.Fatal("New opened a database with a newer schema")
	}
}

// TestSweeperRunsOnClock checks the background wiring that the suite bypasses: the
// sweeper wakes on the injected clock and reports expiry to watchers.
func TestSweeperRunsOnClock(t *testing.T) {
	clk := clock.NewFake(epoch)
	b := open(t, Config{Clock: clk, SweepInterval: time.Minute})
	w, err := b.Watch(t.Context(), []byte("s/"), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := b.Put(t.Context(), backend.Item{Key: []byte("s/1"), Value: []byte("v"), Expires: clk.Now().Add(30 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	if ev := recv(t, w); ev.Type != backend.EventPut {
		t.Fatalf("first event %v", ev.Type)
	}
	clk.BlockUntil(1) // the sweeper is waiting for its next round
	clk.Advance(time.Minute)
	if ev := recv(t, w); ev.Type != backend.EventDelete || string(ev.Item.Key) != "s/1" {
		t.Fatalf("event = %v %q, want delete of s/1", ev.Type, ev.Item.Key)
	}
}

// recv returns the watcher's next event, failing the test if none arrives in time.
func recv(t *testing.T, w backend.Watcher) backend.Event {
	t.Helper()
	select {
	case ev, ok := <-w.Events():
		if !ok {
			t.Fatalf("watcher ended: %v", w.Err())
		}
		return ev
	case <-time.After(20 * time.Second):
		t.Fatal("no event within 20s")
	}
	panic("unreachable")
}

func TestCompactionPolicy(t *testing.T) {
	tests := []struct {
		name   string
		cfg    Config
		writes func(t *testing.T, b *Backend, clk *clock.Fake)
		// compacted is the highest revision whose event must be gone.
		compacted int64
	}{
		{
			name: "keeps the last EventRetention events",
			cfg:  Config{EventRetention: 3},
			writes: func(t *testing.T, b *Backend, clk *clock.Fake) {
				putN(t, b, 10)
			},
			compacted: 7,
		},
		{
			name: "drops events older than EventMaxAge",
			cfg:  Config{EventMaxAge: time.Minute},
			writes: func(t *testing.T, b *Backend, clk *clock.Fake) {
				putN(t, b, 5)
				clk.Advance(2 * time.Minute)
				putN(t, b, 2)
			},
			compacted: 5,
		},
		{
			name: "keeps everything inside both bounds",
			cfg:  Config{EventRetention: 100, EventMaxAge: time.Hour},
			writes: func(t *testing.T, b *Backend, clk *clock.Fake) {
				putN(t, b, 5)
				clk.Advance(time.Minute)
			},
			compacted: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := clock.NewFake(epoch)
			cfg := tt.cfg
			cfg.Clock = clk
			b := open(t, cfg)
			tt.writes(t, b, clk)
			if err := b.Compact(t.Context()); err != nil {
				t.Fatal(err)
			}
			if tt.compacted > 0 {
				_, err := b.Watch(t.Context(), nil, tt.compacted-1)
				if !backend.IsCompacted(err) {
					t.Fatalf("Watch from %d: err = %v, want IsCompacted", tt.compacted-1, err)
				}
			}
			// Watching from 0 would mean "from now", so the uncompacted case starts at 1.
			from := max(tt.compacted, 1)
			w, err := b.Watch(t.Context(), nil, from)
			if err != nil {
				t.Fatalf("Watch from %d: %v", from, err)
			}
			defer w.Close()
			if ev := recv(t, w); ev.Item.Revision != from+1 {
				t.Fatalf("first kept event has revision %d, want %d", ev.Item.Revision, from+1)
			}
		})
	}
}

func putN(t *testing.T, b *Backend, n int) {
	t.Helper()
	for i := range n {
		if _, err := b.Put(t.Context(), backend.Item{Key: []byte(fmt.Sprintf("k/%d", i)), Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestTwoBackendsOneFile stands in for two processes sharing one database file: each
// Backend has its own connections and notifier, so watchers on one learn about the
// other's commits only through the revision poll, and writes from both contend for the
// file lock rather than for one Go connection.
func TestTwoBackendsOneFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyport.db")
	a := open(t, Config{Path: path})
	b := open(t, Config{Path: path, PollInterval: 20 * time.Millisecond})
	ctx := t.Context()

	w, err := b.Watch(ctx, []byte("x/"), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	rev, err := a.Put(ctx, backend.Item{Key: []byte("x/1"), Value: []byte("from a")})
	if err != nil {
		t.Fatal(err)
	}
	if it, err := b.Get(ctx, []byte("x/1")); err != nil || it.Revision != rev {
		t.Fatalf("b.Get after a.Put = %+v, %v", it, err)
	}
	if ev := recv(t, w); ev.Item.Revision != rev || string(ev.Item.Value) != "from a" {
		t.Fatalf("b's watcher got %+v", ev)
	}

	// Increments through both backends must not lose updates to each other.
	if _, err := a.Put(ctx, backend.Item{Key: []byte("n"), Value: []byte("0")}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errc := make(chan error, 10)
	for i := range 10 {
		be := []*Backend{a, b}[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				for {
					it, err := be.Get(ctx, []byte("n"))
					if err != nil {
						errc <- err
						return
					}
					n, _ := strconv.Atoi(string(it.Value))
					_, err = be.CompareAndSwap(ctx, backend.Item{Key: []byte("n"), Value: []byte(strconv.Itoa(n + 1))}, it.Revision)
					if errs.IsCompareFailed(err) {
						continue
					}
					if err != nil {
						errc <- err
						return
					}
					break
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	if it, err := a.Get(ctx, []byte("n")); err != nil || string(it.Value) != "200" {
		t.Fatalf("counter = %+v, %v; want 200", it, err)
	}
}

const crashEnv = "KEYPORT_TEST_CRASH_DB"

// TestCrashWriter is the child half of TestCrashRecovery: it writes until killed,
// printing each key only after Put has returned. Run on its own it does nothing.
func TestCrashWriter(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		return
	}
	b, err := New(context.Background(), Config{Path: path})
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	for i := 0; ; i++ {
		key := fmt.Sprintf("crash/%06d", i)
		if _, err := b.Put(context.Background(), backend.Item{Key: []byte(key), Value: []byte("value-" + key)}); err != nil {
			fmt.Println("ERROR", err)
			os.Exit(1)
		}
		fmt.Println("ACK", key)
	}
}

// TestCrashRecovery kills a writer process with SIGKILL in the middle of a stream of
// writes and checks that every write it acknowledged is in the reopened database.
func TestCrashRecovery(t *testing.T) {
	const killAfter = 300
	path := filepath.Join(t.TempDir(), "keyport.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashWriter$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })

	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var acked []string
	killed := false
	timeout := time.After(2 * time.Minute)
	for done := false; !done; {
		select {
		case line, ok := <-lines:
			if !ok {
				done = true
				break
			}
			key, isAck := strings.CutPrefix(line, "ACK ")
			if !isAck {
				if strings.HasPrefix(line, "ERROR") {
					t.Fatalf("writer: %s", line)
				}
				continue
			}
			// Lines read after the kill were still acknowledged before it.
			acked = append(acked, key)
			if !killed && len(acked) >= killAfter {
				if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				killed = true
			}
		case <-timeout:
			t.Fatalf("writer acknowledged only %d writes in 2 minutes", len(acked))
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("writer exited on its own after %d writes: %v", len(acked), err)
	}
	t.Logf("writer killed after %d acknowledged writes", len(acked))

	b := open(t, Config{Path: path})
	for _, key := range acked {
		it, err := b.Get(t.Context(), []byte(key))
		if err != nil {
			t.Fatalf("acknowledged key %s lost: %v", key, err)
		}
		if string(it.Value) != "value-"+key {
			t.Fatalf("acknowledged key %s has value %q", key, it.Value)
		}
	}
	var result string
	if err := b.r.QueryRowContext(t.Context(), "PRAGMA integrity_check").Scan(&result); err != nil || result != "ok" {
		t.Fatalf("integrity_check = %q, %v", result, err)
	}
}

func benchBackend(b *testing.B) *Backend {
	return open(b, Config{Path: filepath.Join(b.TempDir(), "bench.db")})
}

func BenchmarkPut(b *testing.B) { backendtest.BenchmarkPut(b, benchBackend(b)) }
func BenchmarkGet(b *testing.B) { backendtest.BenchmarkGet(b, benchBackend(b)) }
func BenchmarkCAS(b *testing.B) { backendtest.BenchmarkCompareAndSwap(b, benchBackend(b)) }

// A commit wakes this process's watchers only when it may have changed a key they watch
// (the audit log's batches do not); a watcher that was not woken still skips those
// revisions correctly on its next read.
func TestCommitWakesOnlyWatchersOfItsKeys(t *testing.T) {
	b := open(t, Config{})
	w, err := b.Watch(t.Context(), []byte("/res/"), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for _, tc := range []struct {
		scope []byte
		want  bool
	}{
		{[]byte("/audit/2026-12-06/x"), false},
		{[]byte("/res/role/a"), true},
		{[]byte("/re"), true}, // a range that covers the watched prefix
		{[]byte("/"), true},
		{nil, true}, // the sweeper: any key
	} {
		if got := b.watched([]writeReq{{scope: tc.scope}}); got != tc.want {
			t.Errorf("watched(%q) = %v, want %v", tc.scope, got, tc.want)
		}
	}
	if b.watched([]writeReq{{scope: []byte("/audit/a")}, {scope: []byte("/res/b")}}) != true {
		t.Error("a batch with one watched write must wake")
	}
	for i := range 5 {
		if _, err := b.Put(t.Context(), backend.Item{Key: fmt.Appendf(nil, "/audit/%d", i), Value: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Put(t.Context(), backend.Item{Key: []byte("/res/role/a"), Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	if ev := recv(t, w); string(ev.Item.Key) != "/res/role/a" || ev.Type != backend.EventPut {
		t.Fatalf("event %v %q, want the put of /res/role/a", ev.Type, ev.Item.Key)
	}
	_ = w.Close() // Events is closed, and the prefix forgotten, when Close returns
	b.mu.Lock()
	n := len(b.prefixes)
	b.mu.Unlock()
	if n != 0 {
		t.Errorf("%d watch prefixes left after the watcher ended", n)
	}
}

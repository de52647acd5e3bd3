// Package backendtest is the conformance suite every backend.Backend implementation must
// pass, plus shared benchmarks. It lives in a normal package (not a _test file) so that
// each implementation's tests can run it against their own harness.
package backendtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/keyport/keyport/internal/backend"
	"github.com/keyport/keyport/internal/clock"
	"github.com/keyport/keyport/internal/errs"
)

// Harness is one fresh, empty backend for one subtest, and the knobs the suite needs to
// drive it. A harness must not see keys written through another harness: backends that
// share a server (etcd) give each harness its own key prefix.
type Harness struct {
	Backend backend.Backend
	// Clock is the clock Backend reads to decide expiry. The suite advances it.
	Clock *clock.Fake
	// Expire, if set, makes the backend act at once on items whose expiry has passed by
	// Clock, as its background sweeper eventually would (the SQLite backend sweeps).
	// Backends whose server expires items on its own (etcd leases) leave it nil.
	Expire func(ctx context.Context) error
	// ExpiryWait bounds how long the suite waits for the delete event of an expired
	// item, after Expire. Defaults to 10s; etcd leases expire on the server's wall
	// clock, about two seconds after the shortest TTL it grants.
	ExpiryWait time.Duration
	// Compact drops the backend's history through revision rev, so that a watch from
	// before rev must fail with an error for which backend.IsCompacted is true.
	Compact func(ctx context.Context, rev int64) error
	// MaxValueSize is the largest value the backend must store; 1 MiB if zero.
	MaxValueSize int
}

// eventWait bounds every wait for an event that must arrive. It is generous because the
// suite also runs under the race detector on a loaded machine; a passing run never
// waits for it.
const eventWait = 20 * time.Second

// RunSuite runs the conformance suite. newBackend is called once per subtest and must
// register its own cleanup (closing the backend twice must be harmless).
func RunSuite(t *testing.T, newBackend func(t *testing.T) Harness) {
	tests := []struct {
		name string
		fn   func(t *testing.T, h Harness)
	}{
		{"GetMissing", testGetMissing},
		{"PutGet", testPutGet},
		{"EmptyKey", testEmptyKey},
		{"Create", testCreate},
		{"CompareAndSwap", testCompareAndSwap},
		{"ConcurrentCompareAndSwap", testConcurrentCAS},
		{"Delete", testDelete},
		{"DeleteRange", testDeleteRange},
		{"GetRange", testGetRange},
		{"Revisions", testRevisions},
		{"WatchOrder", testWatchOrder},
		{"WatchPrefix", testWatchPrefix},
		{"WatchResume", testWatchResume},
		{"WatchFromZero", testWatchFromZero},
		{"WatchCompacted", testWatchCompacted},
		{"WatchCancel", testWatchCancel},
		{"Expiry", testExpiry},
		{"ExpiredBeforeSweep", testExpiredBeforeSweep},
		{"LargeValues", testLargeValues},
		{"CloseEndsWatchers", testCloseEndsWatchers},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newBackend(t)
			if h.Backend == nil || h.Clock == nil {
				t.Fatal("harness must set Backend and Clock")
			}
			tt.fn(t, h)
		})
	}
}

func k(s string) []byte { return []byte(s) }

func put(t *testing.T, be backend.Backend, key, value string) int64 {
	t.Helper()
	rev, err := be.Put(t.Context(), backend.Item{Key: k(key), Value: k(value)})
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	return rev
}

func mustGet(t *testing.T, be backend.Backend, key string) *backend.Item {
	t.Helper()
	it, err := be.Get(t.Context(), k(key))
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return it
}

func wantKind(t *testing.T, what string, err error, kind errs.Kind) {
	t.Helper()
	if got := errs.KindOf(err); err == nil || got != kind {
		t.Fatalf("%s: got error %v (kind %v), want kind %v", what, err, got, kind)
	}
}

func keys(items []backend.Item) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = string(it.Key)
	}
	return out
}

func testGetMissing(t *testing.T, h Harness) {
	_, err := h.Backend.Get(t.Context(), k("missing"))
	wantKind(t, "Get(missing)", err, errs.NotFound)
}

func testPutGet(t *testing.T, h Harness) {
	be := h.Backend
	rev1 := put(t, be, "a", "one")
	if rev1 <= 0 {
		t.Fatalf("Put returned revision %d, want > 0", rev1)
	}
	it := mustGet(t, be, "a")
	if string(it.Key) != "a" || string(it.Value) != "one" || it.Revision != rev1 || !it.Expires.IsZero() {
		t.Fatalf("Get = %+v, want key a, value one, revision %d, no expiry", it, rev1)
	}
	rev2 := put(t, be, "a", "two")
	if rev2 <= rev1 {
		t.Fatalf("overwrite revision %d not after %d", rev2, rev1)
	}
	if it := mustGet(t, be, "a"); string(it.Value) != "two" || it.Revision != rev2 {
		t.Fatalf("after overwrite Get = %+v", it)
	}
	// Empty values are values: stored, returned, distinct from missing.
	if _, err := be.Put(t.Context(), backend.Item{Key: k("empty")}); err != nil {
		t.Fatalf("Put(empty value): %v", err)
	}
	if it := mustGet(t, be, "empty"); len(it.Value) != 0 {
		t.Fatalf("empty value came back as %q", it.Value)
	}
	// Binary keys and values survive byte for byte.
	bin := []byte{0, 1, 0xfe, 0xff}
	if _, err := be.Put(t.Context(), backend.Item{Key: append(k("bin/"), bin...), Value: bin}); err != nil {
		t.Fatalf("Put(binary): %v", err)
	}
	if it := mustGet(t, be, "bin/"+string(bin)); !bytes.Equal(it.Value, bin) {
		t.Fatalf("binary value came back as %x", it.Value)
	}
}

func testEmptyKey(t *testing.T, h Harness) {
	be, ctx := h.Backend, t.Context()
	_, err := be.Put(ctx, backend.Item{Value: k("v")})
	wantKind(t, "Put(empty key)", err, errs.BadParameter)
	_, err = be.Create(ctx, backend.Item{Value: k("v")})
	wantKind(t, "Create(empty key)", err, errs.BadParameter)
	_, err = be.Get(ctx, nil)
	wantKind(t, "Get(empty key)", err, errs.BadParameter)
	wantKind(t, "Delete(empty key)", be.Delete(ctx, nil), errs.BadParameter)
}

func testCreate(t *testing.T, h Harness) {
	be, ctx := h.Backend, t.Context()
	rev, err := be.Create(ctx, backend.Item{Key: k("c"), Value: k("first")})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	_, err = be.Create(ctx, backend.Item{Key: k("c"), Value: k("second")})
	wantKind(t, "second Create", err, errs.AlreadyExists)
	if it := mustGet(t, be, "c"); string(it.Value) != "first" || it.Revision != rev {
		t.Fatalf("after conflicting Create, Get = %+v", it)
	}
	// A deleted key can be created again.
	if err := be.Delete(ctx, k("c")); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := be.Create(ctx, backend.Item{Key: k("c"), Value: k("third")}); err != nil {
		t.Fatalf("Create after Delete: %v", err)
	}
}

func testCompareAndSwap(t *testing.T, h Harness) {
	be, ctx := h.Backend, t.Context()
	rev := put(t, be, "cas", "v1")
	stale := rev
	rev2, err := be.CompareAndSwap(ctx, backend.Item{Key: k("cas"), Value: k("v2")}, rev)
	if err != nil {
		t.Fatalf("CAS at current revision: %v", err)
	}
	if rev2 <= rev {
		t.Fatalf("CAS revision %d not after %d", rev2, rev)
	}
	tests := []struct {
		name     string
		key      string
		expected int64
		kind     errs.Kind
	}{
		{"stale revision", "cas", stale, errs.CompareFailed},
		{"future revision", "cas", rev2 + 1000, errs.CompareFailed},
		{"missing key", "nope", rev2, errs.NotFound},
		{"non-positive revision", "cas", 0, errs.BadParameter},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := be.CompareAndSwap(ctx, backend.Item{Key: k(tt.key), Value: k("bad")}, tt.expected)
			wantKind(t, "CompareAndSwap", err, tt.kind)
		})
	}
	if it := mustGet(t, be, "cas"); string(it.Value) != "v2" || it.Revision != rev2 {
		t.Fatalf("failed swaps changed the item: %+v", it)
	}
}

// testConcurrentCAS is the lost-update check: 50 writers each add 1 twenty times
// through read-modify-CAS loops; any lost update leaves the counter short of 1000.
func testConcurrentCAS(t *testing.T, h Harness) {
	const workers, increments = 50, 20
	be, ctx := h.Backend, t.Context()
	put(t, be, "counter", "0")
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range increments {
				for {
					it, err := be.Get(ctx, k("counter"))
					if err != nil {
						errc <- err
						return
					}
					n, err := strconv.Atoi(string(it.Value))
					if err != nil {
						errc <- err
						return
					}
					_, err = be.CompareAndSwap(ctx, backend.Item{Key: k("counter"), Value: k(strconv.Itoa(n + 1))}, it.Revision)
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
		t.Fatalf("worker: %v", err)
	}
	if it := mustGet(t, be, "counter"); string(it.Value) != strconv.Itoa(workers*increments) {
		t.Fatalf("counter = %s, want %d", it.Value, workers*increments)
	}
}

func testDelete(t *testing.T, h Harness) {
	be, ctx := h.Backend, t.Context()
	put(t, be, "d", "v")
	if err := be.Delete(ctx, k("d")); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	_, err := be.Get(ctx, k("d"))
	wantKind(t, "Get after Delete", err, errs.NotFound)
	wantKind(t, "second Delete", be.Delete(ctx, k("d")), errs.NotFound)
	wantKind(t, "Delete(never existed)", be.Delete(ctx, k("never")), errs.NotFound)
}

func testDeleteRange(t *testing.T, h Harness) {
	be, ctx := h.Backend, t.Context()
	for _, key := range []string{"a/1", "a/2", "a/x/3", "ab", "b"} {
		put(t, be, key, "v")
	}
	if err := be.DeleteRange(ctx, k("a/")); err != nil {
		t.Fatalf("DeleteRange(a/): %v", err)
	}
	items, err := be.GetRange(ctx, nil, 0)
	if err != nil {
		t.Fatalf("GetRange: %v", err)
	}
	if got := fmt.Sprint(keys(items)); got != "[ab b]" {
		t.Fatalf("after DeleteRange(a/) keys = %s, want [ab b]", got)
	}
	if err := be.DeleteRange(ctx, k("nothing/")); err != nil {
		t.Fatalf("DeleteRange of an empty range: %v", err)
	}
	if err := be.DeleteRange(ctx, nil); err != nil {
		t.Fatalf("DeleteRange(all): %v", err)
	}
	if items, err := be.GetRange(ctx, nil, 0); err != nil || len(items) != 0 {
		t.Fatalf("after DeleteRange(all) GetRange = %v, %v", keys(items), err)
	}
}

func testGetRange(t *testing.T, h Harness) {
	be, ctx := h.Backend, t.Context()
	// Written out of order; 0xff sorts after every other byte.
	for _, key := range []string{"a/c", "a/a", "ab", "a/b/x", "a/\xff", "a", "b/1", "a/b"} {
		put(t, be, key, "v:"+key)
	}
	tests := []struct {
		prefix string
		limit  int
		want   string
	}{
		{"a/", 0, "[a/a a/b a/b/x a/c a/\xff]"},
		{"a/", 2, "[a/a a/b]"},
		{"a/", -1, "[a/a a/b a/b/x a/c a/\xff]"},
		{"a/", 100, "[a/a a/b a/b/x a/c a/\xff]"},
		{"a/b", 0, "[a/b a/b/x]"},
		{"a", 0, "[a a/a a/b a/b/x a/c a/\xff ab]"},
		{"b/", 0, "[b/1]"},
		{"c/", 0, "[]"},
		{"", 0, "[a a/a a/b a/b/x a/c a/\xff ab b/1]"},
		{"", 3, "[a a/a a/b]"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q limit %d", tt.prefix, tt.limit), func(t *testing.T) {
			items, err := be.GetRange(ctx, k(tt.prefix), tt.limit)
			if err != nil {
				t.Fatalf("GetRange: %v", err)
			}
			if got := fmt.Sprint(keys(items)); got != tt.want {
				t.Fatalf("keys = %q, want %q", got, tt.want)
			}
			for _, it := range items {
				if string(it.Value) != "v:"+string(it.Key) || it.Revision <= 0 {
					t.Fatalf("item %+v has wrong value or revision", it)
				}
			}
		})
	}
}

func testRevisions(t *testing.T, h Harness) {
	be, ctx := h.Backend, t.Context()
	var last int64
	for i := range 5 {
		rev := put(t, be, fmt.Sprintf("r/%d", i), "v")
		if rev <= last {
			t.Fatalf("revision %d not after %d", rev, last)
		}
		last = rev
	}
	cur, err := be.CurrentRevision(ctx)
	if err != nil {
		t.Fatalf("CurrentRevision: %v", err)
	}
	// Another writer may share the store (etcd), so only a lower bound holds.
	if cur < last {
		t.Fatalf("CurrentRevision = %d, before the last write %d", cur, last)
	}
	// Reads do not move the revision.
	mustGet(t, be, "r/0")
	if again, _ := be.CurrentRevision(ctx); again < cur {
		t.Fatalf("CurrentRevision went back from %d to %d", cur, again)
	}
}

func watch(t *testing.T, be backend.Backend, prefix string, from int64) backend.Watcher {
	t.Helper()
	w, err := be.Watch(t.Context(), k(prefix), from)
	if err != nil {
		t.Fatalf("Watch(%q, %d): %v", prefix, from, err)
	}
	t.Cleanup(func() { _ = w.Close() })
	return w
}

func next(t *testing.T, w backend.Watcher, wait time.Duration) backend.Event {
	t.Helper()
	select {
	case ev, ok := <-w.Events():
		if !ok {
			t.Fatalf("watcher ended early: %v", w.Err())
		}
		return ev
	case <-time.After(wait):
		t.Fatalf("no event within %v", wait)
	}
	panic("unreachable")
}

// want is an expected event: its type, key, value (puts only) and revision (0: any).
type want struct {
	typ   backend.EventType
	key   string
	value string
	rev   int64
}

func expect(t *testing.T, w backend.Watcher, wants ...want) []backend.Event {
	t.Helper()
	var got []backend.Event
	var last int64
	for i, wt := range wants {
		ev := next(t, w, eventWait)
		if ev.Type != wt.typ || string(ev.Item.Key) != wt.key || (wt.typ == backend.EventPut && string(ev.Item.Value) != wt.value) {
			t.Fatalf("event %d = %v %q %q, want %v %q %q", i, ev.Type, ev.Item.Key, ev.Item.Value, wt.typ, wt.key, wt.value)
		}
		if wt.rev != 0 && ev.Item.Revision != wt.rev {
			t.Fatalf("event %d (%v %q) revision %d, want %d", i, ev.Type, ev.Item.Key, ev.Item.Revision, wt.rev)
		}
		if ev.Item.Revision <= last {
			t.Fatalf("event %d revision %d not after %d", i, ev.Item.Revision, last)
		}
		last = ev.Item.Revision
		got = append(got, ev)
	}
	return got
}

func currentRevision(t *testing.T, be backend.Backend) int64 {
	t.Helper()
	rev, err := be.CurrentRevision(t.Context())
	if err != nil {
		t.Fatalf("CurrentRevision: %v", err)
	}
	return rev
}

func testWatchOrder(t *testing.T, h Harness) {
	be, ctx := h.Backend, t.Context()
	w := watch(t, be, "w/", currentRevision(t, be))
	r1 := put(t, be, "w/a", "1")
	r2 := put(t, be, "w/b", "2")
	if err := be.Delete(ctx, k("w/a")); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	evs := expect(t, w,
		want{backend.EventPut, "w/a", "1", r1},
		want{backend.EventPut, "w/b", "2", r2},
		want{typ: backend.EventDelete, key: "w/a"},
	)
	if evs[2].Item.Revision <= r2 {
		t.Fatalf("delete revision %d not after %d", evs[2].Item.Revision, r2)
	}
}

func testWatchPrefix(t *testing.T, h Harness) {
	be := h.Backend
	w := watch(t, be, "p/", currentRevision(t, be))
	put(t, be, "p", "no")
	put(t, be, "pq", "no")
	put(t, be, "p/1", "yes")
	put(t, be, "q/1", "no")
	put(t, be, "p/2/deep", "yes")
	expect(t, w,
		want{backend.EventPut, "p/1", "yes", 0},
		want{backend.EventPut, "p/2/deep", "yes", 0},
	)
	// Nothing from the other keys may be queued behind them: the next event is this one.
	put(t, be, "p/3", "last")
	expect(t, w, want{backend.EventPut, "p/3", "last", 0})
}

func testWatchResume(t *testing.T, h Harness) {
	be, ctx := h.Backend, t.Context()
	w, err := be.Watch(ctx, k("res/"), currentRevision(t, be))
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	put(t, be, "res/1", "a")
	put(t, be, "res/2", "b")
	seen := expect(t, w, want{backend.EventPut, "res/1", "a", 0}, want{backend.EventPut, "res/2", "b", 0})
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for range w.Events() {
		// Drain whatever was buffered; Close must have ended the stream.
	}
	if err := w.Err(); err != nil {
		t.Fatalf("Err after Close = %v, want nil", err)
	}

	// Missed while disconnected.
	r3 := put(t, be, "res/3", "c")
	r4 := put(t, be, "res/1", "a2")
	if err := be.Delete(ctx, k("res/2")); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	w2 := watch(t, be, "res/", seen[1].Item.Revision)
	expect(t, w2,
		want{backend.EventPut, "res/3", "c", r3},
		want{backend.EventPut, "res/1", "a2", r4},
		want{typ: backend.EventDelete, key: "res/2"},
	)
	// No duplicates and no replay: the next event is the next write.
	r5 := put(t, be, "res/4", "d")
	expect(t, w2, want{backend.EventPut, "res/4", "d", r5})
}

func testWatchFromZero(t *testing.T, h Harness) {
	be := h.Backend
	put(t, be, "z/old", "old")
	w := watch(t, be, "z/", 0)
	r := put(t, be, "z/new", "new")
	expect(t, w, want{backend.EventPut, "z/new", "new", r})
}

func testWatchCompacted(t *testing.T, h Harness) {
	if h.Compact == nil {
		t.Fatal("harness must set Compact")
	}
	be, ctx := h.Backend, t.Context()
	first := put(t, be, "cmp/1", "v")
	put(t, be, "cmp/2", "v")
	last := put(t, be, "cmp/3", "v")
	if err := h.Compact(ctx, last); err != nil {
		t.Fatalf("Compact: %v", err)
	}
	w, err := be.Watch(ctx, k("cmp/"), first)
	if err == nil {
		defer func() { _ = w.Close() }()
		select {
		case ev, ok := <-w.Events():
			if ok {
				t.Fatalf("watch from compacted revision delivered %v %q", ev.Type, ev.Item.Key)
			}
			err = w.Err()
		case <-time.After(eventWait):
			t.Fatal("watch from a compacted revision neither failed nor ended")
		}
	}
	if !backend.IsCompacted(err) {
		t.Fatalf("watch from compacted revision %d: err = %v, want IsCompacted", first, err)
	}
	// Re-listing and watching from the listed revision works.
	w2 := watch(t, be, "cmp/", currentRevision(t, be))
	r := put(t, be, "cmp/4", "v")
	expect(t, w2, want{backend.EventPut, "cmp/4", "v", r})
}

func testWatchCancel(t *testing.T, h Harness) {
	ctx, cancel := context.WithCancel(t.Context())
	w, err := h.Backend.Watch(ctx, k("c/"), 0)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	defer func() { _ = w.Close() }()
	cancel()
	waitEnded(t, w)
	if err := w.Err(); err != nil {
		t.Fatalf("Err after cancel = %v, want nil", err)
	}
}

func waitEnded(t *testing.T, w backend.Watcher) {
	t.Helper()
	timeout := time.After(eventWait)
	for {
		select {
		case _, ok := <-w.Events():
			if !ok {
				return
			}
		case <-timeout:
			t.Fatal("watcher did not end")
		}
	}
}

func expiryWait(h Harness) time.Duration {
	if h.ExpiryWait > 0 {
		return h.ExpiryWait
	}
	return 10 * time.Second
}

func testExpiry(t *testing.T, h Harness) {
	be, ctx := h.Backend, t.Context()
	w := watch(t, be, "exp/", currentRevision(t, be))
	expires := h.Clock.Now().Add(time.Second)
	rev, err := be.Put(ctx, backend.Item{Key: k("exp/a"), Value: k("short"), Expires: expires})
	if err != nil {
		t.Fatalf("Put with expiry: %v", err)
	}
	put(t, be, "exp/b", "forever")
	if it := mustGet(t, be, "exp/a"); !it.Expires.Equal(expires) || it.Revision != rev {
		t.Fatalf("before expiry Get = %+v, want expiry %v", it, expires)
	}
	expect(t, w,
		want{backend.EventPut, "exp/a", "short", rev},
		want{backend.EventPut, "exp/b", "forever", 0},
	)

	h.Clock.Advance(2 * time.Second)
	// Invisible as soon as the clock passes the expiry, before any sweep.
	_, err = be.Get(ctx, k("exp/a"))
	wantKind(t, "Get after expiry", err, errs.NotFound)
	for _, limit := range []int{0, 1} {
		items, err := be.GetRange(ctx, k("exp/"), limit)
		if err != nil || fmt.Sprint(keys(items)) != "[exp/b]" {
			t.Fatalf("GetRange(limit %d) after expiry = %v, %v; want [exp/b]", limit, keys(items), err)
		}
	}

	if h.Expire != nil {
		if err := h.Expire(ctx); err != nil {
			t.Fatalf("Expire: %v", err)
		}
	}
	ev := next(t, w, expiryWait(h))
	if ev.Type != backend.EventDelete || string(ev.Item.Key) != "exp/a" || ev.Item.Revision <= rev {
		t.Fatalf("expiry event = %v %q rev %d, want delete of exp/a after %d", ev.Type, ev.Item.Key, ev.Item.Revision, rev)
	}
	if _, err := be.Create(ctx, backend.Item{Key: k("exp/a"), Value: k("again")}); err != nil {
		t.Fatalf("Create after expiry: %v", err)
	}
	if it := mustGet(t, be, "exp/a"); string(it.Value) != "again" || !it.Expires.IsZero() {
		t.Fatalf("recreated item = %+v", it)
	}
}

// testExpiredBeforeSweep covers writes that meet an item whose expiry has passed but
// which the backend has not removed yet: it must already behave as missing.
func testExpiredBeforeSweep(t *testing.T, h Harness) {
	be, ctx := h.Backend, t.Context()
	short := func(key string) int64 {
		rev, err := be.Put(ctx, backend.Item{Key: k(key), Value: k("old"), Expires: h.Clock.Now().Add(time.Second)})
		if err != nil {
			t.Fatalf("Put(%q): %v", key, err)
		}
		return rev
	}
	createRev := short("x/create")
	casRev := short("x/cas")
	short("x/delete")
	short("x/put")
	h.Clock.Advance(2 * time.Second)

	tests := []struct {
		name string
		op   func() error
		kind errs.Kind // Unknown means success
	}{
		{"Create succeeds", func() error {
			_, err := be.Create(ctx, backend.Item{Key: k("x/create"), Value: k("new")})
			return err
		}, errs.Unknown},
		{"CAS reports not found", func() error {
			_, err := be.CompareAndSwap(ctx, backend.Item{Key: k("x/cas"), Value: k("new")}, casRev)
			return err
		}, errs.NotFound},
		{"Delete reports not found", func() error { return be.Delete(ctx, k("x/delete")) }, errs.NotFound},
		{"Put succeeds", func() error {
			_, err := be.Put(ctx, backend.Item{Key: k("x/put"), Value: k("new")})
			return err
		}, errs.Unknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.op()
			if tt.kind == errs.Unknown {
				if err != nil {
					t.Fatalf("got %v, want success", err)
				}
				return
			}
			wantKind(t, tt.name, err, tt.kind)
		})
	}
	if it := mustGet(t, be, "x/create"); string(it.Value) != "new" || it.Revision <= createRev {
		t.Fatalf("recreated item = %+v", it)
	}
	if it := mustGet(t, be, "x/put"); string(it.Value) != "new" || !it.Expires.IsZero() {
		t.Fatalf("overwritten item = %+v", it)
	}
}

func testLargeValues(t *testing.T, h Harness) {
	be, ctx := h.Backend, t.Context()
	max := h.MaxValueSize
	if max <= 0 {
		max = 1 << 20
	}
	sizes := []int{64 << 10, 1 << 20}
	if max > 1<<20 {
		sizes = append(sizes, max)
	}
	w := watch(t, be, "big/", currentRevision(t, be))
	for _, size := range sizes {
		if size > max {
			continue
		}
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			value := make([]byte, size)
			rand.Read(value)
			key := fmt.Sprintf("big/%d", size)
			rev, err := be.Put(ctx, backend.Item{Key: k(key), Value: value})
			if err != nil {
				t.Fatalf("Put %d bytes: %v", size, err)
			}
			if it := mustGet(t, be, key); !bytes.Equal(it.Value, value) {
				t.Fatalf("Get returned %d bytes that differ from the %d written", len(it.Value), size)
			}
			ev := next(t, w, eventWait)
			if ev.Item.Revision != rev || !bytes.Equal(ev.Item.Value, value) {
				t.Fatalf("watch event for %d bytes: revision %d (want %d), %d bytes", size, ev.Item.Revision, rev, len(ev.Item.Value))
			}
		})
	}
}

func testCloseEndsWatchers(t *testing.T, h Harness) {
	be := h.Backend
	w := watch(t, be, "", 0)
	if err := be.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	waitEnded(t, w)
	if err := w.Err(); err != nil && !errors.Is(err, backend.ErrClosed) {
		t.Fatalf("Err after backend Close = %v, want nil or ErrClosed", err)
	}
}

// Package sqlite is Keyport's default, single-node backend: one SQLite file, opened with
// the pure-Go modernc.org/sqlite driver so the binaries need no cgo.
//
// Durability comes from WAL mode with synchronous=FULL: a write is acknowledged only
// after its transaction is fsynced, so a crash or kill never loses it. All writes go
// through one connection, which keeps SQLite's single-writer rule visible in Go instead of
// surfacing as SQLITE_BUSY; reads use a small separate pool and never block on writes.
//
// Every change is also appended to an events table in the same transaction, under a
// global revision counter. Watchers read that table in revision order, woken by an
// in-process notifier after each commit and by a cheap poll of the counter, which is
// how a second process sharing the file sees the first one's writes. The table keeps a
// bounded window of history; a watch that starts before the window is told to re-list.
package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/keyport/keyport/internal/backend"
	"github.com/keyport/keyport/internal/clock"
	"github.com/keyport/keyport/internal/errs"
)

// Defaults for Config.
const (
	DefaultSweepInterval  = 5 * time.Second
	DefaultPollInterval   = 500 * time.Millisecond
	DefaultEventRetention = 100_000
	DefaultEventMaxAge    = time.Hour
	DefaultReadConns      = 4
	DefaultBusyTimeout    = 10 * time.Second
)

// The statements every write and read uses, prepared once (see prepared).
const (
	qLookup       = `SELECT expires, revision FROM kv WHERE key = ?`
	qNextRevision = `UPDATE meta SET revision = revision + 1 WHERE id = 1 RETURNING revision`
	qDeleteKV     = `DELETE FROM kv WHERE key = ?`
	qDeleteEvent  = `INSERT INTO events (revision, type, key, value, expires, at) VALUES (?, ?, ?, NULL, 0, ?)`
	qUpsert       = `INSERT INTO kv (key, value, expires, revision) VALUES (?, ?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires = excluded.expires, revision = excluded.revision`
	qPutEvent   = `INSERT INTO events (revision, type, key, value, expires, at) VALUES (?, ?, ?, ?, ?, ?)`
	qSavepoint  = "SAVEPOINT w"
	qRollbackTo = "ROLLBACK TO w"
	qRelease    = "RELEASE w"
	qGet        = `SELECT value, expires, revision FROM kv WHERE key = ?`
	qRevision   = `SELECT revision FROM meta WHERE id = 1`
	qMeta       = `SELECT revision, compacted FROM meta WHERE id = 1`
)

var writerQueries = []string{qLookup, qNextRevision, qDeleteKV, qDeleteEvent, qUpsert, qPutEvent,
	qSavepoint, qRollbackTo, qRelease, qMeta}

// readerQueries includes the watch query for each shape rangeWhere produces.
var readerQueries = []string{qGet, qRevision, qMeta, qLookup,
	watchQuery("1"), watchQuery("key >= ? AND key < ?"), watchQuery("key >= ?")}

// schemaVersion is stored in PRAGMA user_version so that an older binary refuses a file
// written by a newer one instead of misreading it.
const schemaVersion = 1

// Config configures the SQLite backend.
type Config struct {
	// Path is the database file. Its directory is created if missing.
	Path string
	// Clock decides when items expire and drives the sweeper. Defaults to the wall clock.
	Clock clock.Clock
	// Logger defaults to discarding.
	Logger *slog.Logger
	// SweepInterval is how often, by Clock, expired items are deleted (writing delete
	// events) and old events compacted. Expired items are invisible to reads before that.
	SweepInterval time.Duration
	// PollInterval is how often, in real time, watchers check for commits made by other
	// processes sharing the file. Commits made through this Backend wake watchers at once.
	PollInterval time.Duration
	// EventRetention is how many of the most recent events are kept for watchers.
	EventRetention int
	// EventMaxAge is how long, by Clock, events are kept for watchers.
	EventMaxAge time.Duration
	// ReadConns is the size of the read connection pool.
	ReadConns int
	// BusyTimeout is how long a connection waits for a lock held by another process.
	BusyTimeout time.Duration
}

// CheckAndSetDefaults validates c and fills in defaults.
func (c *Config) CheckAndSetDefaults() error {
	if c.Path == "" {
		return errs.BadParameterf("sqlite backend: path is required")
	}
	// The driver splits the DSN at the first '?', so such a path would be misread.
	if strings.ContainsRune(c.Path, '?') {
		return errs.BadParameterf("sqlite backend: path %q must not contain '?'", c.Path)
	}
	if c.Clock == nil {
		c.Clock = clock.Real()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.SweepInterval <= 0 {
		c.SweepInterval = DefaultSweepInterval
	}
	if c.PollInterval <= 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.EventRetention <= 0 {
		c.EventRetention = DefaultEventRetention
	}
	if c.EventMaxAge <= 0 {
		c.EventMaxAge = DefaultEventMaxAge
	}
	if c.ReadConns <= 0 {
		c.ReadConns = DefaultReadConns
	}
	if c.BusyTimeout <= 0 {
		c.BusyTimeout = DefaultBusyTimeout
	}
	return nil
}

// Backend is the SQLite implementation of backend.Backend.
type Backend struct {
	cfg   Config
	log   *slog.Logger
	clock clock.Clock

	w      *sql.DB // exactly one connection: the only writer, used by writeLoop alone
	wp     prepared
	writes chan writeReq
	r      *sql.DB // readers
	rp     prepared

	notify   notifier
	seen     atomic.Int64 // highest revision watchers have been woken for
	watchers atomic.Int64 // live watchers; the poller idles when there are none

	ctx       context.Context // done when Close starts
	cancel    context.CancelFunc
	mu        sync.Mutex // orders wg.Add in Watch before wg.Wait in Close; guards prefixes
	closing   bool
	prefixes  map[*watcher][]byte // what each live watcher watches
	wg        sync.WaitGroup      // background loops and watchers
	closeOnce sync.Once
	closeErr  error
}

var _ backend.Backend = (*Backend)(nil)

// New opens (creating if needed) the database at cfg.Path and starts the sweeper.
func New(ctx context.Context, cfg Config) (*Backend, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o700); err != nil {
		return nil, fmt.Errorf("sqlite backend: creating data directory: %w", err)
	}
	// The file holds CA keys and tokens. SQLite gives the -wal and -shm files the main
	// file's mode, so creating it 0600 up front covers all three.
	f, err := os.OpenFile(cfg.Path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sqlite backend: opening database file: %w", err)
	}
	f.Close()

	busy := cfg.BusyTimeout.Milliseconds()
	// _txlock=immediate takes the write lock at BEGIN, so a read-then-write transaction
	// cannot fail with SQLITE_BUSY at its first write when another process holds the lock.
	// journal_size_limit truncates the WAL after a checkpoint, so a burst of large
	// values does not leave a WAL file of the same size behind for good.
	wdsn := fmt.Sprintf("%s?_busy_timeout=%d&_journal_mode=WAL&_synchronous=FULL&_txlock=immediate&_pragma=journal_size_limit(%d)",
		cfg.Path, busy, 64<<20)
	w, err := sql.Open("sqlite", wdsn)
	if err != nil {
		return nil, fmt.Errorf("sqlite backend: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxIdleTime(0)
	w.SetConnMaxLifetime(0)
	if err := migrate(ctx, w); err != nil {
		_ = w.Close()
		return nil, err
	}
	rdsn := fmt.Sprintf("%s?_busy_timeout=%d&_query_only=1", cfg.Path, busy)
	r, err := sql.Open("sqlite", rdsn)
	if err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("sqlite backend: %w", err)
	}
	r.SetMaxOpenConns(cfg.ReadConns)
	r.SetMaxIdleConns(cfg.ReadConns)
	wp, err := prepare(ctx, w, writerQueries...)
	if err != nil {
		_ = errors.Join(w.Close(), r.Close())
		return nil, err
	}
	rp, err := prepare(ctx, r, readerQueries...)
	if err != nil {
		wp.close()
		_ = errors.Join(w.Close(), r.Close())
		return nil, err
	}

	b := &Backend{cfg: cfg, log: cfg.Logger, clock: cfg.Clock, w: w, wp: wp, r: r, rp: rp, writes: make(chan writeReq)}
	b.notify.init()
	b.ctx, b.cancel = context.WithCancel(context.Background())
	rev, err := b.CurrentRevision(ctx)
	if err != nil {
		_ = b.Close()
		return nil, err
	}
	b.seen.Store(rev)
	b.wg.Add(3)
	go b.writeLoop()
	go b.sweepLoop()
	go b.pollLoop()
	return b, nil
}

func migrate(ctx context.Context, db *sql.DB) error {
	var version int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return fmt.Errorf("sqlite backend: reading schema version: %w", err)
	}
	if version > schemaVersion {
		return fmt.Errorf("sqlite backend: database schema version %d is newer than this binary supports (%d)", version, schemaVersion)
	}
	if version == schemaVersion {
		return nil
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite backend: migrating: %w", err)
	}
	defer tx.Rollback()
	stmts := []string{
		// expires is Unix nanoseconds, 0 for never.
		`CREATE TABLE IF NOT EXISTS kv (
			key      BLOB PRIMARY KEY,
			value    BLOB,
			expires  INTEGER NOT NULL DEFAULT 0,
			revision INTEGER NOT NULL
		)`,
		`CREATE INDEX IF NOT EXISTS kv_expires ON kv (expires) WHERE expires != 0`,
		// One row per revision: every revision is exactly one change to one key, which
		// is what lets a watcher resume from any revision it has seen. at is the Clock
		// time of the change, for age-based compaction.
		`CREATE TABLE IF NOT EXISTS events (
			revision INTEGER PRIMARY KEY,
			type     INTEGER NOT NULL,
			key      BLOB NOT NULL,
			value    BLOB,
			expires  INTEGER NOT NULL DEFAULT 0,
			at       INTEGER NOT NULL
		)`,
		`CREATE INDEX IF NOT EXISTS events_at ON events (at)`,
		// revision is the last revision handed out; compacted is the highest revision
		// whose event has been dropped, so watches must start at or after it.
		`CREATE TABLE IF NOT EXISTS meta (
			id        INTEGER PRIMARY KEY CHECK (id = 1),
			revision  INTEGER NOT NULL,
			compacted INTEGER NOT NULL
		)`,
		`INSERT OR IGNORE INTO meta (id, revision, compacted) VALUES (1, 0, 0)`,
		fmt.Sprintf("PRAGMA user_version = %d", schemaVersion),
	}
	for _, s := range stmts {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("sqlite backend: migrating: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite backend: migrating: %w", err)
	}
	return nil
}

// Close stops the sweeper and every watcher, then closes the database.
func (b *Backend) Close() error {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closing = true
		b.mu.Unlock()
		b.cancel()
		b.wg.Wait()
		b.wp.close()
		b.rp.close()
		b.closeErr = errors.Join(b.w.Close(), b.r.Close())
	})
	return b.closeErr
}

func (b *Backend) checkOpen() error {
	if b.ctx.Err() != nil {
		return backend.ErrClosed
	}
	return nil
}

// now is the Clock's time in the unit stored in the expires columns.
func (b *Backend) now() int64 { return b.clock.Now().UnixNano() }

func toNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

func live(expires, now int64) bool { return expires == 0 || expires > now }

// rangeWhere returns a WHERE clause selecting keys that start with prefix. An empty
// prefix selects everything; it is spelled out because the driver binds a zero-length
// []byte as NULL, which would match nothing.
func rangeWhere(prefix []byte) (string, []any) {
	if len(prefix) == 0 {
		return "1", nil
	}
	if end := backend.PrefixEnd(prefix); end != nil {
		return "key >= ? AND key < ?", []any{prefix, end}
	}
	return "key >= ?", []any{prefix}
}

func checkItem(i backend.Item) error {
	if len(i.Key) == 0 {
		return errs.BadParameterf("backend: key must not be empty")
	}
	return nil
}

// Get implements backend.Backend.
func (b *Backend) Get(ctx context.Context, key []byte) (*backend.Item, error) {
	if err := b.checkOpen(); err != nil {
		return nil, err
	}
	if len(key) == 0 {
		return nil, errs.BadParameterf("backend: key must not be empty")
	}
	it := backend.Item{Key: append([]byte(nil), key...)}
	var expires int64
	err := b.rp.queryRow(ctx, b.r, qGet, key).
		Scan(&it.Value, &expires, &it.Revision)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && !live(expires, b.now())) {
		return nil, errs.NotFoundf("backend: key not found")
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite backend: get: %w", err)
	}
	it.Expires = fromNanos(expires)
	return &it, nil
}

// GetRange implements backend.Backend.
func (b *Backend) GetRange(ctx context.Context, prefix []byte, limit int) ([]backend.Item, error) {
	if err := b.checkOpen(); err != nil {
		return nil, err
	}
	where, args := rangeWhere(prefix)
	q := `SELECT key, value, expires, revision FROM kv WHERE ` + where + ` AND (expires = 0 OR expires > ?) ORDER BY key`
	args = append(args, b.now())
	if limit > 0 {
		q += ` LIMIT ?`
		args = append(args, limit)
	}
	rows, err := b.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite backend: get range: %w", err)
	}
	defer rows.Close()
	var items []backend.Item
	for rows.Next() {
		var it backend.Item
		var expires int64
		if err := rows.Scan(&it.Key, &it.Value, &expires, &it.Revision); err != nil {
			return nil, fmt.Errorf("sqlite backend: get range: %w", err)
		}
		it.Expires = fromNanos(expires)
		items = append(items, it)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite backend: get range: %w", err)
	}
	return items, nil
}

// CurrentRevision implements backend.Backend.
func (b *Backend) CurrentRevision(ctx context.Context) (int64, error) {
	if err := b.checkOpen(); err != nil {
		return 0, err
	}
	var rev int64
	if err := b.rp.queryRow(ctx, b.r, qRevision).Scan(&rev); err != nil {
		return 0, fmt.Errorf("sqlite backend: current revision: %w", err)
	}
	return rev, nil
}

// write runs fn in an immediate transaction on the writer connection, commits it, and
// wakes watchers. fn returns the highest revision it wrote (0 for none).
// writeFunc is one write, run inside the writer's transaction. It must use the ctx it is
// given, not its caller's: a cancelled query would make SQLite roll back the whole
// transaction, and with it the other writes batched into it.
type writeFunc func(ctx context.Context, tx ptx) (int64, error)

type writeReq struct {
	op string
	// scope is the key the write changes, or the prefix of the keys it may change; nil
	// means any key. A commit wakes the watchers only when some write's scope overlaps a
	// watched prefix.
	scope []byte
	fn    writeFunc
	done  chan writeRes
}

type writeRes struct {
	rev int64
	err error
}

// maxBatch bounds how many writes share one transaction (and one fsync).
const maxBatch = 128

// write runs fn in the single writer's transaction. Writes that arrive while a commit is
// in flight are batched into the next transaction, each under its own savepoint, so that
// concurrent writers share one fsync (group commit) while each still succeeds or fails
// on its own. A write is acknowledged only after its transaction is durable.
func (b *Backend) write(ctx context.Context, op string, scope []byte, fn writeFunc) (int64, error) {
	if err := b.checkOpen(); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	req := writeReq{op: op, scope: scope, fn: fn, done: make(chan writeRes, 1)}
	select {
	case b.writes <- req:
	case <-b.ctx.Done():
		return 0, backend.ErrClosed
	}
	res := <-req.done
	return res.rev, res.err
}

// writeLoop is the one goroutine that owns the writer connection.
func (b *Backend) writeLoop() {
	defer b.wg.Done()
	batch := make([]writeReq, 0, maxBatch)
	for {
		select {
		case <-b.ctx.Done():
			return
		case req := <-b.writes:
			batch = append(batch[:0], req)
		drain:
			for len(batch) < maxBatch {
				select {
				case r := <-b.writes:
					batch = append(batch, r)
				default:
					break drain
				}
			}
			b.commitBatch(batch)
		}
	}
}

func (b *Backend) commitBatch(batch []writeReq) {
	ctx := context.Background()
	results := make([]writeRes, len(batch))
	fail := func(err error) {
		for _, req := range batch {
			req.done <- writeRes{err: fmt.Errorf("sqlite backend: %s: %w", req.op, err)}
		}
	}
	sqltx, err := b.w.BeginTx(ctx, nil)
	if err != nil {
		fail(err)
		return
	}
	defer sqltx.Rollback()
	tx := ptx{sqltx, b.wp}
	savepoints := len(batch) > 1
	var maxRev int64
	for i, req := range batch {
		if savepoints {
			if _, err := tx.ExecContext(ctx, qSavepoint); err != nil {
				fail(err)
				return
			}
		}
		rev, err := req.fn(ctx, tx)
		if err != nil {
			if errs.KindOf(err) == errs.Unknown {
				err = fmt.Errorf("sqlite backend: %s: %w", req.op, err)
			}
			results[i] = writeRes{err: err}
			if savepoints {
				if _, rerr := tx.ExecContext(ctx, qRollbackTo); rerr != nil {
					fail(rerr)
					return
				}
			} else {
				// The only write failed: nothing to commit.
				req.done <- results[i]
				return
			}
		} else {
			results[i] = writeRes{rev: rev}
			maxRev = max(maxRev, rev)
		}
		if savepoints {
			if _, err := tx.ExecContext(ctx, qRelease); err != nil {
				fail(err)
				return
			}
		}
	}
	if maxRev > 0 {
		if err := tx.Commit(); err != nil {
			fail(fmt.Errorf("commit: %w", err))
			return
		}
		if b.watched(batch) {
			b.wake(maxRev)
		}
	}
	for i, req := range batch {
		req.done <- results[i]
	}
}

// current is what a transaction finds at a key before changing it.
type current struct {
	exists   bool // a row exists, live or not
	live     bool
	revision int64
}

func lookup(ctx context.Context, tx ptx, key []byte, now int64) (current, error) {
	var c current
	var expires int64
	err := tx.QueryRowContext(ctx, qLookup, key).Scan(&expires, &c.revision)
	if errors.Is(err, sql.ErrNoRows) {
		return c, nil
	}
	if err != nil {
		return c, err
	}
	c.exists = true
	c.live = live(expires, now)
	return c, nil
}

func nextRevision(ctx context.Context, tx ptx) (int64, error) {
	var rev int64
	err := tx.QueryRowContext(ctx, qNextRevision).Scan(&rev)
	return rev, err
}

// deleteKey removes key under a new revision and records the delete event.
func deleteKey(ctx context.Context, tx ptx, key []byte, now int64) (int64, error) {
	rev, err := nextRevision(ctx, tx)
	if err != nil {
		return 0, err
	}
	return rev, deleteAt(ctx, tx, key, now, rev)
}

// deleteAt removes key and records the delete event under rev, which the caller has
// taken from the revision counter.
func deleteAt(ctx context.Context, tx ptx, key []byte, now, rev int64) error {
	if _, err := tx.ExecContext(ctx, qDeleteKV, key); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, qDeleteEvent, rev, int(backend.EventDelete), key, now)
	return err
}

// store writes i under a new revision and records the put event. An expired row still
// at the key is first deleted under its own revision, so watchers see the expiry before
// the new value, exactly as if the sweeper had run first.
func store(ctx context.Context, tx ptx, i backend.Item, cur current, now int64) (int64, error) {
	if cur.exists && !cur.live {
		if _, err := deleteKey(ctx, tx, i.Key, now); err != nil {
			return 0, err
		}
	}
	rev, err := nextRevision(ctx, tx)
	if err != nil {
		return 0, err
	}
	return rev, putAt(ctx, tx, i, now, rev)
}

// putAt writes i and records the put event under rev, which the caller has taken from
// the revision counter.
func putAt(ctx context.Context, tx ptx, i backend.Item, now, rev int64) error {
	value := i.Value
	if value == nil {
		value = []byte{}
	}
	exp := toNanos(i.Expires)
	if _, err := tx.ExecContext(ctx, qUpsert, i.Key, value, exp, rev); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, qPutEvent, rev, int(backend.EventPut), i.Key, value, exp, now)
	return err
}

// Put implements backend.Backend.
func (b *Backend) Put(ctx context.Context, i backend.Item) (int64, error) {
	if err := checkItem(i); err != nil {
		return 0, err
	}
	return b.write(ctx, "put", i.Key, func(ctx context.Context, tx ptx) (int64, error) {
		now := b.now()
		cur, err := lookup(ctx, tx, i.Key, now)
		if err != nil {
			return 0, err
		}
		return store(ctx, tx, i, cur, now)
	})
}

// Create implements backend.Backend.
func (b *Backend) Create(ctx context.Context, i backend.Item) (int64, error) {
	if err := checkItem(i); err != nil {
		return 0, err
	}
	return b.write(ctx, "create", i.Key, func(ctx context.Context, tx ptx) (int64, error) {
		now := b.now()
		cur, err := lookup(ctx, tx, i.Key, now)
		if err != nil {
			return 0, err
		}
		if cur.live {
			return 0, errs.AlreadyExistsf("backend: key already exists")
		}
		return store(ctx, tx, i, cur, now)
	})
}

// CompareAndSwap implements backend.Backend.
func (b *Backend) CompareAndSwap(ctx context.Context, i backend.Item, expectedRevision int64) (int64, error) {
	if err := checkItem(i); err != nil {
		return 0, err
	}
	if expectedRevision <= 0 {
		return 0, errs.BadParameterf("backend: expected revision must be positive")
	}
	if err := b.checkOpen(); err != nil {
		return 0, err
	}
	// Under contention most swaps lose. Deciding that on a read connection keeps the
	// losers out of the single writer's queue, where each would cost a lock round trip
	// ahead of the one swap that can win. A failure seen here is as linearizable as one
	// seen in the transaction; a match is checked again under the write lock.
	var rev, expires int64
	err := b.r.QueryRowContext(ctx, qLookup, i.Key).Scan(&expires, &rev)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("sqlite backend: compare and swap: %w", err)
	}
	if err := casCheck(current{exists: err == nil, live: err == nil && live(expires, b.now()), revision: rev}, expectedRevision); err != nil {
		return 0, err
	}
	return b.write(ctx, "compare and swap", i.Key, func(ctx context.Context, tx ptx) (int64, error) {
		now := b.now()
		cur, err := lookup(ctx, tx, i.Key, now)
		if err != nil {
			return 0, err
		}
		if err := casCheck(cur, expectedRevision); err != nil {
			return 0, err
		}
		return store(ctx, tx, i, cur, now)
	})
}

func casCheck(cur current, expected int64) error {
	if !cur.live {
		return errs.NotFoundf("backend: key not found")
	}
	if cur.revision != expected {
		return errs.CompareFailedf("backend: key is at revision %d, not %d", cur.revision, expected)
	}
	return nil
}

// Delete implements backend.Backend.
func (b *Backend) Delete(ctx context.Context, key []byte) error {
	if len(key) == 0 {
		return errs.BadParameterf("backend: key must not be empty")
	}
	_, err := b.write(ctx, "delete", key, func(ctx context.Context, tx ptx) (int64, error) {
		now := b.now()
		cur, err := lookup(ctx, tx, key, now)
		if err != nil {
			return 0, err
		}
		// An expired row is left for the sweeper, which reports it as a delete.
		if !cur.live {
			return 0, errs.NotFoundf("backend: key not found")
		}
		return deleteKey(ctx, tx, key, now)
	})
	return err
}

// DeleteRange implements backend.Backend.
func (b *Backend) DeleteRange(ctx context.Context, prefix []byte) error {
	where, args := rangeWhere(prefix)
	_, err := b.write(ctx, "delete range", prefix, func(ctx context.Context, tx ptx) (int64, error) {
		// Expired rows are deleted too: their delete event is their expiry notice.
		rev, _, err := deleteWhere(ctx, tx, `SELECT key FROM kv WHERE `+where+` ORDER BY key`, args, b.now())
		return rev, err
	})
	return err
}

// deleteWhere deletes every kv row whose key query selects, one revision and event per
// key, in the query's order. It returns the last revision written (0 if none) and how
// many keys it deleted.
func deleteWhere(ctx context.Context, tx ptx, query string, args []any, now int64) (int64, int, error) {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return 0, 0, err
	}
	var keys [][]byte
	for rows.Next() {
		var k []byte
		if err := rows.Scan(&k); err != nil {
			rows.Close()
			return 0, 0, err
		}
		keys = append(keys, k)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, 0, err
	}
	var rev int64
	for _, k := range keys {
		if rev, err = deleteKey(ctx, tx, k, now); err != nil {
			return 0, 0, err
		}
	}
	return rev, len(keys), nil
}

// SweepExpired deletes every item whose expiry has passed by the Clock, writing a delete
// event for each, and returns how many it deleted. The sweeper calls it every
// SweepInterval; tests call it directly instead of waiting.
func (b *Backend) SweepExpired(ctx context.Context) (int, error) {
	const batch = 1000
	total := 0
	for {
		n := 0
		_, err := b.write(ctx, "sweep", nil, func(ctx context.Context, tx ptx) (rev int64, err error) {
			// A bounded batch per transaction: a long sweep must not hold the write lock
			// against user writes.
			now := b.now()
			rev, n, err = deleteWhere(ctx, tx, `SELECT key FROM kv WHERE expires != 0 AND expires <= ? ORDER BY key LIMIT ?`,
				[]any{now, batch}, now)
			return rev, err
		})
		if err != nil {
			return total, err
		}
		total += n
		if n < batch {
			return total, nil
		}
	}
}

// Compact drops events outside the retention window (EventRetention most recent, and no
// older than EventMaxAge by the Clock). Watches that would need them get ErrCompacted.
func (b *Backend) Compact(ctx context.Context) error {
	if err := b.checkOpen(); err != nil {
		return err
	}
	var cur int64
	if err := b.rp.queryRow(ctx, b.r, qRevision).Scan(&cur); err != nil {
		return fmt.Errorf("sqlite backend: compact: %w", err)
	}
	through := cur - int64(b.cfg.EventRetention)
	var byAge sql.NullInt64
	cutoff := b.clock.Now().Add(-b.cfg.EventMaxAge).UnixNano()
	if err := b.r.QueryRowContext(ctx, `SELECT max(revision) FROM events WHERE at < ?`, cutoff).Scan(&byAge); err != nil {
		return fmt.Errorf("sqlite backend: compact: %w", err)
	}
	if byAge.Valid && byAge.Int64 > through {
		through = byAge.Int64
	}
	return b.CompactThrough(ctx, through)
}

// CompactThrough drops the events at and below revision rev, so watches must start at rev
// or later. Tests use it to force ErrCompacted.
func (b *Backend) CompactThrough(ctx context.Context, rev int64) error {
	if rev <= 0 {
		return nil
	}
	_, err := b.write(ctx, "compact", nil, func(ctx context.Context, tx ptx) (int64, error) {
		var cur, compacted int64
		if err := tx.QueryRowContext(ctx, qMeta).Scan(&cur, &compacted); err != nil {
			return 0, err
		}
		rev := min(rev, cur)
		if rev <= compacted {
			return 0, nil
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM events WHERE revision <= ?`, rev); err != nil {
			return 0, err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE meta SET compacted = ? WHERE id = 1`, rev); err != nil {
			return 0, err
		}
		// A non-zero result makes write commit; rev <= cur, so waking is a no-op.
		return rev, nil
	})
	return err
}

func (b *Backend) sweepLoop() {
	defer b.wg.Done()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-b.clock.After(b.cfg.SweepInterval):
		}
		if n, err := b.SweepExpired(b.ctx); err != nil {
			if b.ctx.Err() == nil {
				b.log.Warn("Sweeping expired items failed.", "error", err)
			}
		} else if n > 0 {
			b.log.Debug("Swept expired items.", "count", n)
		}
		if err := b.Compact(b.ctx); err != nil && b.ctx.Err() == nil {
			b.log.Warn("Compacting events failed.", "error", err)
		}
	}
}

// pollLoop notices commits made by other processes on the same file. It runs on real
// time, not the Clock: it is a latency bound for cross-process watches, not a point in
// the data's lifetime, and a fake clock in tests must not be able to stall it.
func (b *Backend) pollLoop() {
	defer b.wg.Done()
	t := time.NewTicker(b.cfg.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-t.C:
		}
		if b.watchers.Load() == 0 {
			continue
		}
		rev, err := b.CurrentRevision(b.ctx)
		if err != nil {
			if b.ctx.Err() == nil {
				b.log.Warn("Polling for new revisions failed.", "error", err)
			}
			continue
		}
		b.wake(rev)
	}
}

// watched reports whether a write of batch may have changed a key some watcher in this
// process watches. The audit log's batches, written every 50 ms on a busy proxy, touch no
// watched prefix and so wake nobody. A watcher that is not woken reads those revisions
// (skipping them) with its next read; other processes' watchers poll.
func (b *Backend) watched(batch []writeReq) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, req := range batch {
		if req.scope == nil {
			return true
		}
		for _, p := range b.prefixes {
			if bytes.HasPrefix(req.scope, p) || bytes.HasPrefix(p, req.scope) {
				return true
			}
		}
	}
	return false
}

// wake tells watchers that revisions up to rev exist, unless they were already told.
func (b *Backend) wake(rev int64) {
	for {
		seen := b.seen.Load()
		if rev <= seen {
			return
		}
		if b.seen.CompareAndSwap(seen, rev) {
			b.notify.broadcast()
			return
		}
	}
}

// notifier is a broadcast: waiters take the current channel, broadcast closes it and
// installs a new one. Taking the channel before reading the database means a commit that
// lands during the read still wakes the reader.
type notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

func (n *notifier) init() { n.ch = make(chan struct{}) }

func (n *notifier) wait() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ch
}

func (n *notifier) broadcast() {
	n.mu.Lock()
	defer n.mu.Unlock()
	close(n.ch)
	n.ch = make(chan struct{})
}

// Package audit owns Keyport's audit log: the event shape, the writer that stores each
// event in the backend (so every auth process can search it) and appends it as a JSON line
// under data_dir, and search with filters for `tctl audit ls`.
package audit

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keyport/keyport/internal/backend"
	"github.com/keyport/keyport/internal/clock"
)

// Event types.
const (
	ResourceCreate    = "resource.create"
	ResourceUpdate    = "resource.update"
	ResourceDelete    = "resource.delete"
	UserCreate        = "user.create"
	UserReset         = "user.reset"
	UserLogin         = "user.login"
	UserLoginFailure  = "user.login.failure"
	UserLocked        = "user.locked"
	BotCreate         = "bot.create"
	BotUpdate         = "bot.update"
	BotJoin           = "bot.join"
	BotJoinFailure    = "bot.join.failure"
	BotRenew          = "bot.renew"
	BotInstanceLocked = "bot.instance.locked"
	TokenCreate       = "token.create"
	LockCreate        = "lock.create"
	CertIssue         = "cert.issue"
	KubeRequest       = "kube.request"
	// APIDenied is an Auth API call refused with PermissionDenied or Unauthenticated.
	APIDenied    = "api.denied"
	SessionStart = "session.start"
	SessionEnd   = "session.end"
	// SessionUpload: a session's recording was stored (or, unsuccessful, stays pending).
	SessionUpload = "session.upload"
	// SessionJoin: a user joined a live session to watch it (or was refused).
	SessionJoin = "session.join"
	// Access requests: created (or refused), reviewed (approved or denied, or refused),
	// deleted (tsh request drop).
	AccessRequestCreate = "access_request.create"
	AccessRequestReview = "access_request.review"
	AccessRequestDelete = "access_request.delete"
)

// Event is one audit record. Fields holds what is specific to the type.
type Event struct {
	Time          time.Time      `json:"time"`
	Type          string         `json:"type"`
	ID            string         `json:"id"`
	User          string         `json:"user,omitempty"`
	Roles         []string       `json:"roles,omitempty"`
	BotName       string         `json:"bot_name,omitempty"`
	BotInstanceID string         `json:"bot_instance_id,omitempty"`
	Success       bool           `json:"success"`
	Message       string         `json:"message,omitempty"`
	Fields        map[string]any `json:"fields,omitempty"`
}

// Emitter records events.
type Emitter interface {
	Emit(ctx context.Context, e Event)
}

// Discard drops events; for tests that do not look at the log.
type Discard struct{}

// Emit implements Emitter.
func (Discard) Emit(context.Context, Event) {}

// Recorder keeps the events emitted to it, in order; for tests that look at them.
type Recorder struct {
	mu     sync.Mutex
	events []Event
}

// Emit implements Emitter.
func (r *Recorder) Emit(_ context.Context, e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

// Events returns a copy of the events recorded so far.
func (r *Recorder) Events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// Count returns how many recorded events have type typ.
func (r *Recorder) Count(typ string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.events {
		if e.Type == typ {
			n++
		}
	}
	return n
}

// Prefix is where events live in the backend.
const Prefix = "/audit/"

// Log writes events to the backend and to a JSON-lines file.
//
// One writer goroutine stores events in batches, each one backend record (gzip-compressed
// JSON lines) and one file write, so that a busy proxy pays for one backend write per batch instead
// of one per request. Emit waits until its event is stored, except for kube.request events, the one
// type emitted once per Kubernetes request: those are queued and the request goes on.
// Queued events wait at most FlushDelay (50ms) for others to share their write. The
// queue is bounded; when it is full, Emit waits for room, so events are never dropped,
// and Close stores everything queued before it returns. What a crash can lose is the
// kube.request events still queued (normally the last FlushDelay's worth); every other
// event is stored before Emit returns.
type Log struct {
	backend backend.Backend
	clock   clock.Clock
	logger  *slog.Logger
	ttl     time.Duration
	seq     atomic.Uint64
	node    string
	file    *os.File

	flushDelay time.Duration
	zw         *gzip.Writer // the writer goroutine's
	zbuf       bytes.Buffer
	fbuf       []byte // the writer goroutine's batch for events.log, reused

	// mu guards closed and the sends on queue against Close closing it.
	mu     sync.RWMutex
	closed bool
	queue  chan pending
	wake   chan struct{} // cuts the writer's FlushDelay short
	done   chan struct{} // closed when the writer has stored everything and ended

	closeOnce sync.Once
	closeErr  error
}

// pending is an encoded event waiting for the writer. stored, when not nil, is closed
// once the event has been written.
type pending struct {
	id      string
	data    []byte // the event's JSON
	expires time.Time
	stored  chan struct{}
}

// Config configures a Log.
type Config struct {
	Backend backend.Backend
	Clock   clock.Clock
	Logger  *slog.Logger
	// Dir, when set, receives events.log as JSON lines (0600, directory 0700).
	Dir string
	// Node distinguishes event IDs made by different processes.
	Node string
	// Retention is how long events stay in the backend; default 30 days.
	Retention time.Duration
	// QueueSize bounds the events waiting for the writer; default 4096.
	QueueSize int
	// FlushDelay is how long queued (kube.request) events may wait for more to share
	// their backend write; default 50ms. Negative means no wait.
	FlushDelay time.Duration
}

// storeTimeout bounds the backend writes of one batch.
const storeTimeout = 30 * time.Second

// maxRecordEvents bounds the events in one backend record.
const maxRecordEvents = 256

// New opens the audit log and starts its writer; Close stops it.
func New(cfg Config) (*Log, error) {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Retention == 0 {
		cfg.Retention = 30 * 24 * time.Hour
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 4096
	}
	if cfg.FlushDelay == 0 {
		cfg.FlushDelay = 50 * time.Millisecond
	}
	l := &Log{backend: cfg.Backend, clock: cfg.Clock, logger: cfg.Logger, ttl: cfg.Retention, node: cfg.Node,
		flushDelay: cfg.FlushDelay, zw: newGzip(), queue: make(chan pending, cfg.QueueSize), wake: make(chan struct{}, 1), done: make(chan struct{})}
	if cfg.Dir != "" {
		if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("creating audit directory: %w", err)
		}
		f, err := os.OpenFile(filepath.Join(cfg.Dir, "events.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return nil, fmt.Errorf("opening audit log: %w", err)
		}
		l.file = f
	}
	go l.writeLoop()
	return l, nil
}

// queued reports whether Emit returns before an event of type typ is stored.
func queued(typ string) bool { return typ == KubeRequest }

// newID makes a unique, time-ordered event ID: the time, this process's node name and a
// sequence number, "20261125T150405.123456789-node-00000042".
func (l *Log) newID(t time.Time) string {
	b := make([]byte, 0, 48+len(l.node))
	b = appendIDTime(b, t.UTC())
	b = append(b, '-')
	b = append(b, l.node...)
	b = append(b, '-')
	n := strconv.AppendUint(nil, l.seq.Add(1), 10)
	for range 8 - len(n) {
		b = append(b, '0')
	}
	return string(append(b, n...))
}

// appendIDTime appends t as "20060102T150405.000000000" without time.Format's layout
// parsing (a kube.request event is made per request); years outside 0–9999 go through
// AppendFormat.
func appendIDTime(b []byte, t time.Time) []byte {
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.AppendFormat(b, "20060102T150405.000000000")
	}
	hour, minute, sec := t.Clock()
	b = appendDigits(b, year, 4)
	b = appendDigits(b, int(month), 2)
	b = appendDigits(b, day, 2)
	b = append(b, 'T')
	b = appendDigits(b, hour, 2)
	b = appendDigits(b, minute, 2)
	b = appendDigits(b, sec, 2)
	b = append(b, '.')
	return appendDigits(b, t.Nanosecond(), 9)
}

// appendDigits appends v (0 <= v < 10^width) zero-padded to width digits.
func appendDigits(b []byte, v, width int) []byte {
	n := len(b)
	for range width {
		b = append(b, 0)
	}
	for i := len(b) - 1; i >= n; i-- {
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return b
}

// Emit records e. A failure to record is logged, not returned: the action it describes
// has already happened. The event outlives the request it describes, so a cancelled ctx
// (a stream ended by a lock, a client that hung up) does not stop it being recorded.
func (l *Log) Emit(_ context.Context, e Event) {
	if e.Time.IsZero() {
		e.Time = l.clock.Now().UTC()
	}
	e.ID = l.newID(e.Time)
	p := pending{id: e.ID, data: e.appendJSON(make([]byte, 0, 512)), expires: e.Time.Add(l.ttl)}
	if !queued(e.Type) {
		p.stored = make(chan struct{})
	}
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		l.logger.Error("audit event after the audit log was closed; not recorded", "type", e.Type, "id", e.ID)
		return
	}
	l.queue <- p // waits for room when the writer is behind: events are never dropped
	if p.stored != nil || len(l.queue) >= cap(l.queue)/2 {
		select {
		case l.wake <- struct{}{}:
		default: // already woken
		}
	}
	l.mu.RUnlock()
	if p.stored != nil {
		<-p.stored
	}
}

// writeLoop is the one goroutine that stores events, a batch at a time. It wakes for the
// first event of a batch; when that event is queued (kube.request), it sleeps up to
// FlushDelay and then takes everything queued, so that a busy proxy pays for one backend
// transaction (one fsync) and one wake-up per FlushDelay instead of one per request. An
// Emit that waits, a half-full queue and Close cut the sleep short. The delay runs on
// real time, not the Clock: it bounds latency, and a fake clock must not stall it.
func (l *Log) writeLoop() {
	defer close(l.done)
	var batch []pending
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for p := range l.queue {
		batch = append(batch[:0], p)
		if p.stored == nil && l.flushDelay > 0 {
			timer.Reset(l.flushDelay)
			select {
			case <-timer.C:
			case <-l.wake:
			}
			timer.Stop()
		}
	drain:
		for {
			select {
			case p, ok := <-l.queue:
				if !ok {
					break drain
				}
				batch = append(batch, p)
			default:
				break drain
			}
		}
		l.store(batch)
	}
}

var gzipMagic = []byte{0x1f, 0x8b}

func newGzip() *gzip.Writer {
	zw, _ := gzip.NewWriterLevel(io.Discard, gzip.BestSpeed)
	return zw
}

// maxRecord bounds the bytes of events stored in one backend record.
const maxRecord = 256 << 10

// store writes a batch: to the backend as records of consecutive events (gzip-compressed
// JSON lines, keyed by the first event's ID), so that the cost of a backend write is
// shared by the batch and a month of kube.request events takes a tenth of the space, and
// to the file, uncompressed, in one write.
func (l *Log) store(batch []pending) {
	if l.backend != nil {
		// A backend that stops answering (etcd unreachable) must not stall the writer,
		// and with it every Emit and shutdown, for good.
		ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		defer cancel()
		for rest := batch; len(rest) > 0; {
			n, size := 0, 0
			for n < len(rest) && n < maxRecordEvents && (n == 0 || size+len(rest[n].data) < maxRecord) {
				size += len(rest[n].data) + 1
				n++
			}
			rec := rest[:n]
			rest = rest[n:]
			l.zbuf.Reset()
			l.zw.Reset(&l.zbuf)
			for _, p := range rec {
				_, _ = l.zw.Write(p.data)
				_, _ = l.zw.Write([]byte{'\n'})
			}
			_ = l.zw.Close()
			value := bytes.Clone(l.zbuf.Bytes())
			expires := rec[0].expires
			for _, p := range rec[1:] {
				if p.expires.After(expires) {
					expires = p.expires
				}
			}
			item := backend.Item{Key: []byte(Prefix + rec[0].id), Value: value, Expires: expires}
			if _, err := l.backend.Put(ctx, item); err != nil {
				l.logger.Error("storing audit events", "count", len(rec), "error", err)
			}
		}
	}
	if l.file != nil {
		buf := l.fbuf[:0]
		for _, p := range batch {
			buf = append(buf, p.data...)
			buf = append(buf, '\n')
		}
		l.fbuf = buf
		if cap(buf) > 1<<20 {
			l.fbuf = nil // a burst's batch: do not keep its buffer
		}
		if _, err := l.file.Write(buf); err != nil {
			l.logger.Error("writing audit events", "count", len(batch), "error", err)
		}
	}
	for _, p := range batch {
		if p.stored != nil {
			close(p.stored)
		}
	}
}

// Close stores every queued event, stops the writer and closes the file. Events emitted
// after Close are logged as lost. The backend is the caller's to close, after this.
func (l *Log) Close() error {
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		close(l.queue)
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
	l.mu.Unlock()
	<-l.done
	l.closeOnce.Do(func() {
		if l.file != nil {
			l.closeErr = l.file.Close()
		}
	})
	return l.closeErr
}

// Filter selects events for Search.
type Filter struct {
	Since time.Time
	User  string
	Type  string
	Limit int
}

// Search returns matching events, oldest first, at most Limit (default 1000) of the newest.
func Search(ctx context.Context, b backend.Backend, f Filter) ([]Event, error) {
	prefix := []byte(Prefix)
	items, err := b.GetRange(ctx, prefix, 0)
	if err != nil {
		return nil, fmt.Errorf("reading audit events: %w", err)
	}
	var out []Event
	for _, it := range items {
		value := it.Value
		if bytes.HasPrefix(value, gzipMagic) {
			zr, err := gzip.NewReader(bytes.NewReader(value))
			if err != nil {
				continue
			}
			if value, err = io.ReadAll(zr); err != nil {
				continue
			}
		}
		for line := range bytes.Lines(value) {
			var e Event
			if err := json.Unmarshal(line, &e); err != nil {
				continue
			}
			if !f.Since.IsZero() && e.Time.Before(f.Since) {
				continue
			}
			if f.User != "" && e.User != f.User {
				continue
			}
			if f.Type != "" && e.Type != f.Type && !strings.HasPrefix(e.Type, f.Type+".") {
				continue
			}
			out = append(out, e)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	limit := f.Limit
	if limit <= 0 {
		limit = 1000
	}
	if len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out, nil
}

// Package audit owns Keyport's audit log: the event shape, the writer that stores each
// event in the backend (so every auth process can search it) and appends it as a JSON line
// under data_dir, and search with filters for `tctl audit ls`.
package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
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
	SessionStart      = "session.start"
	SessionEnd        = "session.end"
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

// Prefix is where events live in the backend.
const Prefix = "/audit/"

// Log writes events to the backend and to a JSON-lines file.
type Log struct {
	backend backend.Backend
	clock   clock.Clock
	logger  *slog.Logger
	ttl     time.Duration
	seq     atomic.Uint64
	node    string

	mu   sync.Mutex
	file *os.File
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
}

// New opens the audit log.
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
	l := &Log{backend: cfg.Backend, clock: cfg.Clock, logger: cfg.Logger, ttl: cfg.Retention, node: cfg.Node}
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
	return l, nil
}

// Emit records e. A failure to record is logged, not returned: the action it describes
// has already happened.
func (l *Log) Emit(ctx context.Context, e Event) {
	if e.Time.IsZero() {
		e.Time = l.clock.Now().UTC()
	}
	n := l.seq.Add(1)
	e.ID = fmt.Sprintf("%s-%s-%08d", e.Time.UTC().Format("20060102T150405.000000000"), l.node, n)
	data, err := json.Marshal(e)
	if err != nil {
		l.logger.Error("encoding audit event", "type", e.Type, "error", err)
		return
	}
	if l.backend != nil {
		key := []byte(Prefix + e.ID)
		// The event outlives the request it describes: a cancelled request (a stream
		// ended by a lock, a client that hung up) must still be recorded.
		ctx = context.WithoutCancel(ctx)
		if _, err := l.backend.Put(ctx, backend.Item{Key: key, Value: data, Expires: e.Time.Add(l.ttl)}); err != nil {
			l.logger.Error("storing audit event", "type", e.Type, "error", err)
		}
	}
	if l.file != nil {
		l.mu.Lock()
		_, err := l.file.Write(append(data, '\n'))
		l.mu.Unlock()
		if err != nil {
			l.logger.Error("writing audit event", "type", e.Type, "error", err)
		}
	}
}

// Close closes the file.
func (l *Log) Close() error {
	if l.file != nil {
		return l.file.Close()
	}
	return nil
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
		var e Event
		if err := json.Unmarshal(it.Value, &e); err != nil {
			continue
		}
		if !f.Since.IsZero() && e.Time.Before(f.Since) {
			continue
		}
		if f.User != "" && e.User != f.User {
			continue
		}
		if f.Type != "" && e.Type != f.Type && !bytes.HasPrefix([]byte(e.Type), []byte(f.Type+".")) {
			continue
		}
		out = append(out, e)
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

package audit

import (
	"context"
	"net"
	"sync"
	"time"

	"github.com/keyport/keyport/internal/clock"
)

// Coalescing defaults: per source, the first DefaultBurst refusals of a window are
// recorded one by one; the rest of the window's are counted and recorded as one event
// when the window ends.
const (
	DefaultBurst      = 10
	DefaultWindow     = time.Minute
	defaultMaxSources = 4096
)

// OtherSources is the source key that stands for every source past the coalescer's
// bound on distinct sources in one window.
const OtherSources = "(other sources)"

// CoalescerConfig configures a Coalescer. Zero values take the defaults.
type CoalescerConfig struct {
	Next       Emitter
	Clock      clock.Clock
	Burst      int
	Window     time.Duration
	MaxSources int
}

// Coalescer records refusals of callers with no verified identity, which anyone can
// send as fast as they like: a flood of them must not flood the audit log, and none may
// vanish. Per source (the client's IP address) and window, the first Burst events pass
// on as they are; each later one is counted, and when the window ends one event of the
// same type records how many there were ("coalesced"), their source and the last one's
// message. Memory is bounded: past MaxSources distinct sources in a window, new sources
// share one entry, OtherSources. Flush records the counts of ended windows; Close records
// every count, ended or not.
type Coalescer struct {
	cfg CoalescerConfig

	mu      sync.Mutex
	sources map[string]*sourceWindow
}

type sourceWindow struct {
	start      time.Time
	n          int
	suppressed int
	last       Event // the last suppressed event, the model of the summary
}

// NewCoalescer returns a Coalescer that passes events on to cfg.Next.
func NewCoalescer(cfg CoalescerConfig) *Coalescer {
	if cfg.Next == nil {
		cfg.Next = Discard{}
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
	}
	if cfg.Burst <= 0 {
		cfg.Burst = DefaultBurst
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.MaxSources <= 0 {
		cfg.MaxSources = defaultMaxSources
	}
	return &Coalescer{cfg: cfg, sources: map[string]*sourceWindow{}}
}

// Emit records e, a refusal of a client at addr (host:port), or counts it when the
// client's host is past its burst.
func (c *Coalescer) Emit(ctx context.Context, addr string, e Event) {
	source := SourceHost(addr)
	now := c.cfg.Clock.Now()
	var summary *Event
	c.mu.Lock()
	w := c.sources[source]
	if w == nil && len(c.sources) >= c.cfg.MaxSources {
		source = OtherSources
		w = c.sources[source]
	}
	if w != nil && now.Sub(w.start) >= c.cfg.Window {
		summary = c.summary(source, w)
		w = nil
	}
	if w == nil {
		w = &sourceWindow{start: now}
		c.sources[source] = w
	}
	w.n++
	pass := w.n <= c.cfg.Burst
	if !pass {
		w.suppressed++
		w.last = e
	}
	c.mu.Unlock()
	if summary != nil {
		c.cfg.Next.Emit(ctx, *summary)
	}
	if pass {
		c.cfg.Next.Emit(ctx, e)
	}
}

// summary is the event that stands for w's suppressed events, or nil when there were
// none. The caller holds c.mu.
func (c *Coalescer) summary(source string, w *sourceWindow) *Event {
	if w.suppressed == 0 {
		return nil
	}
	e := w.last
	fields := make(map[string]any, len(e.Fields)+3)
	for k, v := range e.Fields {
		fields[k] = v
	}
	fields["coalesced"] = w.suppressed
	fields["source"] = source
	fields["window_start"] = w.start.UTC().Format(time.RFC3339)
	e.Fields = fields
	e.Time, e.ID = time.Time{}, ""
	return &e
}

// SourceHost is the host of a client address (host:port), the source that refusals are
// coalesced by and that rate limits count per.
func SourceHost(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// Flush records the counts of every window that has ended and forgets those sources.
func (c *Coalescer) Flush(ctx context.Context) { c.flush(ctx, false) }

// Close records every count, of ended windows and open ones.
func (c *Coalescer) Close(ctx context.Context) { c.flush(ctx, true) }

func (c *Coalescer) flush(ctx context.Context, all bool) {
	now := c.cfg.Clock.Now()
	var out []Event
	c.mu.Lock()
	for src, w := range c.sources {
		if !all && now.Sub(w.start) < c.cfg.Window {
			continue
		}
		if s := c.summary(src, w); s != nil {
			out = append(out, *s)
		}
		delete(c.sources, src)
	}
	c.mu.Unlock()
	for _, e := range out {
		c.cfg.Next.Emit(ctx, e)
	}
}

// Run flushes once a window until ctx ends. The owner calls Close after that, before
// the audit log closes, to record the counts of open windows.
func (c *Coalescer) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.cfg.Clock.After(c.cfg.Window):
			c.Flush(ctx)
		}
	}
}

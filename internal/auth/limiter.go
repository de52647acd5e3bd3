package auth

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"sync"
	"time"

	"github.com/keyport/keyport/internal/audit"
	"github.com/keyport/keyport/internal/clock"
)

// limiter.go holds the per-source rate limits of joins and logins.

// limiter is a fixed-window counter per key, enough to blunt guessing of tokens and
// passwords from one source.
type limiter struct {
	clock  clock.Clock
	limit  int
	window time.Duration

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	start time.Time
	n     int
}

func newLimiter(clk clock.Clock, limit int, window time.Duration) *limiter {
	return &limiter{clock: clk, limit: limit, window: window, buckets: map[string]*bucket{}}
}

// Allow counts one attempt for key and reports whether it is within the limit.
func (l *limiter) Allow(key string) bool {
	now := l.clock.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buckets) > 10000 {
		for k, b := range l.buckets {
			if now.Sub(b.start) > l.window {
				delete(l.buckets, k)
			}
		}
	}
	b := l.buckets[key]
	if b == nil || now.Sub(b.start) > l.window {
		b = &bucket{start: now}
		l.buckets[key] = b
	}
	b.n++
	return b.n <= l.limit
}

func randomHex(r io.Reader, n int) (string, error) {
	if r == nil {
		r = rand.Reader
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return "", err
	}
	return hex.EncodeToString(buf), nil
}

// sourceHost is the host that join and login attempts are counted per.
var sourceHost = audit.SourceHost

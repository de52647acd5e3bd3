// Package clock owns the injected sources of time and randomness. Code that renews,
// expires or rotates anything takes a Clock, so tests move time by hand instead of
// sleeping; code that makes keys, tokens or jitter takes an io.Reader for randomness.
package clock

import (
	"crypto/rand"
	"io"
	"sort"
	"sync"
	"time"
)

// Clock is the time source.
type Clock interface {
	Now() time.Time
	// After waits for d to pass and then sends the current time on the channel.
	After(d time.Duration) <-chan time.Time
}

// Real is the wall clock.
func Real() Clock { return realClock{} }

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Rand is the default source of randomness: the operating system's CSPRNG.
var Rand io.Reader = rand.Reader

// Fake is a Clock that moves only when told to. The zero value is not usable; use NewFake.
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
	added   chan struct{}
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

// NewFake returns a fake clock set to start.
func NewFake(start time.Time) *Fake {
	return &Fake{now: start, added: make(chan struct{}, 1)}
}

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// After returns a channel that fires once Advance has moved the clock by d.
func (f *Fake) After(d time.Duration) <-chan time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- f.now
		return ch
	}
	f.waiters = append(f.waiters, waiter{at: f.now.Add(d), ch: ch})
	select {
	case f.added <- struct{}{}:
	default:
	}
	return ch
}

// Advance moves the clock forward by d and fires every timer that is due.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
	sort.Slice(f.waiters, func(i, j int) bool { return f.waiters[i].at.Before(f.waiters[j].at) })
	kept := f.waiters[:0]
	for _, w := range f.waiters {
		if !w.at.After(f.now) {
			w.ch <- f.now
			continue
		}
		kept = append(kept, w)
	}
	f.waiters = kept
}

// Waiters returns how many timers are pending. Tests use BlockUntil instead of polling it.
func (f *Fake) Waiters() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.waiters)
}

// BlockUntil returns once at least n timers are pending, so a test knows the code under
// test is waiting before it advances the clock.
func (f *Fake) BlockUntil(n int) {
	for {
		if f.Waiters() >= n {
			return
		}
		<-f.added
	}
}

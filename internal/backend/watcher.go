package backend

import (
	"context"
	"log/slog"
	"sync"
)

// WatcherEnd is the part of a Watcher that every backend shares: the events channel,
// the reason the watcher ended, and Close. A backend embeds it, sends on Send, and calls
// Finish once its loop has returned.
type WatcherEnd struct {
	Send chan Event // the backend's side of Events

	parent context.Context // the caller's: its end is a clean stop
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	err    error
	closed bool // Close was called
}

// NewWatcherEnd returns the shared state of a watcher started under parent; cancel
// stops the backend's loop.
func NewWatcherEnd(parent context.Context, cancel context.CancelFunc) *WatcherEnd {
	return &WatcherEnd{Send: make(chan Event, 64), parent: parent, cancel: cancel, done: make(chan struct{})}
}

// Events implements Watcher.
func (w *WatcherEnd) Events() <-chan Event { return w.Send }

// Err implements Watcher.
func (w *WatcherEnd) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Close implements Watcher.
func (w *WatcherEnd) Close() error {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	w.cancel()
	<-w.done
	return nil
}

// Finish records why the loop ended (loopErr, and whether the backend itself is
// closed), then closes Events and lets Close return. Close and the end of the caller's
// context are clean stops (Err nil); a closed backend is ErrClosed.
func (w *WatcherEnd) Finish(loopErr error, backendClosed bool, log *slog.Logger) {
	w.mu.Lock()
	switch {
	case w.closed || w.parent.Err() != nil:
		w.err = nil
	case backendClosed:
		w.err = ErrClosed
	case IsCompacted(loopErr):
		// Expected after a long disconnect; the caller re-lists.
		w.err = loopErr
		log.Debug("Watcher fell behind compacted history.", "error", loopErr)
	default:
		w.err = loopErr
		log.Warn("Watcher failed.", "error", loopErr)
	}
	w.mu.Unlock()
	close(w.Send)
	close(w.done)
}

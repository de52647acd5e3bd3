package service

import (
	"context"
	"net/http"
	"sync"
)

// inflight counts the web port's handlers that are still running. http.Server.Close
// returns without waiting for them, and a stream's handler emits its audit event on the
// way out, so shutdown waits on this before it closes the audit log and the backend.
type inflight struct {
	mu   sync.Mutex
	n    int
	zero chan struct{} // closed when n drops to 0
}

func (f *inflight) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		if f.n == 0 {
			f.zero = make(chan struct{})
		}
		f.n++
		f.mu.Unlock()
		defer func() {
			f.mu.Lock()
			f.n--
			if f.n == 0 {
				close(f.zero)
			}
			f.mu.Unlock()
		}()
		h.ServeHTTP(w, r)
	})
}

// wait returns how many handlers are still running when none are or ctx ends. A request
// the server had read but not yet handed to its handler when wait saw none may still
// start afterwards; its connection is closed, a stream is cancelled at once by the
// proxy's tracker (EndAll), and only its own audit event can then be lost, which the
// audit log reports.
func (f *inflight) wait(ctx context.Context) int {
	f.mu.Lock()
	if f.n == 0 {
		f.mu.Unlock()
		return 0
	}
	zero := f.zero
	f.mu.Unlock()
	select {
	case <-zero:
		return 0
	case <-ctx.Done():
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.n
	}
}

package kubeenv

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/keyport/keyport/internal/testenv/proc"
)

// errNotReady is what readiness checks return while they should be retried.
var errNotReady = errors.New("not ready")

// waitReady polls check until it returns nil, any watched process exits, ctx ends or
// timeout passes. Polling is short (50ms) because start-up time dominates every test;
// the bound is what matters, never a fixed sleep.
func waitReady(ctx context.Context, timeout time.Duration, what string, watch []*proc.Process, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	var last error
	for {
		for _, p := range watch {
			if p.Exited() {
				return fmt.Errorf("waiting for %s: %s exited (%w); last lines of %s:\n%s", what, p.Name, p.WaitErr, p.LogPath, p.Tail(40))
			}
		}
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		last = check(cctx)
		ccancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			msg := fmt.Sprintf("%s not ready after %s (last error: %v)", what, time.Since(start).Round(time.Millisecond), last)
			for _, p := range watch {
				msg += fmt.Sprintf("\nlast lines of %s:\n%s", p.LogPath, p.Tail(30))
			}
			return errors.New(msg)
		case <-tick.C:
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

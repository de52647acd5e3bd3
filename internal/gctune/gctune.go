// Package gctune owns the daemon's garbage-collector setting: a heap floor. Go's default
// (GOGC=100) collects whenever the heap doubles, and a proxy whose live heap is a few
// MiB while it moves thousands of requests a second then collects dozens of times a
// second, which on a small machine is a fifth of the proxy's CPU per request. Run raises
// the GC percent while the live heap is small, so that the heap may grow to Floor before
// a collection, and gives it back to 100 as the live heap grows: memory stays within
// max(Floor, about twice the live heap), as with the default once the heap is large.
//
// An operator who sets GOGC keeps it: Start does not run the tuner then. GOMEMLIMIT keeps
// working on top.
package gctune

import (
	"context"
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// DefaultFloor is the heap the daemon lets grow before it collects.
const DefaultFloor = 64 << 20

// maxPercent bounds the GC percent for a nearly empty heap.
const maxPercent = 2000

// Percent returns the GC percent that puts the heap goal at floor for a live heap of
// live bytes, and never less than Go's default 100.
func Percent(live, floor uint64) int {
	if live == 0 || floor <= 2*live {
		return 100
	}
	return int(min(floor*100/live-100, maxPercent))
}

// Start runs the tuner the way the daemon does (DefaultFloor, re-read every 5 s) until
// ctx ends, unless getenv("GOGC") is set: the operator's own choice wins.
func Start(ctx context.Context, getenv func(string) string, logger *slog.Logger) {
	if getenv != nil && getenv("GOGC") != "" {
		logger.Debug("GOGC is set; the GC heap floor is off")
		return
	}
	go Run(ctx, DefaultFloor, 5*time.Second, logger)
}

// liveHeap reads the live heap the last collection measured.
func liveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// Run keeps the GC percent at Percent(live heap, floor), re-reading the live heap every
// interval, until ctx ends; then it restores the percent it found.
func Run(ctx context.Context, floor uint64, interval time.Duration, logger *slog.Logger) {
	set := Percent(liveHeap(), floor)
	prev := debug.SetGCPercent(set)
	defer debug.SetGCPercent(prev)
	logger.Debug("GC heap floor", "floor_bytes", floor, "gc_percent", set)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// Small changes are not worth a call: SetGCPercent stops the world briefly.
		if p := Percent(liveHeap(), floor); p < set*9/10 || p > set*11/10 {
			debug.SetGCPercent(p)
			set = p
		}
	}
}

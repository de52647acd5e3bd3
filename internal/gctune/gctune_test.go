package gctune

import (
	"context"
	"log/slog"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name        string
		live, floor uint64
		want        int
	}{
		{"unknown live heap", 0, 64 * mib, 100},
		{"small heap grows to the floor", 8 * mib, 64 * mib, 700},
		{"a quarter of the floor", 16 * mib, 64 * mib, 300},
		{"half the floor: the default", 32 * mib, 64 * mib, 100},
		{"above the floor: the default", 200 * mib, 64 * mib, 100},
		{"tiny heap is capped", 1024, 64 * mib, maxPercent},
		{"no floor", 8 * mib, 0, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Percent(tc.live, tc.floor); got != tc.want {
				t.Errorf("Percent(%d, %d) = %d, want %d", tc.live, tc.floor, got, tc.want)
			}
			// The heap goal the percent gives is the floor, or twice the live heap.
			if p := Percent(tc.live, tc.floor); tc.live > 0 && p < maxPercent {
				goal := tc.live * uint64(100+p) / 100
				if want := max(tc.floor, 2*tc.live); goal > want || goal < want-tc.live/50 {
					t.Errorf("goal %d, want about %d", goal, want)
				}
			}
		})
	}
}

func TestRunSetsAndRestores(t *testing.T) {
	before := debug.SetGCPercent(100)
	defer debug.SetGCPercent(before)
	runtime.GC() // the live heap is known only after a collection
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { Run(ctx, 1<<40, time.Millisecond, slog.New(slog.DiscardHandler)); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		p := debug.SetGCPercent(100)
		debug.SetGCPercent(p)
		if p == maxPercent {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GC percent %d, want %d with a floor far above the live heap", p, maxPercent)
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	if p := debug.SetGCPercent(100); p != 100 {
		t.Errorf("after Run: GC percent %d, want the 100 it found", p)
	}
}

func TestStartLeavesAnOperatorsGOGC(t *testing.T) {
	before := debug.SetGCPercent(250)
	defer debug.SetGCPercent(before)
	runtime.GC()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	Start(ctx, func(k string) string {
		if k == "GOGC" {
			return "250"
		}
		return ""
	}, slog.New(slog.DiscardHandler))
	time.Sleep(50 * time.Millisecond)
	if p := debug.SetGCPercent(250); p != 250 {
		t.Errorf("GC percent %d after Start with GOGC=250 set, want 250 untouched", p)
	}
}

package audit

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/keyport/keyport/internal/clock"
)

func TestCoalescer(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewFake(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC))
	rec := &Recorder{}
	c := NewCoalescer(CoalescerConfig{Next: rec, Clock: clk, Burst: 2, Window: time.Minute, MaxSources: 3})
	refusal := func(msg string) Event {
		return Event{Type: KubeRequest, Message: msg, Fields: map[string]any{"status": 401}}
	}
	summaries := func() []Event {
		var out []Event
		for _, e := range rec.Events() {
			if _, ok := e.Fields["coalesced"]; ok {
				out = append(out, e)
			}
		}
		return out
	}

	for i := range 5 {
		c.Emit(ctx, "10.0.0.1", refusal(fmt.Sprint("try ", i)))
	}
	c.Emit(ctx, "10.0.0.2", refusal("other"))
	if n := len(rec.Events()); n != 3 {
		t.Fatalf("%d events, want 2 from the burst and 1 from another source", n)
	}
	c.Flush(ctx) // the window has not ended: nothing yet
	if len(summaries()) != 0 {
		t.Fatal("a summary before its window ended")
	}

	clk.Advance(time.Minute)
	c.Flush(ctx)
	s := summaries()
	if len(s) != 1 || s[0].Fields["coalesced"] != 3 || s[0].Fields["source"] != "10.0.0.1" || s[0].Message != "try 4" ||
		s[0].Fields["status"] != 401 || s[0].Type != KubeRequest {
		t.Fatalf("summaries = %+v, want one of 3 from 10.0.0.1 modelled on the last", s)
	}

	// A new window starts afresh; a window that rolls over on the next refusal records
	// its count then.
	for range 3 {
		c.Emit(ctx, "10.0.0.1", refusal("again"))
	}
	clk.Advance(2 * time.Minute)
	c.Emit(ctx, "10.0.0.1", refusal("later"))
	if s := summaries(); len(s) != 2 || s[1].Fields["coalesced"] != 1 {
		t.Fatalf("summaries = %+v, want a second one of 1", s)
	}

	// Past MaxSources distinct sources, new ones share one entry.
	for i := range 10 {
		for range 3 {
			c.Emit(ctx, fmt.Sprintf("192.0.2.%d", i), refusal("spray"))
		}
	}
	c.Close(ctx)
	var other int
	for _, e := range summaries() {
		if e.Fields["source"] == OtherSources {
			other = e.Fields["coalesced"].(int)
		}
	}
	// 10.0.0.1 holds one entry; two 192.0.2.x sources get their own; the other eight
	// share one: 24 refusals, 2 in its burst, 22 counted.
	if other != 22 {
		t.Fatalf("other sources coalesced %d, want 22; summaries %+v", other, summaries())
	}
}

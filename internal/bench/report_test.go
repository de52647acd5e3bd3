package bench

import (
	"strings"
	"testing"
	"time"
)

func TestVerdict(t *testing.T) {
	for _, tc := range []struct {
		name  string
		ratio float64
		p99   time.Duration
		want  []string
	}{
		{"both met", 0.86, 490 * time.Microsecond, []string{
			"GET throughput ratio >= 0.85: 0.860, met (goal 0.95 not met)",
			"added p99 <= 1.00 ms, one client (the hop's own latency): +0.490 ms, met",
		}},
		{"ratio short", 0.84, time.Millisecond, []string{"0.840, NOT met", "+1.000 ms, met"}},
		{"p99 over", 0.96, 1200 * time.Microsecond, []string{"0.960, met (goal met)", "+1.200 ms, NOT met"}},
		// Just short of a target: two decimals would print the target itself.
		{"ratio just short", 0.846, 1004 * time.Microsecond, []string{"0.846, NOT met", "+1.004 ms, NOT met"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := verdict(tc.ratio, tc.p99, 3100*time.Microsecond, 16)
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("verdict lacks %q:\n%s", w, got)
				}
			}
			if !strings.Contains(got, "at 16 clients, +3.10 ms, is queueing") {
				t.Errorf("verdict lacks the queued p99:\n%s", got)
			}
		})
	}
}

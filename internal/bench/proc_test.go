package bench

import (
	"strings"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	for _, tc := range []struct {
		name, data string
		want       procStat
		err        string
	}{
		{"plain", "4242 (keyport) S 100 4242 4242 0 -1 4194560 1 0 0 0 150 25 0 0 20 0 12 0 1 2 3",
			procStat{comm: "keyport", ppid: 100, cpu: 1750 * time.Millisecond}, ""},
		// A command name may hold spaces and parentheses: fields count from the last ')'.
		{"odd name", "7 (a) b (c)) R 1 7 7 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0 1 2 3",
			procStat{comm: "a) b (c)", ppid: 1, cpu: 70 * time.Millisecond}, ""},
		{"no name", "7 a R 1", procStat{}, "no command name"},
		{"short", "7 (x) R 1 2 3", procStat{}, "fields after the command name"},
		{"bad number", "7 (x) R 1 7 7 0 -1 0 0 0 0 0 x 4 0", procStat{}, "invalid syntax"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStat([]byte(tc.data))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("parseStat = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

package recordings

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/keyport/keyport/internal/recording"
)

const cast = `{"version":2,"width":80,"height":24,"timestamp":1,"keyport":{"session_id":"s","kind":"exec","user":"alice","cluster":"c","namespace":"default","pod":"web","tty":true,"stdin":true,"start":"2026-12-06T00:00:00Z","mode":"best_effort"}}
[0.000000,"r","100x30"]
[0.500000,"i","echo hi\r"]
[0.600000,"o","echo hi\r\nhi\r\n"]
[5.600000,"e","warn\n"]
[5.700000,"m","exit 0"]
`

func TestPlay(t *testing.T) {
	tests := []struct {
		name  string
		opts  PlayOptions
		want  string
		slept time.Duration
	}{
		{"real time", PlayOptions{Speed: 1}, "echo hi\r\nhi\r\nwarn\n\r\n[keyport: the session ended with exit code 0]\r\n", 5700 * time.Millisecond},
		{"twice as fast", PlayOptions{Speed: 2}, "", 2850 * time.Millisecond},
		{"skip idle", PlayOptions{Speed: 1, SkipIdle: true}, "", 1200 * time.Millisecond},
		{"text", PlayOptions{Speed: 1, Format: "text"}, "echo hi\r\nhi\r\nwarn\n\r\n[keyport: the session ended with exit code 0]\r\n", 0},
		{"json", PlayOptions{Speed: 1, Format: "json"}, `{"type":"session","session":{"session_id":"s","kind":"exec","user":"alice","cluster":"c","namespace":"default","pod":"web","tty":true,"stdin":true,"start":"2026-12-06T00:00:00Z","mode":"best_effort"}}
{"time":0,"type":"resize","data":"100x30"}
{"time":0.5,"stream":"stdin","type":"data","data":"echo hi\r"}
{"time":0.6,"stream":"stdout","type":"data","data":"echo hi\r\nhi\r\n"}
{"time":5.6,"stream":"stderr","type":"data","data":"warn\n"}
{"time":5.7,"type":"marker","data":"exit 0"}
`, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var slept time.Duration
			tt.opts.Sleep = func(_ context.Context, d time.Duration) error { slept += d; return nil }
			var out bytes.Buffer
			if err := Play(context.Background(), strings.NewReader(cast), tt.opts, &out); err != nil {
				t.Fatal(err)
			}
			if tt.want != "" && out.String() != tt.want {
				t.Errorf("output:\n%q\nwant:\n%q", out.String(), tt.want)
			}
			if slept != tt.slept {
				t.Errorf("slept %v, want %v", slept, tt.slept)
			}
		})
	}
}

func TestPlayReportsCorruptionAfterWhatItCouldPlay(t *testing.T) {
	truncated := cast[:strings.Index(cast, `[5.600000`)+12]
	var out bytes.Buffer
	err := Play(context.Background(), strings.NewReader(truncated), PlayOptions{Speed: 1, Format: "text"}, &out)
	var ce *recording.CorruptError
	if !errors.As(err, &ce) {
		t.Fatalf("error = %v, want a CorruptError", err)
	}
	if want := int64(strings.Index(cast, `[5.600000`)); ce.Offset != want || ce.Line != 5 {
		t.Errorf("offset %d line %d, want %d and 5", ce.Offset, ce.Line, want)
	}
	if out.String() != "echo hi\r\nhi\r\n" {
		t.Errorf("played before the error: %q", out.String())
	}
	if err := Play(context.Background(), strings.NewReader(cast), PlayOptions{Speed: 0}, &out); err == nil {
		t.Error("--speed 0 accepted")
	}
}

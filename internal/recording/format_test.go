package recording

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/keyport/keyport/internal/clock"
)

func readAll(t *testing.T, b []byte) (Header, []Event, error) {
	t.Helper()
	r, err := NewReader(bytes.NewReader(b))
	if err != nil {
		return Header{}, nil, err
	}
	var out []Event
	for {
		e, err := r.Next()
		if errors.Is(err, io.EOF) {
			return r.Header, out, nil
		}
		if err != nil {
			return r.Header, out, err
		}
		out = append(out, e)
	}
}

func TestWriterRoundTrip(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC))
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Header{Timestamp: clk.Now().Unix(), Keyport: &Meta{SessionID: "s1", Pod: "web"}}, clk)
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		advance time.Duration
		do      func() error
	}{
		{0, func() error { return w.Resize(120, 40) }},
		{250 * time.Millisecond, func() error { return w.Data(Stdin, []byte("ls\r")) }},
		{time.Millisecond, func() error { return w.Data(Stdout, []byte("ls\r\n<b>\"x\"\\\t\x1b[0m\r\n")) }},
		// "é" split across two chunks, then bytes that are not UTF-8.
		{0, func() error { return w.Data(Stdout, []byte{'a', 0xc3}) }},
		{0, func() error { return w.Data(Stdout, []byte{0xa9, 'b'}) }},
		{0, func() error { return w.Data(Stderr, []byte{0xff, 0xfe, 0x00}) }},
		{time.Second, func() error { return w.Marker("exit 0") }},
	}
	for _, s := range steps {
		clk.Advance(s.advance)
		if err := s.do(); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `<b>\"x\"\\\t\u001b[0m\r\n"`) {
		t.Errorf("stdout not written as a plain JSON string:\n%s", buf.String())
	}
	h, events, err := readAll(t, buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if h.Version != 2 || h.Width != 80 || h.Keyport.SessionID != "s1" {
		t.Errorf("header = %+v", h)
	}
	want := []struct {
		code, data string
		at         time.Duration
	}{
		{CodeResize, "120x40", 0},
		{CodeStdin, "ls\r", 250 * time.Millisecond},
		{CodeStdout, "ls\r\n<b>\"x\"\\\t\x1b[0m\r\n", 251 * time.Millisecond},
		{CodeStdout, "a", 251 * time.Millisecond},
		{CodeStdout, "éb", 251 * time.Millisecond},
		{CodeStderrBinary, "\xff\xfe\x00", 251 * time.Millisecond},
		{CodeMarker, "exit 0", 1251 * time.Millisecond},
	}
	if len(events) != len(want) {
		t.Fatalf("%d events, want %d:\n%s", len(events), len(want), buf.String())
	}
	for i, w := range want {
		e := events[i]
		if e.Code != w.code || string(e.Data) != w.data || e.Time != w.at {
			t.Errorf("event %d = %s %q at %v, want %s %q at %v", i, e.Code, e.Data, e.Time, w.code, w.data, w.at)
		}
	}
}

func TestReaderReportsOffsets(t *testing.T) {
	header := `{"version":2,"width":80,"height":24,"timestamp":1}` + "\n"
	good := `[0.1,"o","hi"]` + "\n"
	tests := []struct {
		name   string
		in     string
		offset int64
		line   int
		msg    string
	}{
		{"empty", "", 0, 1, "no header"},
		{"header not JSON", "{oops\n", 0, 1, "header"},
		{"wrong version", `{"version":1}` + "\n", 0, 1, "version 1"},
		{"truncated last event", header + good + `[0.2,"o","h`, int64(len(header) + len(good)), 3, "truncated"},
		{"garbage event", header + good + "garbage\n", int64(len(header) + len(good)), 3, "event"},
		{"two elements", header + `[0.1,"o"]` + "\n", int64(len(header)), 2, "elements"},
		{"time goes back", header + good + `[0.05,"o","x"]` + "\n", int64(len(header) + len(good)), 3, "goes back"},
		{"negative time", header + `[-1,"o","x"]` + "\n", int64(len(header)), 2, "out of range"},
		{"bad base64", header + `[0.1,"ob","!!"]` + "\n", int64(len(header)), 2, "base64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := readAll(t, []byte(tt.in))
			var ce *CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("error = %v, want a CorruptError", err)
			}
			if ce.Offset != tt.offset || ce.Line != tt.line || !strings.Contains(ce.Error(), tt.msg) {
				t.Errorf("error = %v (offset %d, line %d), want offset %d, line %d, %q", ce, ce.Offset, ce.Line, tt.offset, tt.line, tt.msg)
			}
		})
	}
}

func TestWriterStopsAtFirstError(t *testing.T) {
	w, err := NewWriter(&failAfter{n: 1}, Header{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Data(Stdout, []byte("x")); err == nil {
		t.Fatal("want an error")
	}
	if w.Err() == nil || w.Data(Stdout, []byte("y")) == nil {
		t.Error("the error is not sticky")
	}
}

type failAfter struct{ n int }

func (f *failAfter) Write(p []byte) (int, error) {
	if f.n == 0 {
		return 0, errors.New("disk full")
	}
	f.n--
	return len(p), nil
}

// FuzzReader: any bytes read as a recording give events or an error, never a panic.
func FuzzReader(f *testing.F) {
	f.Add([]byte(`{"version":2,"width":80,"height":24,"timestamp":1}` + "\n" + `[0.1,"o","hi"]` + "\n" + `[0.2,"ib","AAE="]` + "\n"))
	f.Add([]byte(`{"version":2}` + "\n" + `[1e308,"o",""]`))
	f.Add([]byte("\n\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := NewReader(bytes.NewReader(b))
		if err != nil {
			var ce *CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is not a CorruptError", err)
			}
			return
		}
		for range 1 << 16 {
			if _, err := r.Next(); err != nil {
				return
			}
		}
	})
}

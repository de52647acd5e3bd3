package recording

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"
)

// upstream replays server bytes (SPDY data frames) and swallows client bytes, like an
// API server streaming a command's output.
type upstream struct{ r io.Reader }

func (u *upstream) Read(p []byte) (int, error)  { return u.r.Read(p) }
func (u *upstream) Write(p []byte) (int, error) { return len(p), nil }
func (u *upstream) Close() error                { return nil }

// execOutput is n MiB of terminal output in 32 KiB SPDY data frames on stream 5.
func execOutput(n int) []byte {
	chunk := bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n"), 512)
	var b []byte
	for range n * 32 {
		b = appendSPDYData(b, 5, 0, chunk)
	}
	return b
}

func newBenchSession(b *testing.B) *Session {
	b.Helper()
	r, err := NewRecorder(RecorderConfig{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	s, err := r.Start(context.Background(), Meta{Kind: "exec", TTY: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Finish() })
	return s
}

// BenchmarkExecOutput is the proxy's cost of moving 1 MiB of exec output from the API
// server's connection, with the recording on (tap, JSON events, file writes) and off
// (the bytes as ReverseProxy copies them). ns/op is CPU time per MiB on one core.
func BenchmarkExecOutput(b *testing.B) {
	out := execOutput(1)
	buf := make([]byte, 32<<10)
	for _, on := range []bool{false, true} {
		name := "recording=off"
		if on {
			name = "recording=on"
		}
		b.Run(name, func(b *testing.B) {
			var s *Session
			if on {
				s = newBenchSession(b)
				// The client's SYN_STREAM for stdout, so the tap knows stream 5.
				s.Wrap(&upstream{r: bytes.NewReader(nil)}, http.Header{"Upgrade": {"SPDY/3.1"}})
				s.tap.(*spdyTap).streams[5] = Stdout
			}
			b.SetBytes(int64(len(out)))
			b.ReportAllocs()
			for b.Loop() {
				var conn io.ReadWriteCloser = &upstream{r: bytes.NewReader(out)}
				if on {
					conn = &tappedConn{s: s, body: conn}
				}
				if _, err := io.CopyBuffer(io.Discard, onlyReader{conn}, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

type onlyReader struct{ io.Reader }

// BenchmarkKeystroke is the proxy's added cost on one keystroke's round trip: a
// one-byte stdin frame to the API server and its one-byte echo back, with the recording
// on and off.
func BenchmarkKeystroke(b *testing.B) {
	key := appendSPDYData(nil, 3, 0, []byte("x"))
	echo := appendSPDYData(nil, 5, 0, []byte("x"))
	for _, on := range []bool{false, true} {
		name := "recording=off"
		if on {
			name = "recording=on"
		}
		b.Run(name, func(b *testing.B) {
			up := &upstream{}
			var conn io.ReadWriteCloser = up
			if on {
				s := newBenchSession(b)
				s.Wrap(up, http.Header{"Upgrade": {"SPDY/3.1"}})
				s.tap.(*spdyTap).streams[3], s.tap.(*spdyTap).streams[5] = Stdin, Stdout
				conn = &tappedConn{s: s, body: up}
			}
			buf := make([]byte, 64)
			rd := bytes.NewReader(nil)
			up.r = rd
			b.ReportAllocs()
			for b.Loop() {
				if _, err := conn.Write(key); err != nil {
					b.Fatal(err)
				}
				rd.Reset(echo)
				if _, err := conn.Read(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

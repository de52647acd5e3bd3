package coalesce

import (
	"bytes"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// recordingConn records each Write it is given: what reached the TLS connection, and in
// how many writes.
type recordingConn struct {
	net.Conn // nil: only Write and Close are used
	mu       sync.Mutex
	writes   [][]byte
	sent     chan struct{}
	fail     error
	closed   bool
}

func newRecording() *recordingConn { return &recordingConn{sent: make(chan struct{}, 64)} }

func (r *recordingConn) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return 0, r.fail
	}
	r.writes = append(r.writes, bytes.Clone(p))
	r.sent <- struct{}{}
	return len(p), nil
}

func (r *recordingConn) Close() error { r.closed = true; return nil }

func (r *recordingConn) got() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.writes
}

// frames encodes what the HTTP/2 server writes for a response: HEADERS (endStream as
// given) and optionally DATA.
type frames struct{ buf bytes.Buffer }

func (f *frames) headers(t testing.TB, stream uint32, endStream bool) []byte {
	t.Helper()
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	if err := enc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"}); err != nil {
		t.Fatal(err)
	}
	f.buf.Reset()
	if err := http2.NewFramer(&f.buf, nil).WriteHeaders(http2.HeadersFrameParam{StreamID: stream, BlockFragment: block.Bytes(), EndHeaders: true, EndStream: endStream}); err != nil {
		t.Fatal(err)
	}
	return bytes.Clone(f.buf.Bytes())
}

func (f *frames) data(t testing.TB, stream uint32, n int, endStream bool) []byte {
	t.Helper()
	f.buf.Reset()
	if err := http2.NewFramer(&f.buf, nil).WriteData(stream, endStream, bytes.Repeat([]byte("x"), n)); err != nil {
		t.Fatal(err)
	}
	return bytes.Clone(f.buf.Bytes())
}

func write(t *testing.T, c *Conn, p []byte) {
	t.Helper()
	if n, err := c.Write(p); err != nil || n != len(p) {
		t.Fatalf("Write(%d bytes) = %d, %v", len(p), n, err)
	}
}

// TestHeadersWaitForTheirData: a response's HEADERS and the DATA after it reach the TLS
// connection in one write, in order.
func TestHeadersWaitForTheirData(t *testing.T) {
	var f frames
	rec := newRecording()
	c := Wrap(rec)
	h, d := f.headers(t, 1, false), f.data(t, 1, 1700, true)
	write(t, c, h)
	if n := len(rec.got()); n != 0 {
		t.Fatalf("HEADERS without END_STREAM went out alone (%d writes)", n)
	}
	write(t, c, d)
	got := rec.got()
	if len(got) != 1 || !bytes.Equal(got[0], append(bytes.Clone(h), d...)) {
		t.Fatalf("writes = %d, want one with HEADERS then DATA", len(got))
	}
}

// TestWhatIsNotHeld: everything but a write ending in headers with a body to come goes
// out at once, alone or with what was held before it.
func TestWhatIsNotHeld(t *testing.T) {
	var f frames
	for _, tc := range []struct {
		name string
		p    func() []byte
	}{
		{"HEADERS with END_STREAM", func() []byte { return f.headers(t, 3, true) }},
		{"DATA", func() []byte { return f.data(t, 3, 10, false) }},
		{"HEADERS then DATA in one write", func() []byte { return append(f.headers(t, 5, false), f.data(t, 5, 10, true)...) }},
		{"a frame header split across writes", func() []byte { return f.data(t, 7, 10, true)[:4] }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := newRecording()
			c := Wrap(rec)
			p := tc.p()
			write(t, c, p)
			if got := rec.got(); len(got) != 1 || !bytes.Equal(got[0], p) {
				t.Fatalf("writes = %d, want the one write at once", len(got))
			}
		})
	}
}

// TestFramesSplitAcrossWrites: a large DATA frame whose payload spans writes is followed
// correctly, so the HEADERS after it are still recognised.
func TestFramesSplitAcrossWrites(t *testing.T) {
	var f frames
	rec := newRecording()
	c := Wrap(rec)
	big := f.data(t, 1, 10000, true)
	write(t, c, big[:4096])
	write(t, c, big[4096:8192])
	write(t, c, append(big[8192:], f.headers(t, 3, false)...))
	if n := len(rec.got()); n != 2 {
		t.Fatalf("writes = %d, want 2 (the last, ending in HEADERS, held)", n)
	}
	write(t, c, f.data(t, 3, 5, true))
	if n := len(rec.got()); n != 3 {
		t.Fatalf("writes = %d, want 3", n)
	}
}

// TestHeldHeadersLeaveOnTheirOwn: headers followed by nothing (a watch before its first
// event) are sent when MaxHold passes.
func TestHeldHeadersLeaveOnTheirOwn(t *testing.T) {
	var f frames
	rec := newRecording()
	c := Wrap(rec)
	h := f.headers(t, 1, false)
	write(t, c, h)
	select {
	case <-rec.sent:
	case <-time.After(30 * time.Second):
		t.Fatal("held HEADERS were never sent")
	}
	if got := rec.got(); len(got) != 1 || !bytes.Equal(got[0], h) {
		t.Fatalf("writes = %v, want the HEADERS", got)
	}
}

// TestCloseSendsWhatIsHeld: a connection closed with headers held sends them first.
func TestCloseSendsWhatIsHeld(t *testing.T) {
	var f frames
	rec := newRecording()
	c := Wrap(rec)
	write(t, c, f.headers(t, 1, false))
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if len(rec.got()) != 1 || !rec.closed {
		t.Fatalf("writes = %d, closed = %v; want the held HEADERS sent, then the close", len(rec.got()), rec.closed)
	}
}

// TestSendErrorSticks: once a send fails, every later Write returns that error.
func TestSendErrorSticks(t *testing.T) {
	var f frames
	rec := newRecording()
	c := Wrap(rec)
	write(t, c, f.headers(t, 1, false))
	boom := errors.New("connection reset")
	rec.mu.Lock()
	rec.fail = boom
	rec.mu.Unlock()
	if _, err := c.Write(f.data(t, 1, 5, true)); !errors.Is(err, boom) {
		t.Fatalf("Write = %v, want %v", err, boom)
	}
	if _, err := c.Write(f.data(t, 3, 5, true)); !errors.Is(err, boom) {
		t.Fatalf("second Write = %v, want %v", err, boom)
	}
}

// FuzzWritesArriveInOrder: whatever the server writes, split however, reaches the TLS
// connection whole and in order by the time the connection closes.
func FuzzWritesArriveInOrder(f *testing.F) {
	var fr frames
	f.Add(append(fr.headers(f, 1, false), fr.data(f, 1, 100, true)...), uint8(9))
	f.Add(fr.headers(f, 1, false), uint8(3))
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 0, 1}, uint8(1))
	f.Fuzz(func(t *testing.T, stream []byte, chunk uint8) {
		rec := newRecording()
		c := Wrap(rec)
		n := int(chunk)%64 + 1
		for p := stream; len(p) > 0; {
			k := min(n, len(p))
			write(t, c, p[:k])
			p = p[k:]
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if got := bytes.Join(rec.got(), nil); !bytes.Equal(got, stream) {
			t.Fatalf("sent %d bytes, want the %d written, in order", len(got), len(stream))
		}
	})
}

package recording

import (
	"bytes"
	"encoding/binary"
	"net/http"
	"strings"
	"testing"

	"github.com/moby/spdystream/spdy"
)

type got struct{ streams map[Stream]*bytes.Buffer }

func newGot() *got { return &got{streams: map[Stream]*bytes.Buffer{}} }

func (g *got) sink(s Stream, p []byte) {
	if g.streams[s] == nil {
		g.streams[s] = &bytes.Buffer{}
	}
	g.streams[s].Write(p)
}

func (g *got) text(s Stream) string {
	if b := g.streams[s]; b != nil {
		return b.String()
	}
	return ""
}

// feedSplit feeds b in pieces of n bytes (every split point matters to the parsers).
func feedSplit(t *testing.T, f func([]byte) error, b []byte, n int) {
	t.Helper()
	for len(b) > 0 {
		k := min(n, len(b))
		if err := f(b[:k]); err != nil {
			t.Fatal(err)
		}
		b = b[k:]
	}
}

func spdyClientBytes(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	fr, err := spdy.NewFramer(&buf, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, typ := range []string{"error", "stdin", "stdout", "resize"} {
		h := http.Header{}
		h.Set("streamType", typ)
		if err := fr.WriteFrame(&spdy.SynStreamFrame{StreamId: spdy.StreamId(2*i + 1), Headers: h}); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []spdy.Frame{
		&spdy.DataFrame{StreamId: 7, Data: []byte(`{"Width":100,"Height":30}`)},
		&spdy.PingFrame{Id: 1},
		&spdy.DataFrame{StreamId: 3, Data: []byte("echo hi\r")},
		&spdy.DataFrame{StreamId: 3, Flags: spdy.DataFlagFin},
	} {
		if err := fr.WriteFrame(f); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func spdyServerBytes() []byte {
	var b []byte
	b = appendSPDYData(b, 5, 0, []byte("hi\r\n"))
	b = appendSPDYData(b, 5, 0, []byte("$ "))
	b = appendSPDYData(b, 1, 1, []byte(`{"status":"Success"}`))
	return b
}

func TestSPDYTap(t *testing.T) {
	client, server := spdyClientBytes(t), spdyServerBytes()
	for _, n := range []int{1, 3, 7, 1 << 20} {
		g := newGot()
		tap, err := NewTap(http.Header{"Upgrade": {"SPDY/3.1"}}, g.sink)
		if err != nil {
			t.Fatal(err)
		}
		feedSplit(t, tap.Client, client, n)
		feedSplit(t, tap.Server, server, n)
		if g.text(Stdin) != "echo hi\r" || g.text(Stdout) != "hi\r\n$ " || g.text(Resize) != `{"Width":100,"Height":30}` ||
			g.text(Error) != `{"status":"Success"}` {
			t.Errorf("pieces of %d: stdin %q stdout %q resize %q error %q", n, g.text(Stdin), g.text(Stdout), g.text(Resize), g.text(Error))
		}
		if tap.ServerBoundary() != 0 {
			t.Errorf("not on a boundary after whole frames")
		}
	}
}

func TestSPDYNoticeIsReadByAClient(t *testing.T) {
	g := newGot()
	tap, _ := NewTap(http.Header{"Upgrade": {"SPDY/3.1"}}, g.sink)
	feedSplit(t, tap.Client, spdyClientBytes(t), 1<<20)
	notice := tap.Notice("recording failed")
	fr, err := spdy.NewFramer(nil, bytes.NewReader(notice))
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for range 2 {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		d := f.(*spdy.DataFrame)
		seen = append(seen, string(d.Data))
		if d.StreamId == 1 && d.Flags&spdy.DataFlagFin == 0 {
			t.Error("the error stream is not closed")
		}
	}
	if !strings.Contains(seen[0], "recording failed") || !strings.Contains(seen[1], `"status":"Failure","message":"recording failed"`) {
		t.Errorf("notice frames = %q", seen)
	}
}

// wsFrame builds one frame; masked for the client's direction.
func wsFrame(fin bool, opcode byte, payload []byte, mask []byte) []byte {
	b0 := opcode
	if fin {
		b0 |= 0x80
	}
	b := []byte{b0}
	var m byte
	if mask != nil {
		m = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		b = append(b, m|byte(n))
	case n <= 0xffff:
		b = append(b, m|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, m|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	if mask == nil {
		return append(b, payload...)
	}
	b = append(b, mask...)
	for i, c := range payload {
		b = append(b, c^mask[i%4])
	}
	return b
}

func TestWebSocketTap(t *testing.T) {
	mask := []byte{1, 2, 3, 4}
	long := bytes.Repeat([]byte("x"), 70000)
	var client []byte
	client = append(client, wsFrame(true, 2, append([]byte{4}, `{"Width":90,"Height":20}`...), mask)...)
	// A fragmented stdin message with a ping between its frames.
	client = append(client, wsFrame(false, 2, []byte{0, 'e', 'c'}, mask)...)
	client = append(client, wsFrame(true, 9, []byte("p"), mask)...)
	client = append(client, wsFrame(true, 0, []byte("ho\r"), mask)...)
	client = append(client, wsFrame(true, 2, []byte{255, 0}, mask)...) // v5 close of stdin
	var server []byte
	server = append(server, wsFrame(true, 2, append([]byte{1}, long...), nil)...)
	server = append(server, wsFrame(true, 2, append([]byte{2}, "warn"...), nil)...)
	server = append(server, wsFrame(true, 2, append([]byte{3}, `{"status":"Success"}`...), nil)...)
	for _, n := range []int{1, 5, 1 << 20} {
		g := newGot()
		tap, err := NewTap(http.Header{"Upgrade": {"websocket"}, "Sec-Websocket-Protocol": {"v5.channel.k8s.io"}}, g.sink)
		if err != nil {
			t.Fatal(err)
		}
		feedSplit(t, tap.Client, client, n)
		feedSplit(t, tap.Server, server, n)
		if g.text(Stdin) != "echo\r" || g.text(Stdout) != string(long) || g.text(Stderr) != "warn" ||
			g.text(Resize) != `{"Width":90,"Height":20}` || g.text(Error) != `{"status":"Success"}` {
			t.Errorf("pieces of %d: stdin %q stderr %q resize %q error %q, stdout %d bytes", n,
				g.text(Stdin), g.text(Stderr), g.text(Resize), g.text(Error), len(g.text(Stdout)))
		}
	}
}

func TestWebSocketBase64TapAndNotice(t *testing.T) {
	g := newGot()
	tap, err := NewTap(http.Header{"Upgrade": {"websocket"}, "Sec-Websocket-Protocol": {"v4.base64.channel.k8s.io"}}, g.sink)
	if err != nil {
		t.Fatal(err)
	}
	feedSplit(t, tap.Client, wsFrame(true, 1, []byte("0aGk="), []byte{9, 9, 9, 9}), 2)
	notice := tap.Notice("store down")
	feedSplit(t, tap.Server, notice, 3)
	if g.text(Stdin) != "hi" || !strings.Contains(g.text(Stdout), "store down") || !strings.Contains(g.text(Error), `"message":"store down"`) {
		t.Errorf("stdin %q stdout %q error %q", g.text(Stdin), g.text(Stdout), g.text(Error))
	}
}

func TestTapRefusesWhatItCannotRead(t *testing.T) {
	if _, err := NewTap(http.Header{"Upgrade": {"websocket"}, "Sec-Websocket-Protocol": {"v9.channel.k8s.io"}}, nil); err == nil {
		t.Error("an unknown subprotocol was accepted")
	}
	g := newGot()
	tap, _ := NewTap(http.Header{"Upgrade": {"websocket"}, "Sec-Websocket-Protocol": {"v5.channel.k8s.io"}}, g.sink)
	// An unmasked frame from the client breaks RFC 6455.
	if err := tap.Client(wsFrame(true, 2, []byte{0, 'x'}, nil)); err == nil {
		t.Error("an unmasked client frame was accepted")
	}
}

// FuzzTap: any bytes in either direction, for either protocol, give stream bytes or an
// error, never a panic.
func FuzzTap(f *testing.F) {
	f.Add(true, []byte{0x80, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00}, []byte{0, 0, 0, 1, 0, 0, 0, 2, 'h', 'i'})
	f.Add(false, wsFrame(true, 2, []byte{0, 'x'}, []byte{1, 2, 3, 4}), wsFrame(true, 2, []byte{1, 'y'}, nil))
	f.Fuzz(func(t *testing.T, spdyProto bool, client, server []byte) {
		h := http.Header{"Upgrade": {"websocket"}, "Sec-Websocket-Protocol": {"v5.channel.k8s.io"}}
		if spdyProto {
			h = http.Header{"Upgrade": {"SPDY/3.1"}}
		}
		tap, err := NewTap(h, func(Stream, []byte) {})
		if err != nil {
			t.Fatal(err)
		}
		_ = tap.Client(client)
		_ = tap.Server(server)
		_ = tap.ServerBoundary()
		_ = tap.Notice("x")
	})
}

func TestExitStatus(t *testing.T) {
	tests := []struct {
		status string
		code   int
		msg    string
	}{
		{``, -1, ""},
		{`{"status":"Success","metadata":{}}`, 0, ""},
		{`{"status":"Failure","message":"command terminated with non-zero exit code: exit status 3","reason":"NonZeroExitCode",` +
			`"details":{"causes":[{"reason":"ExitCode","message":"3"}]}}`, 3, ""},
		{`{"status":"Failure","message":"error executing command in container: exit status 4","reason":"InternalError"}`, -1,
			"error executing command in container: exit status 4"},
		{`not json`, -1, "unreadable status: invalid character 'o' in literal null (expecting 'u')"},
	}
	for _, tt := range tests {
		code, msg := exitStatus([]byte(tt.status))
		if code != tt.code || msg != tt.msg {
			t.Errorf("exitStatus(%s) = %d, %q; want %d, %q", tt.status, code, msg, tt.code, tt.msg)
		}
	}
}

package recording

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/moby/spdystream/spdy"
)

// A Tap reads a session's streams out of the bytes of an upgraded exec or attach
// connection as they pass through the proxy, without changing them: the client and the
// API server negotiate the protocol between themselves (SPDY/3.1 or a WebSocket channel
// protocol, v1 to v5), and every version keeps working because the proxy only listens.
// It is fed each direction's bytes in order; Sink gets each stream's payload as it comes.
type Tap interface {
	// Client takes bytes the client sent (stdin, resizes).
	Client(p []byte) error
	// Server takes bytes the API server sent (stdout, stderr, the final status).
	Server(p []byte) error
	// ServerBoundary reports how many more server bytes end the frame in progress: 0 when
	// the bytes so far end on a frame boundary, -1 when that is not known yet (in the
	// middle of a frame header).
	ServerBoundary() int
	// Notice returns the bytes of frames that, sent to the client on a frame boundary,
	// print msg on its stdout and end the session with msg as its error.
	Notice(msg string) []byte
}

// Sink receives the payload of each stream, in order per direction.
type Sink func(s Stream, p []byte)

// ErrUnknownProtocol is returned by NewTap for a protocol it cannot read.
var ErrUnknownProtocol = errors.New("unknown streaming protocol")

// maxControlFrame bounds one SPDY control frame (a stream's headers).
const maxControlFrame = 1 << 20

// NewTap returns the tap for the protocol an upgrade response agreed on.
func NewTap(resp http.Header, sink Sink) (Tap, error) {
	upgrade := strings.ToLower(resp.Get("Upgrade"))
	switch {
	case strings.HasPrefix(upgrade, "spdy/"):
		return newSPDYTap(sink)
	case upgrade == "websocket":
		proto := resp.Get("Sec-Websocket-Protocol")
		switch proto {
		case "v5.channel.k8s.io", "v4.channel.k8s.io", "channel.k8s.io":
			return &wsTap{sink: sink, client: wsDir{masked: true}, server: wsDir{}}, nil
		case "v4.base64.channel.k8s.io", "base64.channel.k8s.io":
			return &wsTap{sink: sink, base64: true, client: wsDir{masked: true}, server: wsDir{}}, nil
		}
		return nil, fmt.Errorf("%w: WebSocket subprotocol %q", ErrUnknownProtocol, proto)
	}
	return nil, fmt.Errorf("%w: upgrade %q", ErrUnknownProtocol, upgrade)
}

// spdyTap reads SPDY/3.1 frames. The client opens every stream (error, stdin, stdout,
// stderr, resize), naming it in a streamType header of its SYN_STREAM; the headers are
// zlib-compressed with state that runs across frames, so every control frame the client
// sends goes through one spdy.Framer in order. The server's control frames carry nothing
// the recording needs and are skipped.
type spdyTap struct {
	sink Sink

	mu      sync.Mutex
	streams map[uint32]Stream

	client, server spdyDir
	ctl            bytes.Buffer
	framer         *spdy.Framer
}

// spdyDir is one direction's position in the frame sequence.
type spdyDir struct {
	hdr       [8]byte
	hn        int
	remaining int
	control   bool
	stream    uint32
	failed    error
}

func newSPDYTap(sink Sink) (*spdyTap, error) {
	t := &spdyTap{sink: sink, streams: map[uint32]Stream{}}
	f, err := spdy.NewFramer(io.Discard, &t.ctl)
	if err != nil {
		return nil, err
	}
	t.framer = f
	return t, nil
}

var spdyStreamTypes = map[string]Stream{"stdin": Stdin, "stdout": Stdout, "stderr": Stderr, "error": Error, "resize": Resize}

func (t *spdyTap) Client(p []byte) error { return t.feed(&t.client, p, true) }
func (t *spdyTap) Server(p []byte) error { return t.feed(&t.server, p, false) }

func (t *spdyTap) feed(d *spdyDir, p []byte, client bool) error {
	if d.failed != nil {
		return d.failed
	}
	for len(p) > 0 {
		if d.hn < len(d.hdr) {
			n := copy(d.hdr[d.hn:], p)
			d.hn += n
			p = p[n:]
			if d.hn < len(d.hdr) {
				return nil
			}
			d.control = d.hdr[0]&0x80 != 0
			d.remaining = int(d.hdr[5])<<16 | int(d.hdr[6])<<8 | int(d.hdr[7])
			if d.control {
				if client {
					if d.remaining > maxControlFrame {
						d.failed = fmt.Errorf("SPDY control frame of %d bytes", d.remaining)
						return d.failed
					}
					t.ctl.Write(d.hdr[:])
				}
			} else {
				d.stream = binary.BigEndian.Uint32(d.hdr[:4]) & 0x7fffffff
			}
			if d.remaining == 0 {
				if err := t.endFrame(d, client); err != nil {
					return err
				}
				continue
			}
		}
		n := min(d.remaining, len(p))
		switch {
		case d.control && client:
			t.ctl.Write(p[:n])
		case !d.control:
			t.mu.Lock()
			s, ok := t.streams[d.stream]
			t.mu.Unlock()
			if ok {
				t.sink(s, p[:n])
			}
		}
		d.remaining -= n
		p = p[n:]
		if d.remaining == 0 {
			if err := t.endFrame(d, client); err != nil {
				return err
			}
		}
	}
	return nil
}

// endFrame finishes a frame: a client control frame is decoded.
func (t *spdyTap) endFrame(d *spdyDir, client bool) error {
	d.hn = 0
	if !d.control || !client {
		return nil
	}
	f, err := t.framer.ReadFrame()
	t.ctl.Reset()
	if err != nil {
		d.failed = fmt.Errorf("SPDY control frame: %w", err)
		return d.failed
	}
	if syn, ok := f.(*spdy.SynStreamFrame); ok {
		if s, ok := spdyStreamTypes[syn.Headers.Get("streamType")]; ok {
			t.mu.Lock()
			t.streams[uint32(syn.StreamId)] = s
			t.mu.Unlock()
		}
	}
	return nil
}

func (t *spdyTap) ServerBoundary() int {
	switch d := &t.server; {
	case d.hn == 0:
		return 0
	case d.hn < len(d.hdr):
		return -1
	default:
		return d.remaining
	}
}

// Notice writes msg on the stdout stream and a failure status on the error stream,
// closing it: client-go reads the status and ends the session with msg.
func (t *spdyTap) Notice(msg string) []byte {
	t.mu.Lock()
	var out, errStream uint32
	for id, s := range t.streams {
		switch s {
		case Stdout:
			out = id
		case Error:
			errStream = id
		}
	}
	t.mu.Unlock()
	var b []byte
	if out != 0 {
		b = appendSPDYData(b, out, 0, []byte("\r\n"+msg+"\r\n"))
	}
	if errStream != 0 {
		b = appendSPDYData(b, errStream, 0x01 /* FLAG_FIN */, failureStatus(msg))
	}
	return b
}

func appendSPDYData(b []byte, stream uint32, flags byte, data []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, stream&0x7fffffff)
	n := len(data)
	b = append(b, flags, byte(n>>16), byte(n>>8), byte(n))
	return append(b, data...)
}

// failureStatus is the JSON Status an API server sends on the error stream when a
// session fails.
func failureStatus(msg string) []byte {
	b := []byte(`{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":`)
	b = appendJSONString(b, []byte(strings.ToValidUTF8(msg, "?")))
	return append(b, `,"reason":"InternalError","code":500}`...)
}

// wsTap reads WebSocket frames (RFC 6455) of the Kubernetes channel protocols: each
// message starts with its channel number (a byte, or an ASCII digit in the base64
// protocols): 0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize; v5 adds 255, "close".
type wsTap struct {
	sink           Sink
	base64         bool
	client, server wsDir
}

// wsDir is one direction's position in the frame sequence.
type wsDir struct {
	masked bool
	hdr    [14]byte
	hn     int
	need   int // header bytes, once the first two are known
	// The frame in progress.
	remaining uint64
	mask      [4]byte
	maskPos   int
	opcode    byte
	fin       bool
	// The message in progress.
	inMessage bool
	channel   int // -1: the channel byte has not arrived
	b64       []byte
	scratch   []byte
	failed    error
}

// maxBase64Message bounds a base64 message held until it is complete.
const maxBase64Message = 4 << 20

func (t *wsTap) Client(p []byte) error { return t.feed(&t.client, p) }
func (t *wsTap) Server(p []byte) error { return t.feed(&t.server, p) }

func (t *wsTap) feed(d *wsDir, p []byte) error {
	if d.failed != nil {
		return d.failed
	}
	for len(p) > 0 {
		if d.need == 0 || d.hn < d.need {
			if d.need == 0 {
				d.need = 2
			}
			n := copy(d.hdr[d.hn:d.need], p)
			d.hn += n
			p = p[n:]
			if d.hn < d.need {
				continue
			}
			if d.need == 2 {
				d.need = 2 + wsExtraHeader(d.hdr[1])
				if d.need > 2 {
					continue
				}
			}
			if err := d.startFrame(); err != nil {
				d.failed = err
				return err
			}
			if d.remaining == 0 {
				t.endFrame(d)
			}
			continue
		}
		n := int(min(d.remaining, uint64(len(p))))
		chunk := p[:n]
		if d.masked {
			d.scratch = append(d.scratch[:0], chunk...)
			for i := range d.scratch {
				d.scratch[i] ^= d.mask[(d.maskPos+i)&3]
			}
			d.maskPos = (d.maskPos + n) & 3
			chunk = d.scratch
		}
		if d.opcode < 8 { // data frames; control frames (close, ping, pong) are skipped
			if err := t.payload(d, chunk); err != nil {
				d.failed = err
				return err
			}
		}
		d.remaining -= uint64(n)
		p = p[n:]
		if d.remaining == 0 {
			t.endFrame(d)
		}
	}
	return nil
}

// wsExtraHeader is how many header bytes follow the first two.
func wsExtraHeader(b1 byte) int {
	n := 0
	switch b1 & 0x7f {
	case 126:
		n = 2
	case 127:
		n = 8
	}
	if b1&0x80 != 0 {
		n += 4
	}
	return n
}

func (d *wsDir) startFrame() error {
	b0, b1 := d.hdr[0], d.hdr[1]
	d.fin = b0&0x80 != 0
	d.opcode = b0 & 0x0f
	if (b1&0x80 != 0) != d.masked {
		return errors.New("WebSocket frame masking does not match its direction")
	}
	i := 2
	switch l := b1 & 0x7f; l {
	case 126:
		d.remaining = uint64(binary.BigEndian.Uint16(d.hdr[2:4]))
		i = 4
	case 127:
		d.remaining = binary.BigEndian.Uint64(d.hdr[2:10])
		i = 10
	default:
		d.remaining = uint64(l)
	}
	if d.masked {
		copy(d.mask[:], d.hdr[i:i+4])
		d.maskPos = 0
	}
	switch d.opcode {
	case 1, 2: // text, binary: a new message
		if d.inMessage {
			return errors.New("WebSocket message starts inside another")
		}
		d.inMessage, d.channel, d.b64 = true, -1, d.b64[:0]
	case 0: // continuation
		if !d.inMessage {
			return errors.New("WebSocket continuation frame outside a message")
		}
	case 8, 9, 10:
		if !d.fin || d.remaining > 125 {
			return errors.New("WebSocket control frame fragmented or longer than 125 bytes")
		}
	default:
		return fmt.Errorf("WebSocket opcode %d", d.opcode)
	}
	return nil
}

func (t *wsTap) endFrame(d *wsDir) {
	d.hn, d.need = 0, 0
	if d.opcode >= 8 || !d.fin {
		return
	}
	if t.base64 && d.channel >= 0 && d.channel <= int(Resize) {
		if b, err := base64.StdEncoding.DecodeString(string(d.b64)); err == nil && len(b) > 0 {
			t.sink(Stream(d.channel), b)
		}
	}
	d.inMessage = false
}

// payload takes a data frame's (unmasked) bytes.
func (t *wsTap) payload(d *wsDir, p []byte) error {
	if len(p) == 0 {
		return nil
	}
	if d.channel < 0 {
		c := int(p[0])
		if t.base64 {
			c -= '0'
		}
		d.channel = c
		p = p[1:]
	}
	if d.channel > int(Resize) {
		return nil // v5's close signal (255), or a channel this tap does not know
	}
	if !t.base64 {
		if len(p) > 0 {
			t.sink(Stream(d.channel), p)
		}
		return nil
	}
	if len(d.b64)+len(p) > maxBase64Message {
		return fmt.Errorf("base64 WebSocket message longer than %d bytes", maxBase64Message)
	}
	d.b64 = append(d.b64, p...)
	return nil
}

func (t *wsTap) ServerBoundary() int {
	switch d := &t.server; {
	case d.need == 0:
		return 0
	case d.hn < d.need:
		return -1
	default:
		return int(min(d.remaining, 1<<30))
	}
}

// Notice writes msg on stdout and a failure status on the error channel, then a close
// frame. A boundary between frames of a fragmented message is not a place for new
// messages; the server's frames here are never fragmented (the API server writes each
// message as one frame).
func (t *wsTap) Notice(msg string) []byte {
	var b []byte
	b = t.appendMessage(b, Stdout, []byte("\r\n"+msg+"\r\n"))
	b = t.appendMessage(b, Error, failureStatus(msg))
	return append(b, 0x88, 0x02, 0x03, 0xe8) // close, 1000 normal closure
}

func (t *wsTap) appendMessage(b []byte, s Stream, data []byte) []byte {
	opcode, payload := byte(0x82), append([]byte{byte(s)}, data...)
	if t.base64 {
		opcode = 0x81
		payload = append([]byte{'0' + byte(s)}, base64.StdEncoding.EncodeToString(data)...)
	}
	b = append(b, opcode)
	switch n := len(payload); {
	case n < 126:
		b = append(b, byte(n))
	case n <= 0xffff:
		b = append(b, 126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, payload...)
}

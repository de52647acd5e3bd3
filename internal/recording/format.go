// Package recording owns Kubernetes session recordings: the file format (asciicast v2
// with Keyport's additions), its writer and its reader, the tap that reads a session's
// stdin, stdout, stderr and terminal resizes out of the SPDY or WebSocket stream the
// proxy forwards, the session that ties a tap to a file, and the store finished
// recordings are kept in.
//
// # The format
//
// A recording is a text file of JSON lines that asciinema and other asciicast v2 players
// read: the first line is the header, each further line one event, written while the
// session runs.
//
//	{"version":2,"width":80,"height":24,"timestamp":1765000000,"keyport":{…the session…}}
//	[0.012345,"r","120x40"]
//	[0.250000,"i","ls\r"]
//	[0.251234,"o","ls\r\nbin  etc\r\n"]
//
// An event is [seconds since the start, code, data]. The codes are asciicast's "o"
// (stdout), "i" (stdin), "r" (a resize, "COLUMNSxROWS") and "m" (a marker: Keyport writes
// one for a gap in the recording and one at the end, "exit 0"), and Keyport's "e"
// (stderr, which only sessions without a terminal have). Bytes that are not UTF-8 text
// are written as "ob", "eb" and "ib" events whose data is base64: players skip those
// codes, Keyport's reader decodes them, so nothing typed or printed is lost or altered.
package recording

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/keyport/keyport/internal/clock"
)

// Event codes.
const (
	CodeStdout       = "o"
	CodeStderr       = "e"
	CodeStdin        = "i"
	CodeResize       = "r"
	CodeMarker       = "m"
	CodeStdoutBinary = "ob"
	CodeStderrBinary = "eb"
	CodeStdinBinary  = "ib"
)

// Header is the first line of a recording.
type Header struct {
	Version   int   `json:"version"`
	Width     int   `json:"width"`
	Height    int   `json:"height"`
	Timestamp int64 `json:"timestamp"`
	// Keyport describes the session; asciicast players ignore it.
	Keyport *Meta `json:"keyport,omitempty"`
}

// Meta is what Keyport knows of a session when it starts.
type Meta struct {
	SessionID     string    `json:"session_id"`
	Kind          string    `json:"kind"` // exec or attach
	User          string    `json:"user"`
	Roles         []string  `json:"roles,omitempty"`
	BotName       string    `json:"bot_name,omitempty"`
	BotInstanceID string    `json:"bot_instance_id,omitempty"`
	Cluster       string    `json:"cluster"`
	Namespace     string    `json:"namespace"`
	Pod           string    `json:"pod"`
	Container     string    `json:"container,omitempty"`
	Command       []string  `json:"command,omitempty"`
	TTY           bool      `json:"tty"`
	Stdin         bool      `json:"stdin"`
	Start         time.Time `json:"start"`
	// Proxy is the node name of the proxy that recorded it.
	Proxy string `json:"proxy,omitempty"`
	// Mode is the recording mode: best_effort or strict.
	Mode string `json:"mode"`
}

// Recording modes (role option record_session.kubernetes).
const (
	ModeBestEffort = "best_effort"
	ModeStrict     = "strict"
)

// Stream names a session's byte streams.
type Stream uint8

// The streams of a session.
const (
	Stdin Stream = iota
	Stdout
	Stderr
	// Error is the API server's status at the end of the session (a JSON Status).
	Error
	// Resize carries JSON terminal sizes from the client.
	Resize
)

var textCodes = [...]string{Stdin: CodeStdin, Stdout: CodeStdout, Stderr: CodeStderr}
var binaryCodes = [...]string{Stdin: CodeStdinBinary, Stdout: CodeStdoutBinary, Stderr: CodeStderrBinary}

// Writer writes one recording. Every event goes to the underlying writer as one write
// (one line) when it is recorded, so a process killed mid-session leaves every event it
// forwarded on disk. It is safe for concurrent use.
type Writer struct {
	mu    sync.Mutex
	w     io.Writer
	clk   clock.Clock
	start time.Time
	line  []byte
	// carry holds the start of a UTF-8 sequence cut at the end of a chunk, per stream.
	carry [3][]byte
	err   error
	// n counts the bytes written; changed is closed (and replaced) at every write, for
	// observers that follow the recording as it grows.
	n       int64
	changed chan struct{}
}

// NewWriter writes h and returns a Writer for the events. Times are offsets from h's
// Timestamp as clk measures them from now.
func NewWriter(w io.Writer, h Header, clk clock.Clock) (*Writer, error) {
	if clk == nil {
		clk = clock.Real()
	}
	if h.Version == 0 {
		h.Version = 2
	}
	if h.Width <= 0 || h.Height <= 0 {
		h.Width, h.Height = 80, 24
	}
	b, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("writing the recording's header: %w", err)
	}
	return &Writer{w: w, clk: clk, start: clk.Now(), n: int64(len(b) + 1), changed: make(chan struct{})}, nil
}

// Progress returns how many bytes are written and a channel closed at the next write.
func (w *Writer) Progress() (int64, <-chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n, w.changed
}

// Data records bytes of stdin, stdout or stderr.
func (w *Writer) Data(s Stream, p []byte) error {
	if s > Stderr || len(p) == 0 {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	if c := w.carry[s]; len(c) > 0 {
		p = append(c, p...)
		w.carry[s] = nil
	}
	// Keep an incomplete UTF-8 sequence at the end for the next chunk.
	cut := len(p)
	for i := len(p) - 1; i >= 0 && i >= len(p)-utf8.UTFMax+1; i-- {
		if utf8.RuneStart(p[i]) {
			if !utf8.FullRune(p[i:]) {
				cut = i
			}
			break
		}
	}
	if cut < len(p) {
		w.carry[s] = append([]byte(nil), p[cut:]...)
		p = p[:cut]
	}
	if len(p) == 0 {
		return nil
	}
	if utf8.Valid(p) {
		return w.event(textCodes[s], p, false)
	}
	return w.event(binaryCodes[s], p, true)
}

// Resize records a terminal size.
func (w *Writer) Resize(cols, rows int) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	return w.event(CodeResize, []byte(strconv.Itoa(cols)+"x"+strconv.Itoa(rows)), false)
}

// Marker records a marker (a gap, the end of the session).
func (w *Writer) Marker(label string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	return w.event(CodeMarker, []byte(label), false)
}

// Err returns the first write error; every later event returns it too.
func (w *Writer) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Flush writes what the carries hold (the session ended mid-sequence).
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for s, c := range w.carry {
		if len(c) > 0 && w.err == nil {
			w.carry[s] = nil
			_ = w.event(binaryCodes[s], c, true)
		}
	}
	return w.err
}

// event writes one line; w.mu is held.
func (w *Writer) event(code string, data []byte, binary bool) error {
	t := w.clk.Now().Sub(w.start).Seconds()
	if t < 0 {
		t = 0
	}
	b := w.line[:0]
	b = append(b, '[')
	b = strconv.AppendFloat(b, t, 'f', 6, 64)
	b = append(b, ",\""...)
	b = append(b, code...)
	b = append(b, "\","...)
	if binary {
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, data)
		b = append(b, '"')
	} else {
		b = appendJSONString(b, data)
	}
	b = append(b, "]\n"...)
	w.line = b
	if cap(w.line) > 1<<20 {
		w.line = nil // do not keep a large line's buffer for the whole session
	}
	if _, err := w.w.Write(b); err != nil {
		w.err = fmt.Errorf("writing the recording: %w", err)
		return w.err
	}
	w.n += int64(len(b))
	close(w.changed)
	w.changed = make(chan struct{})
	return nil
}

// appendJSONString appends s, valid UTF-8, as a JSON string. Unlike encoding/json it
// leaves <, > and & alone: a terminal's bytes are not HTML.
func appendJSONString(b, s []byte) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c != 0x7f {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	// U+2028 and U+2029 are valid in JSON strings; nothing else needs escaping.
	return append(b, '"')
}

// Event is one event read back.
type Event struct {
	// Time is the offset from the start of the session.
	Time time.Duration
	Code string
	// Data is the event's bytes: for "ob", "eb" and "ib" the decoded bytes.
	Data []byte
}

// Stream reports which stream a data event belongs to, and whether it is one.
func (e Event) Stream() (Stream, bool) {
	switch e.Code {
	case CodeStdout, CodeStdoutBinary:
		return Stdout, true
	case CodeStderr, CodeStderrBinary:
		return Stderr, true
	case CodeStdin, CodeStdinBinary:
		return Stdin, true
	}
	return 0, false
}

// CorruptError reports a recording that cannot be read past Offset.
type CorruptError struct {
	// Offset is the byte offset of the first line that could not be read; Line is its
	// number (the header is line 1).
	Offset int64
	Line   int
	Err    error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("recording is corrupt at byte %d (line %d): %v", e.Offset, e.Line, e.Err)
}

func (e *CorruptError) Unwrap() error { return e.Err }

// maxLine bounds one line of a recording: the writer's largest event (a 32 KiB chunk
// of control bytes, six bytes each) is far below it.
const maxLine = 4 << 20

// Reader reads a recording.
type Reader struct {
	Header Header
	r      *lineReader
	last   time.Duration
}

// NewReader reads the header of a recording.
func NewReader(r io.Reader) (*Reader, error) {
	lr := &lineReader{r: r}
	off := lr.off
	line, err := lr.next()
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = errors.New("empty recording: no header")
		}
		return nil, &CorruptError{Offset: off, Line: 1, Err: err}
	}
	var h Header
	if err := json.Unmarshal(line, &h); err != nil {
		return nil, &CorruptError{Offset: off, Line: 1, Err: fmt.Errorf("header: %w", err)}
	}
	if h.Version != 2 {
		return nil, &CorruptError{Offset: off, Line: 1, Err: fmt.Errorf("header: version %d, want 2 (asciicast v2)", h.Version)}
	}
	return &Reader{Header: h, r: lr}, nil
}

// Next returns the next event, io.EOF at the end, or a *CorruptError.
func (r *Reader) Next() (Event, error) {
	off, n := r.r.off, r.r.n+1
	line, err := r.r.next()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return Event{}, io.EOF
		}
		return Event{}, &CorruptError{Offset: off, Line: n, Err: err}
	}
	e, err := parseEvent(line)
	if err != nil {
		return Event{}, &CorruptError{Offset: off, Line: n, Err: err}
	}
	if e.Time < r.last {
		return Event{}, &CorruptError{Offset: off, Line: n, Err: fmt.Errorf("time %v goes back (previous %v)", e.Time, r.last)}
	}
	r.last = e.Time
	return e, nil
}

func parseEvent(line []byte) (Event, error) {
	var raw []json.RawMessage
	if err := json.Unmarshal(line, &raw); err != nil {
		return Event{}, fmt.Errorf("event: %w", err)
	}
	if len(raw) != 3 {
		return Event{}, fmt.Errorf("event: %d elements, want [time, code, data]", len(raw))
	}
	var secs float64
	if err := json.Unmarshal(raw[0], &secs); err != nil {
		return Event{}, fmt.Errorf("event time: %w", err)
	}
	if secs < 0 || secs > 1e9 {
		return Event{}, fmt.Errorf("event time %v out of range", secs)
	}
	var e Event
	e.Time = time.Duration(secs * float64(time.Second))
	if err := json.Unmarshal(raw[1], &e.Code); err != nil {
		return Event{}, fmt.Errorf("event code: %w", err)
	}
	var data string
	if err := json.Unmarshal(raw[2], &data); err != nil {
		return Event{}, fmt.Errorf("event data: %w", err)
	}
	switch e.Code {
	case CodeStdoutBinary, CodeStderrBinary, CodeStdinBinary:
		b, err := base64.StdEncoding.DecodeString(data)
		if err != nil {
			return Event{}, fmt.Errorf("event data (%s): %w", e.Code, err)
		}
		e.Data = b
	default:
		e.Data = []byte(data)
	}
	return e, nil
}

// lineReader reads lines, counting bytes and lines, with a bound on a line's length.
type lineReader struct {
	r   io.Reader
	buf []byte
	// pos is where unread bytes start in buf.
	pos int
	off int64
	n   int
	eof bool
}

// next returns the next line without its newline. A last line without a newline is
// a truncated event.
func (l *lineReader) next() ([]byte, error) {
	for {
		if i := bytes.IndexByte(l.buf[l.pos:], '\n'); i >= 0 {
			line := l.buf[l.pos : l.pos+i]
			l.pos += i + 1
			l.off += int64(i + 1)
			l.n++
			return line, nil
		}
		if l.eof {
			if l.pos == len(l.buf) {
				return nil, io.EOF
			}
			return nil, fmt.Errorf("truncated: the last %d bytes end without a newline", len(l.buf)-l.pos)
		}
		if len(l.buf)-l.pos > maxLine {
			return nil, fmt.Errorf("line longer than %d bytes", maxLine)
		}
		// Compact, then read more.
		if l.pos > 0 {
			n := copy(l.buf, l.buf[l.pos:])
			l.buf = l.buf[:n]
			l.pos = 0
		}
		if cap(l.buf)-len(l.buf) < 32<<10 {
			nb := make([]byte, len(l.buf), 2*cap(l.buf)+64<<10)
			copy(nb, l.buf)
			l.buf = nb
		}
		n, err := l.r.Read(l.buf[len(l.buf):cap(l.buf)])
		l.buf = l.buf[:len(l.buf)+n]
		if err == io.EOF {
			l.eof = true
		} else if err != nil {
			return nil, err
		}
	}
}

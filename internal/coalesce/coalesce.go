// Package coalesce owns how the proxy's HTTP/2 server connections write: it lets a
// response's HEADERS frame wait a moment for the DATA that follows it, so that a small
// response leaves in one write instead of two.
//
// Go's HTTP/2 server hands a response's headers to its connection goroutine and waits for
// them to be written before the handler's body follows; on a connection with nothing else
// queued the headers are flushed alone, and the body a moment later in a second write. On
// loopback and in VMs a write is several microseconds of the sender's CPU plus a wake-up
// of the receiver, so the extra write costs both sides. Conn sits between the HTTP/2
// server and the TLS connection, reads the frame headers of what the server writes, and
// when a write ends with a HEADERS frame that does not end its stream, keeps it (at most
// MaxHold) and sends it with the next write. Bytes always leave in order and nothing but
// the timing changes: a misread frame costs at most MaxHold of delay.
package coalesce

import (
	"crypto/tls"
	"net"
	"sync"
	"time"
)

// MaxHold is how long a held HEADERS frame waits for more. The DATA of a small response
// follows as soon as its handler goroutine runs again, which on two cores shared with the
// API server can take a millisecond or more; a frame that waits longer goes out on its
// own. Only a response whose body does not follow at once (a watch before its first
// event, a 1xx) waits the whole time, and nothing else on the connection waits for it.
const MaxHold = 5 * time.Millisecond

// maxHeld bounds what is held; a write that would hold more goes out at once.
const maxHeld = 16 << 10

// HTTP/2 frame header fields (RFC 9113 section 4.1).
const (
	frameHeaderLen  = 9
	frameHeaders    = 0x1
	frameContinuing = 0x9 // CONTINUATION
	flagEndStream   = 0x1
)

// Conn is a server-side HTTP/2 connection whose writes are coalesced as the package doc
// says. It is safe for the HTTP/2 server's use: one write at a time, plus the timer.
type Conn struct {
	net.Conn // the TLS connection: reads, deadlines, addresses

	mu      sync.Mutex
	held    []byte // written by the server, not yet sent
	timer   *time.Timer
	err     error // the first failed send; every later Write returns it
	partial int   // bytes of a frame that the last Write did not finish
	// lastHeaders reports that the last complete frame written was a HEADERS (or its
	// CONTINUATION) frame that does not end its stream.
	lastHeaders bool
}

// Wrap returns c (a *tls.Conn in the server) with coalesced writes.
func Wrap(c net.Conn) *Conn {
	cc := &Conn{Conn: c}
	cc.timer = time.AfterFunc(time.Hour, cc.flushHeld)
	cc.timer.Stop()
	return cc
}

// ConnectionState is the TLS connection's, which the HTTP/2 server checks.
func (c *Conn) ConnectionState() tls.ConnectionState {
	if cs, ok := c.Conn.(interface{ ConnectionState() tls.ConnectionState }); ok {
		return cs.ConnectionState()
	}
	return tls.ConnectionState{}
}

// Write implements net.Conn. It returns len(p) once p is sent or held.
func (c *Conn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	hold := c.scan(p) && len(c.held)+len(p) <= maxHeld
	if hold {
		if len(c.held) == 0 {
			c.timer.Reset(MaxHold)
		}
		c.held = append(c.held, p...)
		return len(p), nil
	}
	if len(c.held) == 0 {
		return c.send(p)
	}
	c.timer.Stop()
	c.held = append(c.held, p...)
	_, err := c.send(c.held)
	c.held = c.held[:0]
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// scan follows the frames in p, which continues the stream of frames written so far, and
// reports whether p ends exactly after a HEADERS frame (or its last CONTINUATION) that
// does not end its stream: the headers of a response whose body is on its way.
func (c *Conn) scan(p []byte) bool {
	for len(p) > 0 {
		if c.partial > 0 {
			n := min(c.partial, len(p))
			c.partial -= n
			p = p[n:]
			continue
		}
		if len(p) < frameHeaderLen {
			// A frame header split across writes: not something to hold for.
			c.partial, c.lastHeaders = 0, false
			return false
		}
		length := int(p[0])<<16 | int(p[1])<<8 | int(p[2])
		switch typ, flags := p[3], p[4]; typ {
		case frameHeaders:
			c.lastHeaders = flags&flagEndStream == 0
		case frameContinuing:
			// Part of the header block before it: same stream, same ending.
		default:
			c.lastHeaders = false
		}
		p = p[frameHeaderLen:]
		n := min(length, len(p))
		c.partial = length - n
		p = p[n:]
	}
	return c.partial == 0 && c.lastHeaders
}

// send writes b to the TLS connection; the caller holds c.mu.
func (c *Conn) send(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if err != nil {
		c.err = err
	}
	return n, err
}

// flushHeld sends what is held when MaxHold passes without another write.
func (c *Conn) flushHeld() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.held) == 0 || c.err != nil {
		return
	}
	_, _ = c.send(c.held)
	c.held = c.held[:0]
}

// Close sends what is held, then closes the connection.
func (c *Conn) Close() error {
	c.mu.Lock()
	c.timer.Stop()
	if len(c.held) > 0 && c.err == nil {
		_, _ = c.send(c.held)
		c.held = nil
	}
	c.mu.Unlock()
	return c.Conn.Close()
}

var _ net.Conn = (*Conn)(nil)

package tunnel

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/keyport/keyport/internal/errs"
)

// This file is the proxy's end.

// CheckRequest refuses a request that is not a tunnel request: GET Path in HTTP/1.1 with
// Upgrade: Protocol. Errors are bad parameters that say what a tunnel request looks like.
func CheckRequest(r *http.Request) error {
	if r.Method != http.MethodGet || !strings.EqualFold(r.Header.Get("Upgrade"), Protocol) {
		return errs.BadParameterf("a reverse tunnel is opened with GET %s and Upgrade: %s", Path, Protocol)
	}
	if r.ProtoMajor != 1 {
		return errs.BadParameterf("a reverse tunnel needs HTTP/1.1 (offer ALPN http/1.1 only)")
	}
	return nil
}

// Clusters returns the kube clusters a tunnel request announces in HeaderClusters.
func Clusters(r *http.Request) ([]string, error) {
	var out []string
	for _, n := range strings.Split(r.Header.Get(HeaderClusters), ",") {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		if len(n) > 253 || strings.ContainsAny(n, "/?#%\\ ") || n == "." || n == ".." {
			return nil, errs.BadParameterf("%q is not a kube cluster name", n)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return nil, errs.BadParameterf("a reverse tunnel must name its kube clusters in %s", HeaderClusters)
	}
	return out, nil
}

// Accept switches the connection of a tunnel request (checked with CheckRequest, its
// caller authenticated) to the tunnel and returns it. The handler that called Accept
// owns the connection from then on.
func Accept(w http.ResponseWriter) (net.Conn, error) {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	if _, err := brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + Protocol + "\r\n\r\n"); err != nil {
		_ = conn.Close()
		return nil, err
	}
	if err := brw.Flush(); err != nil {
		_ = conn.Close()
		return nil, err
	}
	if brw.Reader.Buffered() > 0 {
		return &readerConn{Conn: conn, r: io.MultiReader(brw.Reader, conn)}, nil
	}
	return conn, nil
}

// readerConn reads what was buffered before the connection itself.
type readerConn struct {
	net.Conn
	r io.Reader
}

func (c *readerConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// Client is the proxy's end of an open tunnel: an HTTP/2 client on the connection the
// service opened. It is the RoundTripper for ordinary requests; Upgrades carries
// connection upgrades.
type Client struct {
	cc   *http.ClientConn
	done chan struct{}
	once sync.Once
}

// NewClient starts the HTTP/2 client side on nc, waiting at most until ctx ends for the
// peer's settings.
func NewClient(ctx context.Context, nc net.Conn) (*Client, error) {
	var dialed bool
	tr := &http.Transport{
		Protocols: Protocols(),
		HTTP2:     HTTP2(),
		DialContext: func(context.Context, string, string) (net.Conn, error) {
			if dialed {
				return nil, errors.New("the tunnel connection is gone")
			}
			dialed = true
			return nc, nil
		},
	}
	cc, err := tr.NewClientConn(ctx, "http", "tunnel:80")
	if err != nil {
		return nil, err
	}
	c := &Client{cc: cc, done: make(chan struct{})}
	cc.SetStateHook(func(cc *http.ClientConn) {
		if cc.Err() != nil {
			c.once.Do(func() { close(c.done) })
		}
	})
	if cc.Err() != nil {
		c.once.Do(func() { close(c.done) })
	}
	return c, nil
}

// Err is why the tunnel's connection can no longer be used, or nil while it can.
func (c *Client) Err() error { return c.cc.Err() }

// Done is closed when the tunnel's connection has failed or closed.
func (c *Client) Done() <-chan struct{} { return c.done }

// Close closes the tunnel.
func (c *Client) Close() error { return c.cc.Close() }

// RoundTrip sends an ordinary request as an HTTP/2 stream of the tunnel.
func (c *Client) RoundTrip(r *http.Request) (*http.Response, error) { return c.cc.RoundTrip(r) }

// Upgrades returns the RoundTripper for connection upgrades through the tunnel.
func (c *Client) Upgrades() http.RoundTripper { return upgrades{c} }

// upgrades sends a connection upgrade through the tunnel: HTTP/2 cannot carry Upgrade,
// so the request travels as a stream whose request body is the client's side of the
// upgraded connection and whose response body is the API server's side.
type upgrades struct{ c *Client }

func (u upgrades) RoundTrip(r *http.Request) (*http.Response, error) {
	upgrade := r.Header.Get("Upgrade")
	out := r.Clone(r.Context())
	for _, h := range []string{"Connection", "Proxy-Connection", "Keep-Alive", "Te", "Transfer-Encoding", "Upgrade"} {
		out.Header.Del(h)
	}
	out.Header.Set(HeaderUpgrade, upgrade)
	pr, pw := io.Pipe()
	out.Body = pr
	out.ContentLength = -1
	resp, err := u.c.cc.RoundTrip(out)
	if err != nil {
		_ = pw.CloseWithError(err)
		return nil, err
	}
	if resp.Header.Get(HeaderUpgradeStatus) != "101" {
		// The API server (or the service) refused the upgrade: an ordinary response.
		_ = pw.Close()
		return resp, nil
	}
	resUpgrade := resp.Header.Get(HeaderUpgrade)
	resp.Header.Del(HeaderUpgradeStatus)
	resp.Header.Del(HeaderUpgrade)
	resp.Header.Set("Connection", "Upgrade")
	resp.Header.Set("Upgrade", resUpgrade)
	// Present it as the HTTP/1.1 101 it was, with no body length: ReverseProxy writes
	// it to the client as is, and an unknown length would add "Connection: close".
	resp.StatusCode = http.StatusSwitchingProtocols
	resp.Status = "101 Switching Protocols"
	resp.Proto, resp.ProtoMajor, resp.ProtoMinor = "HTTP/1.1", 1, 1
	resp.ContentLength = 0
	resp.Header.Del("Content-Length")
	resp.Body = &streamConn{r: resp.Body, w: pw}
	return resp, nil
}

// streamConn is an upgraded connection carried by one HTTP/2 stream.
type streamConn struct {
	r io.ReadCloser
	w *io.PipeWriter
}

func (s *streamConn) Read(p []byte) (int, error)  { return s.r.Read(p) }
func (s *streamConn) Write(p []byte) (int, error) { return s.w.Write(p) }

// CloseWrite ends the request body: the client finished sending, and the API server
// still gets to answer.
func (s *streamConn) CloseWrite() error { return s.w.Close() }

func (s *streamConn) Close() error {
	_ = s.w.CloseWithError(io.ErrClosedPipe)
	return s.r.Close()
}

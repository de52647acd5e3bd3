package tunnel

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/keyport/keyport/internal/kubestatus"
)

// This file is the Kubernetes Service's end.

// Dial opens a TLS connection to the proxy at addr with tc and asks the proxy to switch
// it to a tunnel that serves clusters. The connection it returns is the tunnel.
func Dial(ctx context.Context, addr string, tc *tls.Config, clusters []string) (net.Conn, error) {
	tc = tc.Clone()
	tc.NextProtos = []string{"http/1.1"}
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}, Config: tc}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connecting to the proxy at %s: %w", addr, err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = nc.Close()
		}
	}()
	_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	req, err := http.NewRequest(http.MethodGet, "https://"+addr+Path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", Protocol)
	req.Header.Set(HeaderClusters, strings.Join(clusters, ","))
	if err := req.Write(nc); err != nil {
		return nil, fmt.Errorf("asking the proxy at %s for a tunnel: %w", addr, err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return nil, fmt.Errorf("reading the proxy's answer to the tunnel request: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		defer resp.Body.Close()
		return nil, fmt.Errorf("the proxy at %s refused the tunnel: %s", addr, statusMessage(resp))
	}
	if !strings.EqualFold(resp.Header.Get("Upgrade"), Protocol) {
		return nil, fmt.Errorf("the proxy at %s switched to %q instead of %q", addr, resp.Header.Get("Upgrade"), Protocol)
	}
	_ = nc.SetDeadline(time.Time{})
	ok = true
	// The proxy may send its HTTP/2 preface right behind the 101.
	return &readerConn{Conn: nc, r: br}, nil
}

// statusMessage reads the message of a refusal: a Kubernetes Status, or the plain body.
func statusMessage(resp *http.Response) string {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	var st metav1.Status
	if json.Unmarshal(data, &st) == nil && st.Message != "" {
		return fmt.Sprintf("%d %s", resp.StatusCode, st.Message)
	}
	if msg := strings.TrimSpace(string(data)); msg != "" {
		return fmt.Sprintf("%d %s", resp.StatusCode, msg)
	}
	return resp.Status
}

// Serve serves h over HTTP/2 on conn, an open tunnel, until the connection ends or ctx
// does. It always returns an error saying why the tunnel ended.
func Serve(ctx context.Context, conn net.Conn, h http.Handler, log *slog.Logger) error {
	l := newOneConnListener(conn)
	srv := &http.Server{
		Handler:   h,
		Protocols: Protocols(),
		HTTP2:     HTTP2(),
		ErrorLog:  slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateClosed || st == http.StateHijacked {
				_ = l.Close()
			}
		},
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-ctx.Done():
		case <-stop:
		}
		_ = srv.Close()
		_ = l.Close()
	}()
	err := srv.Serve(l)
	_ = srv.Close()
	if errors.Is(err, net.ErrClosed) || errors.Is(err, http.ErrServerClosed) {
		err = errors.New("the connection closed")
	}
	return err
}

// ServeUpgrade is the service's end of a connection upgrade carried through the tunnel
// (r has HeaderUpgrade): it performs the upgrade against target with rt and then carries
// the upgraded connection's bytes on this stream, the request body to the API server and
// the API server's bytes back as the response body. It returns an error, having written
// nothing, when the API server cannot be reached; the caller answers then.
func ServeUpgrade(w http.ResponseWriter, r *http.Request, rt http.RoundTripper, target *url.URL) error {
	ctx := r.Context()
	out, err := http.NewRequestWithContext(ctx, r.Method, target.String(), nil)
	if err != nil {
		kubestatus.Write(w, http.StatusBadRequest, err.Error())
		return nil
	}
	upgrade := r.Header.Get(HeaderUpgrade)
	out.Header = r.Header.Clone()
	for _, h := range hopHeaders {
		out.Header.Del(h)
	}
	out.Header.Del(HeaderUpgrade)
	out.Header.Set("Connection", "Upgrade")
	out.Header.Set("Upgrade", upgrade)
	resp, err := rt.RoundTrip(out)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer resp.Body.Close()
	h := w.Header()
	for k, v := range resp.Header {
		h[k] = v
	}
	for _, k := range hopHeaders {
		h.Del(k)
	}
	fl := http.NewResponseController(w)
	if resp.StatusCode != http.StatusSwitchingProtocols {
		// Refused (RBAC, bad request): an ordinary response.
		w.WriteHeader(resp.StatusCode)
		_, _ = copyFlush(w, fl, resp.Body)
		return nil
	}
	backend, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		kubestatus.Write(w, http.StatusBadGateway, "the API server switched protocols without a writable connection")
		return nil
	}
	h.Set(HeaderUpgradeStatus, "101")
	h.Set(HeaderUpgrade, resp.Header.Get("Upgrade"))
	w.WriteHeader(http.StatusOK)
	if err := fl.Flush(); err != nil {
		return nil
	}
	var once sync.Once
	closeBackend := func() { once.Do(func() { _ = backend.Close() }) }
	defer closeBackend()
	go func() {
		// The proxy's side of the connection.
		_, err := io.Copy(backend, r.Body)
		if err == nil {
			// The client finished sending: pass the half-close on where possible.
			if cw, ok := backend.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
				return
			}
		}
		closeBackend()
	}()
	go func() {
		<-ctx.Done()
		closeBackend()
	}()
	_, _ = copyFlush(w, fl, backend)
	return nil
}

// copyFlush copies src to w, flushing after every read so that streams are not held.
func copyFlush(w io.Writer, fl *http.ResponseController, src io.Reader) (int64, error) {
	buf := make([]byte, 32*1024)
	var n int64
	for {
		nr, rerr := src.Read(buf)
		if nr > 0 {
			nw, werr := w.Write(buf[:nr])
			n += int64(nw)
			if werr != nil {
				return n, werr
			}
			if err := fl.Flush(); err != nil {
				return n, err
			}
		}
		if rerr != nil {
			if rerr == io.EOF {
				return n, nil
			}
			return n, rerr
		}
	}
}

// oneConnListener hands one connection to an http.Server, then blocks until closed.
type oneConnListener struct {
	conn   chan net.Conn
	addr   net.Addr
	closed chan struct{}
	once   sync.Once
}

func newOneConnListener(c net.Conn) *oneConnListener {
	l := &oneConnListener{conn: make(chan net.Conn, 1), addr: c.LocalAddr(), closed: make(chan struct{})}
	l.conn <- c
	return l
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conn:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *oneConnListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *oneConnListener) Addr() net.Addr { return l.addr }

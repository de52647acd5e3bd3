package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/keyport/keyport/internal/gctune"
)

// The deployed section's helpers run as processes of their own, started from this same
// binary with a hidden first argument, and talk to the bench over their standard input
// and output, one JSON object per line. Each exits when its standard input closes, so
// none outlives the bench.
const (
	loadCommand = "load"
	bareCommand = "bare-proxy"
)

// loadRequest asks the load process for one round on one path: Requests GETs, or as
// many as fit in Seconds.
type loadRequest struct {
	Path     string  `json:"path"`
	Requests int     `json:"requests,omitempty"`
	Seconds  float64 `json:"seconds,omitempty"`
}

// loadReply is one round's result (or the ready signal, or an error).
type loadReply struct {
	Ready     bool            `json:"ready,omitempty"`
	Requests  int             `json:"requests,omitempty"`
	Elapsed   time.Duration   `json:"elapsed,omitempty"`
	Latencies []time.Duration `json:"latencies,omitempty"` // sorted
	Error     string          `json:"error,omitempty"`
}

// loadMain is `keyport-bench load [-workers N] NAME=KUBECONFIG…`: a client the way
// controllers and kubectl connect — client-go's HTTP client from a kubeconfig (its exec
// credential plugin, impersonation, TLS, one HTTP/2 connection per path) — that runs the
// rounds the bench asks for on its standard input. It keeps Go's default GC, as kubectl
// and controllers do.
func loadMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("keyport-bench load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	workers := fs.Int("workers", 16, "concurrent GETs")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	clients := map[string]*http.Client{}
	hosts := map[string]string{}
	for _, a := range fs.Args() {
		name, file, ok := strings.Cut(a, "=")
		if !ok {
			fmt.Fprintf(stderr, "keyport-bench load: %q is not NAME=KUBECONFIG\n", a)
			return 2
		}
		cfg, err := clientcmd.BuildConfigFromFlags("", file)
		if err != nil {
			fmt.Fprintf(stderr, "keyport-bench load: %s: %v\n", file, err)
			return 1
		}
		if clients[name], err = rest.HTTPClientFor(cfg); err != nil {
			fmt.Fprintf(stderr, "keyport-bench load: %s: %v\n", file, err)
			return 1
		}
		hosts[name] = cfg.Host
	}
	enc := json.NewEncoder(stdout)
	ctx := context.Background()
	// Warm up every path: the connection, TLS, the exec plugin's credential, the
	// proxy's and the API server's caches.
	for name, hc := range clients {
		if _, err := countRound(ctx, hc, hosts[name]+podPath, *workers, 200, 0); err != nil {
			_ = enc.Encode(loadReply{Error: fmt.Sprintf("warm-up %s: %v", name, err)})
			return 1
		}
	}
	if err := enc.Encode(loadReply{Ready: true}); err != nil {
		return 1
	}
	sc := bufio.NewScanner(stdin)
	for sc.Scan() {
		var req loadRequest
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			_ = enc.Encode(loadReply{Error: fmt.Sprintf("bad request %q: %v", sc.Text(), err)})
			continue
		}
		hc, ok := clients[req.Path]
		if !ok {
			_ = enc.Encode(loadReply{Error: fmt.Sprintf("no path %q", req.Path)})
			continue
		}
		r, err := countRound(ctx, hc, hosts[req.Path]+podPath, *workers, req.Requests, time.Duration(req.Seconds*float64(time.Second)))
		reply := loadReply{Requests: r.requests, Elapsed: r.elapsed, Latencies: r.latencies}
		if err != nil {
			reply = loadReply{Error: err.Error()}
		}
		if err := enc.Encode(reply); err != nil {
			return 1
		}
	}
	return 0
}

// countRound has workers clients send GETs to url back to back until n have been sent
// (n > 0) or d has passed; the first failure fails the round.
func countRound(ctx context.Context, hc *http.Client, url string, workers, n int, d time.Duration) (roundResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		left    atomic.Int64
		mu      sync.Mutex
		lat     []time.Duration
		failure error
		wg      sync.WaitGroup
	)
	left.Store(int64(n))
	start := time.Now()
	deadline := start.Add(d)
	more := func() bool {
		if n > 0 {
			return left.Add(-1) >= 0
		}
		return time.Now().Before(deadline)
	}
	for range workers {
		wg.Go(func() {
			own := make([]time.Duration, 0, 1024)
			for ctx.Err() == nil && more() {
				t0 := time.Now()
				if _, err := get(ctx, hc, url); err != nil {
					mu.Lock()
					if failure == nil {
						failure = err
					}
					mu.Unlock()
					cancel()
					break
				}
				own = append(own, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, own...)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if failure != nil {
		return roundResult{}, failure
	}
	slices.Sort(lat)
	return roundResult{requests: len(lat), elapsed: elapsed, latencies: lat}, nil
}

// bareReply is what bare-proxy prints once it listens: the kubeconfig fields that reach it.
type bareReply struct {
	URL        string `json:"url"`
	CAPEM      []byte `json:"ca_pem"`
	ServerName string `json:"server_name"`
	// PprofAddr serves Go's profiles (/debug/pprof/) on loopback, so that the bench can
	// profile the bare proxy the way it profiles keyport's diag port.
	PprofAddr string `json:"pprof_addr"`
}

// bareMain is `keyport-bench bare-proxy -kubeconfig ADMIN -as USER -as-group G…`: the
// reference reverse proxy (startBareProxy) in a process of its own, with the GC setting
// `keyport start` gives the daemon so that the two proxies differ only in what they do
// per request.
func bareMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("keyport-bench bare-proxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	kubeconfig := fs.String("kubeconfig", "", "the API server's admin kubeconfig")
	user := fs.String("as", "", "Impersonate-User to send")
	var groups stringList
	fs.Var(&groups, "as-group", "Impersonate-Group to send (repeatable)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *kubeconfig == "" || *user == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: keyport-bench bare-proxy -kubeconfig FILE -as USER [-as-group GROUP]…")
		return 2
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	gctune.Start(ctx, os.Getenv, slog.New(slog.NewTextHandler(stderr, nil)))
	admin, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		fmt.Fprintf(stderr, "keyport-bench bare-proxy: %v\n", err)
		return 1
	}
	srv, cfg, err := startBareProxy(admin, *user, groups)
	if err != nil {
		fmt.Fprintf(stderr, "keyport-bench bare-proxy: %v\n", err)
		return 1
	}
	defer srv.Close()
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintf(stderr, "keyport-bench bare-proxy: %v\n", err)
		return 1
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	ps := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = ps.Serve(pl) }()
	defer func() { _ = ps.Close() }()
	if err := json.NewEncoder(stdout).Encode(bareReply{URL: cfg.Host, CAPEM: cfg.CAData, ServerName: cfg.ServerName, PprofAddr: pl.Addr().String()}); err != nil {
		return 1
	}
	_, _ = io.Copy(io.Discard, stdin) // until the bench closes it
	return 0
}

type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// helper is a running load or bare-proxy process.
type helper struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *json.Decoder
	logs *strings.Builder
	mu   sync.Mutex // guards logs, written by exec's copier
}

// startHelper runs this binary with args, its standard error kept for error messages.
func startHelper(args ...string) (*helper, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	h := &helper{cmd: exec.Command(self, args...), logs: &strings.Builder{}}
	h.cmd.Stderr = lockedWriter{h}
	if h.in, err = h.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	out, err := h.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	h.out = json.NewDecoder(out)
	if err := h.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", args[0], err)
	}
	return h, nil
}

type lockedWriter struct{ h *helper }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.h.mu.Lock()
	defer w.h.mu.Unlock()
	return w.h.logs.Write(p)
}

// read decodes the helper's next line into v; a helper that died is reported with what
// it printed.
func (h *helper) read(v any) error {
	if err := h.out.Decode(v); err != nil {
		h.mu.Lock()
		defer h.mu.Unlock()
		return fmt.Errorf("%s: %w; its output: %s", h.cmd.Args[1], err, strings.TrimSpace(h.logs.String()))
	}
	return nil
}

func (h *helper) pid() int { return h.cmd.Process.Pid }

// stop closes the helper's standard input, which ends it, and waits.
func (h *helper) stop() {
	_ = h.in.Close()
	done := make(chan struct{})
	go func() { _ = h.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = h.cmd.Process.Kill()
		<-done
	}
}

// round asks the load helper for one round.
func (h *helper) round(req loadRequest) (roundResult, error) {
	data, err := json.Marshal(req)
	if err != nil {
		return roundResult{}, err
	}
	if _, err := h.in.Write(append(data, '\n')); err != nil {
		return roundResult{}, fmt.Errorf("load process: %w", err)
	}
	var r loadReply
	if err := h.read(&r); err != nil {
		return roundResult{}, err
	}
	if r.Error != "" {
		return roundResult{}, errors.New(r.Error)
	}
	return roundResult{requests: r.Requests, elapsed: r.Elapsed, latencies: r.Latencies}, nil
}

package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/client-go/rest"
)

// API paths the measurements request, relative to a client config's Host.
const (
	podPath  = "/api/v1/namespaces/" + podNamespace + "/pods/" + podName
	listPath = "/api/v1/namespaces/" + listNamespace + "/configmaps"
)

// get performs one GET and returns how many body bytes it read; a status other than 200
// is an error.
func get(ctx context.Context, hc *http.Client, url string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		return n, err
	}
	if resp.StatusCode != http.StatusOK {
		return n, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return n, nil
}

// roundResult is one fixed-duration round of requests on one path.
type roundResult struct {
	requests  int
	bytes     int64
	elapsed   time.Duration
	latencies []time.Duration // sorted
	cpu       time.Duration   // this process's user+system CPU during the round
	sys       syscalls        // this process's read and write system calls during the round
	cpCPU     time.Duration   // kube-apiserver's and etcd's
}

// controlPlane names the processes whose CPU a round also measures: the API server and
// its etcd, which do the same work on both paths.
var controlPlane = []string{"kube-apiserver", "etcd"}

func (r roundResult) cpCPUPerRequest() time.Duration {
	if r.requests == 0 {
		return 0
	}
	return r.cpCPU / time.Duration(r.requests)
}

// readsPerRequest and writesPerRequest are this process's read and write system calls
// per request.
func (r roundResult) readsPerRequest() float64  { return perRequest(r.sys.reads, r.requests) }
func (r roundResult) writesPerRequest() float64 { return perRequest(r.sys.writes, r.requests) }

func perRequest(n int64, requests int) float64 {
	if requests == 0 {
		return 0
	}
	return float64(n) / float64(requests)
}

func (r roundResult) perSecond() float64 { return float64(r.requests) / r.elapsed.Seconds() }
func (r roundResult) bytesPerSecond() float64 {
	return float64(r.bytes) / r.elapsed.Seconds()
}
func (r roundResult) cpuPerRequest() time.Duration {
	if r.requests == 0 {
		return 0
	}
	return r.cpu / time.Duration(r.requests)
}

// quantile of sorted latencies, nearest rank.
func (r roundResult) quantile(q float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	i := int(q*float64(len(r.latencies))+0.5) - 1
	return r.latencies[min(max(i, 0), len(r.latencies)-1)]
}

// runRound has workers clients send GETs to url back to back for d. Every request that
// fails fails the round: a benchmark that counts errors as throughput measures nothing.
func runRound(ctx context.Context, hc *http.Client, url string, workers int, d time.Duration) (roundResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu      sync.Mutex
		lat     []time.Duration
		total   atomic.Int64
		failure error
		wg      sync.WaitGroup
	)
	cpu0, err := processCPU()
	if err != nil {
		return roundResult{}, err
	}
	cp0, err := childCPU(controlPlane...)
	if err != nil {
		return roundResult{}, err
	}
	sys0, err := countSyscalls()
	if err != nil {
		return roundResult{}, err
	}
	start := time.Now()
	deadline := start.Add(d)
	for range workers {
		wg.Go(func() {
			own := make([]time.Duration, 0, 4096)
			for ctx.Err() == nil {
				t0 := time.Now()
				if t0.After(deadline) {
					break
				}
				n, err := get(ctx, hc, url)
				if err != nil {
					mu.Lock()
					if failure == nil {
						failure = err
					}
					mu.Unlock()
					cancel()
					break
				}
				own = append(own, time.Since(t0))
				total.Add(n)
			}
			mu.Lock()
			lat = append(lat, own...)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu1, err := processCPU()
	if err != nil {
		return roundResult{}, err
	}
	cp1, err := childCPU(controlPlane...)
	if err != nil {
		return roundResult{}, err
	}
	sys1, err := countSyscalls()
	if err != nil {
		return roundResult{}, err
	}
	if failure != nil {
		return roundResult{}, failure
	}
	slices.Sort(lat)
	return roundResult{requests: len(lat), bytes: total.Load(), elapsed: elapsed, latencies: lat, cpu: cpu1 - cpu0, sys: sys1.sub(sys0), cpCPU: cp1 - cp0}, nil
}

// watchSet is a number of open, idle watches.
type watchSet struct {
	cancel  context.CancelFunc
	clients []*http.Client
	bodies  []io.Closer
	wg      sync.WaitGroup
}

// openWatches opens n watches on url (which carries ?watch=true&resourceVersion=…) over
// conns HTTP/2 connections, and returns once every one has its 200 response headers.
// Each connection is its own transport so that the streams spread evenly instead of
// piling up to the server's per-connection limit.
func openWatches(ctx context.Context, cfg *rest.Config, url string, n, conns int) (*watchSet, error) {
	tc, err := rest.TLSConfigFor(cfg)
	if err != nil {
		return nil, err
	}
	hdr := http.Header{"Accept": {"application/json"}}
	if u := cfg.Impersonate.UserName; u != "" {
		hdr.Set("Impersonate-User", u)
		for _, g := range cfg.Impersonate.Groups {
			hdr.Add("Impersonate-Group", g)
		}
	}
	clients := make([]*http.Client, conns)
	for i := range clients {
		clients[i] = &http.Client{Transport: &http.Transport{TLSClientConfig: tc.Clone(), ForceAttemptHTTP2: true}}
	}
	wctx, cancel := context.WithCancel(ctx)
	ws := &watchSet{cancel: cancel, clients: clients}
	var mu sync.Mutex
	var first error
	sem := make(chan struct{}, 64)
	var opening sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		opening.Go(func() {
			defer func() { <-sem }()
			req, err := http.NewRequestWithContext(wctx, http.MethodGet, url, nil)
			if err == nil {
				req.Header = hdr.Clone()
				var resp *http.Response
				resp, err = clients[i%conns].Do(req)
				if err == nil && resp.StatusCode != http.StatusOK {
					b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
					_ = resp.Body.Close()
					err = fmt.Errorf("watch %s: %s: %s", url, resp.Status, b)
				}
				if err == nil {
					mu.Lock()
					ws.bodies = append(ws.bodies, resp.Body)
					mu.Unlock()
					// Drain in the background: an idle watch only sends bookmarks, if anything.
					ws.wg.Go(func() { _, _ = io.Copy(io.Discard, resp.Body) })
					return
				}
			}
			mu.Lock()
			if first == nil {
				first = err
			}
			mu.Unlock()
		})
	}
	opening.Wait()
	if first != nil {
		ws.close()
		return nil, first
	}
	return ws, nil
}

// close ends every watch and waits for their readers.
func (ws *watchSet) close() {
	ws.cancel()
	for _, b := range ws.bodies {
		_ = b.Close()
	}
	ws.wg.Wait()
	for _, c := range ws.clients {
		c.CloseIdleConnections()
	}
}

var errNoRequests = errors.New("a round completed no requests")

// checkRounds refuses rounds that measured nothing (a stalled control plane).
func checkRounds(rs ...[]roundResult) error {
	for _, r := range rs {
		for _, x := range r {
			if x.requests == 0 {
				return errNoRequests
			}
		}
	}
	return nil
}

// runAlternating measures one-client latency on every path in the same window: one
// client sends a GET on each path in turn (the first path rotating every cycle) for d,
// so that whatever the machine does meanwhile — another process's burst, a stall of the
// virtual CPU — lands on all paths alike instead of on whichever round it fell in. It
// returns one result per path, with latencies only (CPU cannot be split between paths
// that share the window).
func runAlternating(ctx context.Context, paths []path, apiPath string, d time.Duration) ([]roundResult, error) {
	out := make([]roundResult, len(paths))
	start := time.Now()
	deadline := start.Add(d)
	for cycle := 0; time.Now().Before(deadline); cycle++ {
		for k := range paths {
			j := (cycle + k) % len(paths)
			t0 := time.Now()
			n, err := get(ctx, paths[j].client, paths[j].cfg.Host+apiPath)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", paths[j].name, err)
			}
			out[j].latencies = append(out[j].latencies, time.Since(t0))
			out[j].bytes += n
			out[j].requests++
		}
	}
	elapsed := time.Since(start)
	for j := range out {
		out[j].elapsed = elapsed
		slices.Sort(out[j].latencies)
	}
	return out, nil
}

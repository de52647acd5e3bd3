// Package bench measures what Keyport's Kubernetes proxy costs against talking to the
// API server directly: it starts a real control plane (internal/testenv/kubeenv, with
// kwok) and a whole Keyport cluster in this process, enrolls the cluster with the guide's
// role and ClusterRoleBinding, and runs interleaved rounds — direct, through Keyport,
// through a bare Go reverse proxy (the reference, GET rounds only), direct, … — where the
// direct client impersonates the same user and groups that Keyport impersonates, so that
// the API server does the same work on every path. It is what
// `make bench` runs after the storage benchmarks.
//
// Everything Keyport-side (client, proxy, audit log) runs in this one process, so CPU
// and memory are this process's: the direct column is the client alone, the Keyport
// column client plus proxy, and the difference is the proxy's cost.
//
// `keyport-bench deployed` (make bench-deployed, RunDeployed) measures Keyport as users
// run it: the built keyport, tbot's kubeconfig, and a load process and the bare proxy
// started from this binary as processes of their own (child.go), next to the in-process
// GET ratios of the same run.
package bench

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/keyport/keyport/internal/gctune"
)

// Options are the bench's knobs; the defaults keep `make bench` to a few minutes on a
// shared 2-core machine.
type Options struct {
	Rounds       int           // interleaved rounds per path (median reported)
	Duration     time.Duration // per GET round
	Clients      int           // concurrent GET clients
	ConfigMaps   int           // ConfigMaps in the LIST
	ListDuration time.Duration // per LIST round
	Watches      int           // idle watches opened on each path
	WatchConns   int           // HTTP/2 connections the watches share
	// CPUProfile, when set, receives a CPU profile of one extra Keyport GET round, and
	// CPUProfile+".direct" and CPUProfile+".bare" ones of an extra direct and bare-proxy
	// round, run after the measured rounds so that the profiler's own cost stays out of
	// the table.
	CPUProfile      string
	ProfileDuration time.Duration
	Verbose         bool

	kubeLogger, keyportLogger *slog.Logger
}

// Main runs the bench command line (`keyport-bench [flags]`, the in-process bench, or
// `keyport-bench deployed [flags]`, see RunDeployed) and returns the exit code: 0 when the measurements
// ran (whatever the numbers), 1 on an error, 2 on bad usage.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "deployed":
			return deployedMain(args[1:], stdout, stderr)
		case loadCommand:
			return loadMain(args[1:], os.Stdin, stdout, stderr)
		case bareCommand:
			return bareMain(args[1:], os.Stdin, stdout, stderr)
		}
	}
	var o Options
	fs := flag.NewFlagSet("keyport-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.Rounds, "rounds", 11, "interleaved rounds per path; the table reports the median")
	fs.DurationVar(&o.Duration, "duration", 2*time.Second, "length of each GET round")
	fs.IntVar(&o.Clients, "clients", 16, "concurrent GET clients")
	fs.IntVar(&o.ConfigMaps, "configmaps", 5000, "ConfigMaps in the LIST")
	fs.DurationVar(&o.ListDuration, "list-duration", 2*time.Second, "length of each LIST round (one client, LISTs back to back)")
	fs.IntVar(&o.Watches, "watches", 1000, "idle watches opened on each path for the memory measurement")
	fs.IntVar(&o.WatchConns, "watch-conns", 8, "HTTP/2 connections the watches are spread over")
	fs.StringVar(&o.CPUProfile, "cpuprofile", "", "write a CPU profile of an extra Keyport GET round to `file` (and of a direct and a bare-proxy round to file.direct, file.bare)")
	fs.DurationVar(&o.ProfileDuration, "profile-duration", 6*time.Second, "length of each profiled round")
	fs.BoolVar(&o.Verbose, "v", false, "log the control plane's and Keyport's progress")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 || o.Rounds < 1 || o.Clients < 1 || o.ConfigMaps < 1 || o.Watches < 1 || o.WatchConns < 1 {
		fmt.Fprintln(stderr, "usage: keyport-bench [flags]; counts must be at least 1")
		fs.PrintDefaults()
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := Run(ctx, o, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "ERROR: %v\n", err)
		return 1
	}
	return 0
}

// Run starts everything, measures, prints the report to stdout and progress to stderr,
// and stops everything it started.
func Run(ctx context.Context, o Options, stdout, stderr io.Writer) (err error) {
	log := slog.New(slog.NewTextHandler(stderr, nil))
	o.kubeLogger, o.keyportLogger = slog.New(slog.DiscardHandler), slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if o.Verbose {
		o.kubeLogger, o.keyportLogger = log.With("component", "kubeenv"), log.With("component", "keyport")
	}
	// Keyport runs in this process: give it the GC setting `keyport start` gives the
	// daemon (the client shares it, on every path alike).
	gctx, stopGC := context.WithCancel(ctx)
	defer stopGC()
	gctune.Start(gctx, os.Getenv, log)
	env := environment{cores: runtime.NumCPU(), maxprocs: runtime.GOMAXPROCS(0), goVersion: runtime.Version(), loadBefore: loadAverage()}
	began := time.Now()
	s, err := startSetup(ctx, o, log)
	if err != nil {
		return err
	}
	defer s.close(log)
	env.k8sVersion = s.k8sVersion
	log.Info("set up", "took", time.Since(began).Round(time.Millisecond))

	direct, err := newHTTPClient(s.direct)
	if err != nil {
		return err
	}
	viaKeyport, err := newHTTPClient(s.viaKeyport)
	if err != nil {
		return err
	}
	bare, err := newHTTPClient(s.bare)
	if err != nil {
		return err
	}
	paths := []path{{"direct", s.direct, direct}, {"keyport", s.viaKeyport, viaKeyport}}
	// The GET rounds also measure the bare reverse proxy, the reference for Keyport's
	// own cost (see startBareProxy).
	withBare := append(slices.Clone(paths), path{"bare", s.bare, bare})

	var res results
	// Warm-up: connections, TLS sessions, the proxy's caches, the API server's.
	for _, p := range withBare {
		if _, err := runRound(ctx, p.client, p.cfg.Host+podPath, o.Clients, time.Second); err != nil {
			return fmt.Errorf("warm-up %s: %w", p.name, err)
		}
	}
	get := func(clients int, d time.Duration, apiPath string) func(path) (roundResult, error) {
		return func(p path) (roundResult, error) { return runRound(ctx, p.client, p.cfg.Host+apiPath, clients, d) }
	}
	log.Info("GET rounds", "rounds", o.Rounds, "duration", o.Duration, "clients", o.Clients)
	if res.get, err = interleave(withBare, o.Rounds, "GET", get(o.Clients, o.Duration, podPath)); err != nil {
		return err
	}
	// One client at a time: latency without queueing, which at 16 clients on a busy
	// machine is mostly waiting for a core. The paths alternate request by request.
	log.Info("single-client GET rounds, paths alternating", "rounds", o.Rounds, "duration", o.Duration)
	res.single = make([][]roundResult, len(withBare))
	for i := range o.Rounds {
		rs, err := runAlternating(ctx, withBare, podPath, o.Duration)
		if err != nil {
			return fmt.Errorf("single-client GET round %d: %w", i+1, err)
		}
		for j, r := range rs {
			res.single[j] = append(res.single[j], r)
		}
	}
	for _, p := range paths {
		if err := checkList(ctx, p, o.ConfigMaps); err != nil {
			return err
		}
	}
	log.Info("LIST rounds", "rounds", o.Rounds, "duration", o.ListDuration, "configmaps", o.ConfigMaps)
	if res.list, err = interleave(paths, o.Rounds, "LIST", get(1, o.ListDuration, listPath)); err != nil {
		return err
	}
	if err := checkRounds(slices.Concat(res.get, res.single, res.list)...); err != nil {
		return err
	}

	log.Info("idle watches", "watches", o.Watches, "connections", o.WatchConns)
	if err := measureWatches(ctx, s, paths, o, &res); err != nil {
		return err
	}

	if o.CPUProfile != "" {
		log.Info("profiling one extra round per path", "duration", o.ProfileDuration, "file", o.CPUProfile)
		for _, p := range withBare {
			file := o.CPUProfile
			if p.name != "keyport" {
				file += "." + p.name
			}
			r, err := profileRound(ctx, p, o, file)
			if err != nil {
				return err
			}
			// Per-request costs in a profile need the request count.
			log.Info("profiled round", "path", p.name, "file", file, "requests", r.requests,
				"req_per_s", int(r.perSecond()), "cpu_per_request", r.cpuPerRequest().Round(time.Microsecond))
		}
	}
	env.loadAfter = loadAverage()
	env.took = time.Since(began)
	report(stdout, o, env, &res)
	return nil
}

// interleave runs round on each path in turn, rounds times (direct, keyport, bare, direct, …),
// so that a change in the machine's load hits both paths alike.
func interleave(paths []path, rounds int, what string, round func(path) (roundResult, error)) (out [][]roundResult, err error) {
	out = make([][]roundResult, len(paths))
	for i := range rounds {
		for j, p := range paths {
			r, err := round(p)
			if err != nil {
				return out, fmt.Errorf("%s round %d %s: %w", what, i+1, p.name, err)
			}
			out[j] = append(out[j], r)
		}
	}
	return out, nil
}

// path is one way to reach the API server.
type path struct {
	name   string
	cfg    *rest.Config
	client *http.Client
}

// results hold every round, [0] direct, [1] through Keyport and, for get and single,
// [2] through the bare reverse proxy.
type results struct {
	get, single, list [][]roundResult

	watchRSS        [2]int64 // RSS growth with the watches open
	watchGoroutines [2]int
}

// checkList proves once per path that the LIST returns every ConfigMap (Keyport does not
// filter for this role), so that both columns move the same bytes.
func checkList(ctx context.Context, p path, want int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.cfg.Host+listPath, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("LIST %s: %s", p.name, resp.Status)
	}
	var list struct {
		Items []struct {
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
		} `json:"items"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return fmt.Errorf("LIST %s: %w", p.name, err)
	}
	// The namespace also holds kube-root-ca.crt, which the control plane puts in every one.
	n := 0
	for _, it := range list.Items {
		if strings.HasPrefix(it.Metadata.Name, configMapPrefix) {
			n++
		}
	}
	if n != want {
		return fmt.Errorf("LIST %s returned %d of the bench's ConfigMaps, want %d", p.name, n, want)
	}
	return nil
}

// measureWatches opens o.Watches idle watches on an empty namespace over each path in
// turn and records how much this process's RSS and goroutine count grew while they were
// open.
func measureWatches(ctx context.Context, s *setup, paths []path, o Options, res *results) error {
	cms, err := s.kube.Clientset.CoreV1().ConfigMaps(watchNamespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list %s: %w", watchNamespace, err)
	}
	rv := cms.ResourceVersion
	for j, p := range paths {
		before, err := settledRSS()
		if err != nil {
			return err
		}
		g0 := runtime.NumGoroutine()
		url := p.cfg.Host + "/api/v1/namespaces/" + watchNamespace + "/configmaps?watch=true&resourceVersion=" + rv
		ws, err := openWatches(ctx, p.cfg, url, o.Watches, o.WatchConns)
		if err != nil {
			return fmt.Errorf("opening watches %s: %w", p.name, err)
		}
		after, err := settledRSS()
		g1 := runtime.NumGoroutine()
		ws.close()
		if err != nil {
			return err
		}
		res.watchRSS[j], res.watchGoroutines[j] = after-before, g1-g0
		// The proxy's handlers end after the client has gone; let them finish (and
		// write their audit events) before the next measurement or shutdown. The
		// proxy's own active-streams gauge says when they have.
		if err := poll(ctx, 30*time.Second, "the proxy's watch handlers to end", func() error {
			n, err := activeStreams(ctx, s.keyport.DiagAddr)
			if err == nil && n != 0 {
				err = fmt.Errorf("keyport_kube_active_streams is %v", n)
			}
			return err
		}); err != nil {
			return err
		}
	}
	return nil
}

// activeStreams reads keyport_kube_active_streams from the process's /metrics.
func activeStreams(ctx context.Context, diagAddr string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+diagAddr+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return 0, fmt.Errorf("parsing /metrics: %w", err)
	}
	f, ok := families["keyport_kube_active_streams"]
	if !ok || len(f.GetMetric()) != 1 {
		return 0, errors.New("/metrics has no keyport_kube_active_streams")
	}
	return f.GetMetric()[0].GetGauge().GetValue(), nil
}

// profileRound runs one GET round of p under the CPU profiler.
func profileRound(ctx context.Context, p path, o Options, file string) (roundResult, error) {
	f, err := os.Create(file)
	if err != nil {
		return roundResult{}, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return roundResult{}, err
	}
	r, rerr := runRound(ctx, p.client, p.cfg.Host+podPath, o.Clients, o.ProfileDuration)
	pprof.StopCPUProfile()
	if err := f.Close(); err != nil && rerr == nil {
		rerr = err
	}
	if rerr != nil {
		return roundResult{}, fmt.Errorf("profiled round %s: %w", p.name, rerr)
	}
	return r, nil
}

// median of xs (the lower middle for an even count).
func median[T int64 | float64 | time.Duration](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

func each[T any](rs []roundResult, f func(roundResult) T) []T {
	out := make([]T, len(rs))
	for i, r := range rs {
		out[i] = f(r)
	}
	return out
}

package proxy

import (
	"context"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyport/keyport/internal/tlsca"
)

// tracker knows every stream in flight (withTracking), so that a new lock ends the locked
// identity's open watches, exec, attach and port-forward sessions at once instead of at
// their end.
type tracker struct {
	mu     sync.Mutex
	active map[*tracked]struct{}
	ended  bool // endAll was called: every request is cancelled as it arrives
	gauge  prometheus.Gauge
}

type tracked struct {
	id     *tlsca.Identity
	cancel context.CancelFunc
}

func newTracker(g prometheus.Gauge) *tracker {
	return &tracker{active: map[*tracked]struct{}{}, gauge: g}
}

// add registers a stream; the returned func removes it.
func (t *tracker) add(id *tlsca.Identity, cancel context.CancelFunc) func() {
	e := &tracked{id: id, cancel: cancel}
	t.mu.Lock()
	t.active[e] = struct{}{}
	if t.ended {
		cancel()
	}
	t.mu.Unlock()
	if t.gauge != nil {
		t.gauge.Inc()
	}
	return func() {
		t.mu.Lock()
		delete(t.active, e)
		t.mu.Unlock()
		if t.gauge != nil {
			t.gauge.Dec()
		}
	}
}

// enforce cancels every request whose identity is now locked.
func (t *tracker) enforce(auth Authenticator) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for e := range t.active {
		if auth.CheckLock(e.id) != nil {
			e.cancel()
		}
	}
}

// endAll cancels every request, now and from now on.
func (t *tracker) endAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ended = true
	for e := range t.active {
		e.cancel()
	}
}

// run re-checks locks after every change the cache reports.
func (t *tracker) run(ctx context.Context, changes <-chan struct{}, auth Authenticator) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-changes:
			t.enforce(auth)
		}
	}
}

// metrics are the proxy's Prometheus series.
type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	streams  prometheus.Gauge
	// series caches each (cluster, verb, code)'s counter and histogram: looking them up
	// in the vectors hashes the label values and formats the code on every request.
	series sync.Map // seriesKey → *requestSeries
}

type seriesKey struct {
	cluster, verb string
	code          int
}

type requestSeries struct {
	requests prometheus.Counter
	latency  prometheus.Observer
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyport_kube_requests_total", Help: "Kubernetes requests through the proxy, by cluster, verb and HTTP status code.",
		}, []string{"cluster", "verb", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "keyport_kube_request_duration_seconds", Help: "Time to complete Kubernetes requests through the proxy (streams: their whole life).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"cluster", "verb"}),
		streams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "keyport_kube_active_streams", Help: "Open watch, exec, attach, port-forward and follow-logs streams.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.latency, m.streams)
	}
	return m
}

func (m *metrics) observe(cluster, verb string, code int, seconds float64) {
	k := seriesKey{cluster, verb, code}
	v, ok := m.series.Load(k)
	if !ok {
		// The label values are few (clusters × verbs × codes), as in the vectors.
		v, _ = m.series.LoadOrStore(k, &requestSeries{
			requests: m.requests.WithLabelValues(cluster, verb, strconv.Itoa(code)),
			latency:  m.latency.WithLabelValues(cluster, verb),
		})
	}
	s := v.(*requestSeries)
	s.requests.Inc()
	s.latency.Observe(seconds)
}

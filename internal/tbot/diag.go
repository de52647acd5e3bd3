package tbot

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/keyport/keyport/internal/runner"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are tbot's Prometheus series, on a registry of its own so that tests can run
// several bots in one process.
type metrics struct {
	b   *Bot
	reg *prometheus.Registry

	joins           prometheus.Counter
	renewals        prometheus.Counter
	renewalFailures prometheus.Counter
	outputRenewals  *prometheus.CounterVec
	outputFailures  *prometheus.CounterVec

	mu             sync.Mutex
	identityExpiry time.Time
	outputExpiry   map[string]time.Time
}

var (
	identityExpiryDesc = prometheus.NewDesc("keyport_tbot_identity_expiry_seconds",
		"Seconds until the bot's renewable identity expires.", nil, nil)
	outputExpiryDesc = prometheus.NewDesc("keyport_tbot_output_expiry_seconds",
		"Seconds until the credentials an output last wrote expire.", []string{"output"}, nil)
)

func newMetrics(b *Bot) *metrics {
	m := &metrics{b: b, reg: prometheus.NewRegistry(), outputExpiry: map[string]time.Time{},
		joins: prometheus.NewCounter(prometheus.CounterOpts{Name: "keyport_tbot_joins_total",
			Help: "Successful joins with a token."}),
		renewals: prometheus.NewCounter(prometheus.CounterOpts{Name: "keyport_tbot_identity_renewals_total",
			Help: "Successful renewals of the bot's identity."}),
		renewalFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "keyport_tbot_identity_renewal_failures_total",
			Help: "Failed renewals of the bot's identity."}),
		outputRenewals: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "keyport_tbot_output_renewals_total",
			Help: "Successful writes of an output."}, []string{"output"}),
		outputFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "keyport_tbot_output_failures_total",
			Help: "Failed writes of an output."}, []string{"output"}),
	}
	m.reg.MustRegister(m.joins, m.renewals, m.renewalFailures, m.outputRenewals, m.outputFailures, m)
	return m
}

func (m *metrics) setIdentityExpiry(t time.Time) {
	m.mu.Lock()
	m.identityExpiry = t
	m.mu.Unlock()
}

func (m *metrics) setOutputExpiry(name string, t time.Time) {
	m.mu.Lock()
	m.outputExpiry[name] = t
	m.mu.Unlock()
}

// Describe and Collect make the expiry gauges count down at scrape time (on the bot's
// clock) instead of holding a value that is stale between renewals.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- identityExpiryDesc
	ch <- outputExpiryDesc
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	now := m.b.clock.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.identityExpiry.IsZero() {
		ch <- prometheus.MustNewConstMetric(identityExpiryDesc, prometheus.GaugeValue, m.identityExpiry.Sub(now).Seconds())
	}
	for name, t := range m.outputExpiry {
		ch <- prometheus.MustNewConstMetric(outputExpiryDesc, prometheus.GaugeValue, t.Sub(now).Seconds(), name)
	}
}

// statusBoard is what /readyz reports: the last result of the identity service and of
// each output.
type statusBoard struct {
	mu    sync.Mutex
	order []string
	state map[string]*serviceStatus
}

type serviceStatus struct {
	Status  string    `json:"status"` // initializing | healthy | unhealthy
	Reason  string    `json:"reason,omitempty"`
	Updated time.Time `json:"updated,omitzero"`
}

func newStatusBoard() *statusBoard { return &statusBoard{state: map[string]*serviceStatus{}} }

func (s *statusBoard) add(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.order = append(s.order, name)
	s.state[name] = &serviceStatus{Status: "initializing"}
}

func (s *statusBoard) set(name string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := &serviceStatus{Status: "healthy", Updated: time.Now().UTC()}
	if err != nil {
		st.Status, st.Reason = "unhealthy", err.Error()
	}
	s.state[name] = st
}

// Status reports the identity's and every output's state, and whether all are healthy.
func (b *Bot) Status() (map[string]serviceStatus, bool) {
	s := b.status
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]serviceStatus{}
	ok := true
	for _, n := range s.order {
		out[n] = *s.state[n]
		ok = ok && s.state[n].Status == "healthy"
	}
	return out, ok
}

// diagServer serves /livez, /readyz and /metrics on diag_addr.
type diagServer struct {
	b    *Bot
	lis  net.Listener
	task runner.Task
}

func newDiagServer(b *Bot, addr string) (*diagServer, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("diag_addr: %w", err)
	}
	d := &diagServer{b: b, lis: lis}
	d.task = runner.HTTP("diag", lis, runner.Diag(d.readyz, b.metrics.reg, false))
	return d, nil
}

func (d *diagServer) Name() string { return "diag" }

// Addr is the address the server listens on.
func (d *diagServer) Addr() string { return d.lis.Addr().String() }

func (d *diagServer) Run(ctx context.Context) error {
	d.b.log.Info("diagnostics listening", "addr", d.Addr())
	return d.task.Run(ctx)
}

// readyz answers 200 when the bot's identity and every output were last renewed or
// written successfully, 503 otherwise, with each one's state as JSON.
func (d *diagServer) readyz(w http.ResponseWriter, _ *http.Request) {
	services, ok := d.b.Status()
	body := struct {
		Status   string                   `json:"status"`
		Services map[string]serviceStatus `json:"services"`
	}{Status: "healthy", Services: services}
	code := http.StatusOK
	if !ok {
		body.Status, code = "unhealthy", http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body)
}

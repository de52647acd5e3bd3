// Package proxy is the Proxy Service's Kubernetes request path: one chain of
// WithX(handler) wrappers that authenticates the client certificate, checks locks, routes
// /v1/kube/<cluster>/… to an enrolled cluster, parses the request the way the API server
// does, authorises it with Keyport's roles, replaces every client credential and
// impersonation header with Keyport's own, audits it and forwards it. Nothing that is
// refused reaches the API server.
package proxy

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apiserver/pkg/endpoints/request"

	"github.com/keyport/keyport/internal/audit"
	"github.com/keyport/keyport/internal/bufpool"
	"github.com/keyport/keyport/internal/clock"
	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/kube"
	"github.com/keyport/keyport/internal/recording"
	"github.com/keyport/keyport/internal/tlsca"
	"github.com/keyport/keyport/internal/types"
)

// KubePrefix is where Kubernetes traffic arrives on the proxy's port.
const KubePrefix = "/v1/kube/"

// Authenticator verifies client certificates (the Auth Service, or a proxy's copy of
// the CAs).
type Authenticator interface {
	VerifyClientCert(cert *x509.Certificate) (*tlsca.Identity, error)
	CheckLock(id *tlsca.Identity) error
}

// Clusters finds enrolled clusters: their registration (labels) and their forwarder.
type Clusters interface {
	KubeCluster(name string) (*types.KubeCluster, bool)
	Forwarder(name string) (*kube.Cluster, bool)
}

// Decision is what authorisation decided for one request.
type Decision struct {
	// User and Groups are impersonated upstream.
	User   string
	Groups []string
	// Allow, when set, filters list items and watch events by namespace and name.
	Allow func(namespace, name string) bool
	// Recording is the recording mode of an exec or attach session: best_effort or
	// strict (the strictest of the identity's roles).
	Recording string
}

// Decider makes access decisions (package access does the work).
type Decider interface {
	Decide(id *tlsca.Identity, cluster *types.KubeCluster, info *request.RequestInfo, requestedUser string, requestedGroups []string) (Decision, error)
}

// KubeConfig configures the Kubernetes request path.
type KubeConfig struct {
	Auth     Authenticator
	Clusters Clusters
	Decider  Decider
	Audit    audit.Emitter
	// Refusals coalesces the audit events of requests refused before a certificate
	// verified (audit.Coalescer). Nil: one is made, flushed by Context.
	Refusals *audit.Coalescer
	Clock    clock.Clock
	Logger   *slog.Logger
	// Metrics, when set, receives the proxy's Prometheus series.
	Metrics prometheus.Registerer
	// Changes reports changes to locks (the cache's Subscribe); each one makes the proxy
	// re-check the locks of every open request and end the locked ones.
	Changes <-chan struct{}
	// Recorder records exec and attach sessions; nil records none.
	Recorder *recording.Recorder
	// Context bounds the proxy's background work.
	Context context.Context
	// ContinueKey seals the continue tokens of filtered lists (continue.go); every proxy
	// of a cluster must have the same one (any length; its SHA-256 is the AES-256 key).
	// Nil: a random key of this handler's own.
	ContinueKey []byte

	sealer *continueSealer
}

// NewKubeHandler builds the chain. The order is the security argument: nothing below
// authentication runs for an unauthenticated caller, nothing below authorisation runs for
// a refused request, and only the forwarder talks to the API server.
func NewKubeHandler(cfg KubeConfig) *KubeHandler {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
	}
	if cfg.Audit == nil {
		cfg.Audit = audit.Discard{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Context == nil {
		cfg.Context = context.Background()
	}
	if cfg.ContinueKey == nil {
		cfg.ContinueKey = make([]byte, 32)
		_, _ = rand.Read(cfg.ContinueKey)
	}
	cfg.sealer = newContinueSealer(cfg.ContinueKey)
	if cfg.Refusals == nil {
		cfg.Refusals = audit.NewCoalescer(audit.CoalescerConfig{Next: cfg.Audit, Clock: cfg.Clock})
		go cfg.Refusals.Run(cfg.Context)
	}
	m := newMetrics(cfg.Metrics)
	tr := newTracker(m.streams)
	if cfg.Changes != nil {
		go tr.run(cfg.Context, cfg.Changes, cfg.Auth)
	}
	h := newForwarder(cfg)
	h = withImpersonation(h)
	h = withRecording(h, cfg)
	h = withAuthorization(h, cfg)
	h = withAudit(h, cfg, m)
	h = withTracking(h, tr)
	h = withRequestInfo(h, cfg)
	h = withRoute(h, cfg)
	h = withLockCheck(h, cfg)
	h = withAuthentication(h, cfg)
	return &KubeHandler{h: h, tr: tr}
}

// KubeHandler is the Kubernetes request path built by NewKubeHandler.
type KubeHandler struct {
	h  http.Handler
	tr *tracker
}

// ServeHTTP implements http.Handler.
func (k *KubeHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) { k.h.ServeHTTP(w, r) }

// EndAll ends every stream in flight (watches, followed logs and upgraded exec, attach
// and port-forward sessions, which http.Server.Close does not reach), and every one that
// starts later, at once: the process is stopping. Their audit events are still emitted
// as their handlers return.
func (k *KubeHandler) EndAll() { k.tr.endAll() }

// requestState is what the chain learns about a request, stage by stage: the identity,
// the cluster, the parsed request, the decision. One context value carries it, so the
// chain adds one context and no request copy per stage (each r.WithContext is a copy).
type requestState struct {
	id       *tlsca.Identity
	cluster  *kube.Cluster
	info     *request.RequestInfo
	decision *Decision
	stream   bool // stays open (isStream): tracked, and copied with small buffers
	// session is set for a session (exec, attach, port-forward) once it starts: after
	// authorisation for exec and attach, which are recorded, before it otherwise.
	session bool
	// recording is the recorded session's recording; summary how it ended.
	recording *recording.Session
	summary   *recording.Summary
	// reason is why Keyport itself refused or failed the request, for its audit event.
	reason string
}

type stateKey struct{}

func stateFrom(ctx context.Context) *requestState {
	v, _ := ctx.Value(stateKey{}).(*requestState)
	return v
}

func identityFrom(ctx context.Context) *tlsca.Identity {
	if st := stateFrom(ctx); st != nil {
		return st.id
	}
	return nil
}
func clusterFrom(ctx context.Context) *kube.Cluster {
	if st := stateFrom(ctx); st != nil {
		return st.cluster
	}
	return nil
}
func infoFrom(ctx context.Context) *request.RequestInfo {
	if st := stateFrom(ctx); st != nil {
		return st.info
	}
	return nil
}
func decisionFrom(ctx context.Context) *Decision {
	if st := stateFrom(ctx); st != nil {
		return st.decision
	}
	return nil
}

// withAuthentication verifies the client certificate in the handler (the TLS layer only
// requests one), so that an expired or foreign certificate gets a 401 that says so.
func withAuthentication(next http.Handler, cfg KubeConfig) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			refuse(cfg, w, r, "", http.StatusUnauthorized, "no client certificate: use a kubeconfig from tbot, tsh kube login or tctl auth sign")
			return
		}
		id, err := cfg.Auth.VerifyClientCert(r.TLS.PeerCertificates[0])
		if err != nil {
			refuse(cfg, w, r, "", http.StatusUnauthorized, err.Error())
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), stateKey{}, &requestState{id: id}))
		if id.SystemRole != "" {
			refuse(cfg, w, r, "", http.StatusForbidden, "host certificates cannot access Kubernetes")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func withLockCheck(next http.Handler, cfg KubeConfig) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := cfg.Auth.CheckLock(identityFrom(r.Context())); err != nil {
			refuse(cfg, w, r, "", http.StatusForbidden, err.Error())
			return
		}
		next.ServeHTTP(w, r)
	})
}

// withRoute picks the cluster from /v1/kube/<cluster>/… and rewrites the path to the
// API server's own. Paths that are not canonical are refused rather than cleaned: a
// proxy and an API server that clean differently are how path tricks get through.
func withRoute(next http.Handler, cfg KubeConfig) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, rest, err := splitKubePath(r.URL.Path, r.URL.RawPath)
		if err != nil {
			refuse(cfg, w, r, "", http.StatusBadRequest, err.Error())
			return
		}
		id := identityFrom(r.Context())
		if id.KubeCluster != "" && id.KubeCluster != name {
			refuse(cfg, w, r, name, http.StatusForbidden, "this certificate is for kube cluster \""+id.KubeCluster+"\", not \""+name+"\"")
			return
		}
		fw, ok := cfg.Clusters.Forwarder(name)
		if !ok {
			if _, registered := cfg.Clusters.KubeCluster(name); registered {
				// Heartbeats say it exists, but no Kubernetes Service here or tunnel
				// to this proxy serves it right now.
				refuse(cfg, w, r, name, http.StatusServiceUnavailable, "kube cluster \""+name+"\" is registered, but its Kubernetes Service is not connected to this proxy; try again shortly")
				return
			}
			refuse(cfg, w, r, name, http.StatusNotFound, "kube cluster \""+name+"\" is not registered with this Keyport cluster (see tctl kube ls)")
			return
		}
		stateFrom(r.Context()).cluster = fw
		// The API server's path on a copy of the URL; the rest of the request is shared
		// (ReverseProxy builds the outgoing request from it).
		u := *r.URL
		u.Path, u.RawPath = rest, ""
		r2 := r.WithContext(r.Context())
		r2.URL = &u
		next.ServeHTTP(w, r2)
	})
}

// splitKubePath returns the cluster name and the API path of /v1/kube/<cluster>/<rest>.
func splitKubePath(path, rawPath string) (cluster, rest string, err error) {
	if rawPath != "" && rawPath != path {
		// Escaped characters (%2F, %2e) in the path: refuse; API paths never need them.
		return "", "", errs.BadParameterf("escaped characters are not allowed in Kubernetes API paths")
	}
	after, ok := strings.CutPrefix(path, KubePrefix)
	if !ok {
		return "", "", errs.NotFoundf("not a Kubernetes path")
	}
	cluster, rest, _ = strings.Cut(after, "/")
	rest = "/" + rest
	if cluster == "" {
		return "", "", errs.BadParameterf("no kube cluster in the path")
	}
	for _, seg := range strings.Split(rest, "/")[1:] {
		if seg == "." || seg == ".." {
			return "", "", errs.BadParameterf("relative path segments are not allowed")
		}
	}
	if strings.Contains(rest, "//") {
		return "", "", errs.BadParameterf("empty path segments are not allowed")
	}
	if cluster == "." || cluster == ".." {
		return "", "", errs.BadParameterf("relative path segments are not allowed")
	}
	return cluster, rest, nil
}

var requestInfoFactory = &request.RequestInfoFactory{
	APIPrefixes:          sets.NewString("api", "apis"),
	GrouplessAPIPrefixes: sets.NewString("api"),
}

func withRequestInfo(next http.Handler, cfg KubeConfig) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info, err := requestInfoFactory.NewRequestInfo(r)
		if err != nil {
			refuse(cfg, w, r, clusterFrom(r.Context()).Name, http.StatusBadRequest, "cannot parse the Kubernetes request: "+err.Error())
			return
		}
		stateFrom(r.Context()).info = info
		next.ServeHTTP(w, r)
	})
}

// Impersonation headers as the API server reads them.
const (
	hdrImpersonateUser  = "Impersonate-User"
	hdrImpersonateGroup = "Impersonate-Group"
	hdrImpersonateUID   = "Impersonate-Uid"
	hdrImpersonateExtra = "Impersonate-Extra-"
	hdrAuthorization    = "Authorization"
)

// clientImpersonation reads what the client asked to impersonate, refusing what Keyport
// never passes on. Header names are canonicalised by net/http, so case variants land
// in the same key.
func clientImpersonation(h http.Header) (user string, groups []string, err error) {
	for k := range h {
		ck := textproto.CanonicalMIMEHeaderKey(k)
		if ck == hdrImpersonateUID {
			return "", nil, errs.AccessDeniedf("Impersonate-Uid is not allowed through Keyport")
		}
		if strings.HasPrefix(ck, hdrImpersonateExtra) {
			return "", nil, errs.AccessDeniedf("Impersonate-Extra-* headers are not allowed through Keyport")
		}
	}
	users := h.Values(hdrImpersonateUser)
	if len(users) > 1 {
		return "", nil, errs.AccessDeniedf("more than one Impersonate-User header")
	}
	if len(users) == 1 {
		user = users[0]
	}
	groups = h.Values(hdrImpersonateGroup)
	if len(groups) > 0 && user == "" {
		return "", nil, errs.AccessDeniedf("Impersonate-Group without Impersonate-User")
	}
	return user, groups, nil
}

func withAuthorization(next http.Handler, cfg KubeConfig) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		fw := clusterFrom(ctx)
		kc, ok := cfg.Clusters.KubeCluster(fw.Name)
		if !ok {
			kc = types.NewKubeCluster(fw.Name, "", fw.Labels)
		}
		st := stateFrom(ctx)
		user, groups, err := clientImpersonation(r.Header)
		if err != nil {
			st.reason = err.Error()
			writeStatus(w, http.StatusForbidden, st.reason)
			return
		}
		d, err := cfg.Decider.Decide(st.id, kc, st.info, user, groups)
		if err != nil {
			st.reason = err.Error()
			writeError(w, err)
			return
		}
		st.decision = &d
		if d.Allow != nil {
			if err := openContinue(r, st, cfg.sealer); err != nil {
				st.reason = err.Error()
				writeStatus(w, http.StatusBadRequest, st.reason)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// withImpersonation removes every credential and impersonation header the client sent
// and sets Keyport's own, from the decision.
func withImpersonation(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := decisionFrom(r.Context())
		for k := range r.Header {
			ck := textproto.CanonicalMIMEHeaderKey(k)
			if ck == hdrAuthorization || strings.HasPrefix(ck, "Impersonate-") {
				r.Header.Del(k)
			}
		}
		r.Header.Set(hdrImpersonateUser, d.User)
		for _, g := range d.Groups {
			r.Header.Add(hdrImpersonateGroup, g)
		}
		next.ServeHTTP(w, r)
	})
}

// statusRecorder remembers the response code for the audit event.
// statusClientClosedRequest is what the audit log and the metrics record for a request
// that ended before any response was written (nginx's 499; no response carries it).
const statusClientClosedRequest = 499

type statusRecorder struct {
	http.ResponseWriter
	code     int
	hijacked bool
}

// Hijack records that the connection was switched: ReverseProxy then writes the 101 on
// the raw connection, past this recorder.
func (s *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(s.ResponseWriter).Hijack()
	if err == nil {
		s.hijacked = true
	}
	return c, brw, err
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// withTracking registers the requests that stay open — watches, exec, attach and
// port-forward sessions, followed logs — so that a lock made while one runs, or a
// shutdown, ends it. Other requests were authorised when they started and end on their
// own within moments (a shutdown closes their connections); tracking them too would put
// a shared lock and a context on every GET.
func withTracking(next http.Handler, tr *tracker) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := stateFrom(r.Context())
		st.stream = isStream(st.info, r)
		if !st.stream {
			next.ServeHTTP(w, r)
			return
		}
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		done := tr.add(st.id, cancel)
		defer done()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// isSession reports exec, attach and port-forward: upgraded connections, audited as
// sessions with a start and an end event.
func isSession(info *request.RequestInfo) bool {
	return info.Subresource == "exec" || info.Subresource == "attach" || info.Subresource == "portforward"
}

// isRecorded reports exec and attach: sessions with a terminal's streams, recorded.
// (Port-forward carries the pod's own protocol, not a terminal; it is audited only.)
func isRecorded(info *request.RequestInfo) bool {
	return info.Subresource == "exec" || info.Subresource == "attach"
}

// isStream reports requests that stay open: watches, sessions, followed logs.
func isStream(info *request.RequestInfo, r *http.Request) bool {
	switch {
	case info.Verb == "watch":
		return true
	case isSession(info):
		return true
	case info.Subresource == "log" && r.URL.Query().Get("follow") == "true":
		return true
	}
	return false
}

func withAudit(next http.Handler, cfg KubeConfig, m *metrics) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := cfg.Clock.Now()
		rec := &statusRecorder{ResponseWriter: w}
		st := stateFrom(r.Context())
		if isSession(st.info) && !isRecorded(st.info) {
			st.session = true
			emitSessionStart(cfg, r, "")
		}
		// Deferred: ReverseProxy aborts a stream cut mid-copy with a panic
		// (http.ErrAbortHandler), and that request must still be counted and audited.
		defer emitRequestEnd(cfg, m, r, rec, start)
		next.ServeHTTP(rec, r)
	})
}

// refuse answers a request that the chain refuses before its audit stage, and records
// it: a kube.request event with the status, the reason, the client's address, the path,
// the cluster when the path named one and the identity once its certificate verified.
// Refusals of callers with no verified identity go through the coalescer: anyone can
// send those, as fast as they like.
func refuse(cfg KubeConfig, w http.ResponseWriter, r *http.Request, cluster string, code int, reason string) {
	writeStatus(w, code, reason)
	emitRefusal(cfg, r, cluster, code, reason)
}

//go:noinline
func emitRefusal(cfg KubeConfig, r *http.Request, cluster string, code int, reason string) {
	fields := map[string]any{"status": code, "reason": reason, "addr": r.RemoteAddr, "path": r.URL.Path}
	if cluster != "" {
		fields["cluster"] = cluster
	}
	e := audit.Event{Type: audit.KubeRequest, Message: reason, Fields: fields}
	st := stateFrom(r.Context())
	if st == nil || st.id == nil {
		cfg.Refusals.Emit(r.Context(), r.RemoteAddr, e)
		return
	}
	id := st.id
	e.User, e.Roles, e.BotName, e.BotInstanceID = id.Username, id.Roles, id.BotName, id.BotInstanceID
	if info := st.info; info != nil {
		fields["verb"], fields["api_group"], fields["resource"] = info.Verb, info.APIGroup, info.Resource
		fields["namespace"], fields["name"] = info.Namespace, info.Name
	}
	cfg.Audit.Emit(r.Context(), e)
}

// The audit events are built in functions of their own, not in withAudit's closure: an
// audit.Event is large, and a frame that holds it for the whole request makes every
// request's goroutine grow its stack (a copy) before the forwarder is reached.

//go:noinline
func emitSessionStart(cfg KubeConfig, r *http.Request, recordingFailure string) {
	ctx := r.Context()
	st := stateFrom(ctx)
	id, info, fw := st.id, st.info, st.cluster
	fields := map[string]any{"cluster": fw.Name, "namespace": info.Namespace, "name": info.Name, "subresource": info.Subresource}
	if rec := st.recording; rec != nil {
		fields["session_id"], fields["recording_mode"] = rec.Meta.SessionID, rec.Meta.Mode
		fields["container"], fields["command"], fields["tty"] = rec.Meta.Container, rec.Meta.Command, rec.Meta.TTY
	} else if recordingFailure != "" {
		fields["recording_mode"], fields["recording"] = st.decision.Recording, "unavailable: "+recordingFailure
	}
	cfg.Audit.Emit(ctx, audit.Event{
		Type: audit.SessionStart, Success: true,
		User: id.Username, Roles: id.Roles, BotName: id.BotName, BotInstanceID: id.BotInstanceID,
		Fields: fields,
	})
}

// emitRequestEnd counts the request and records its kube.request event, or the
// session.end event of an exec, attach or port-forward session.
//
//go:noinline
func emitRequestEnd(cfg KubeConfig, m *metrics, r *http.Request, rec *statusRecorder, start time.Time) {
	ctx := r.Context()
	st := stateFrom(ctx)
	id, info, fw := st.id, st.info, st.cluster
	typ := audit.KubeRequest
	if st.session {
		typ = audit.SessionEnd
	}
	switch {
	case rec.code != 0:
	case rec.hijacked:
		// An upgraded connection: ReverseProxy wrote 101 on the raw conn.
		rec.code = http.StatusSwitchingProtocols
	default:
		// No response at all: the client went away, or a lock or shutdown ended
		// the request, before the cluster answered.
		rec.code = statusClientClosedRequest
	}
	elapsed := cfg.Clock.Now().Sub(start)
	m.observe(fw.Name, info.Verb, rec.code, elapsed.Seconds())
	fields := map[string]any{
		"cluster": fw.Name, "verb": info.Verb, "api_group": info.APIGroup, "resource": info.Resource,
		"subresource": info.Subresource, "namespace": info.Namespace, "name": info.Name, "path": r.URL.Path,
		"status": rec.code, "latency_ms": float64(elapsed.Microseconds()) / 1000, "addr": r.RemoteAddr,
	}
	reason := st.reason
	if reason != "" {
		fields["reason"] = reason
	}
	if sum := st.summary; sum != nil {
		fields["session_id"], fields["exit_code"] = sum.SessionID, sum.ExitCode
		fields["bytes_in"], fields["bytes_out"] = sum.BytesIn, sum.BytesOut
		if sum.Failure != "" {
			fields["failure"] = sum.Failure
		}
		if sum.Gap != nil {
			fields["recording_gap"] = sum.Gap.Error()
		}
	}
	cfg.Audit.Emit(ctx, audit.Event{
		Type: typ, Success: rec.code < 400, Message: reason,
		User: id.Username, Roles: id.Roles, BotName: id.BotName, BotInstanceID: id.BotInstanceID,
		Fields: fields,
	})
}

// newForwarder sends the request to the cluster's API server with the Kubernetes
// Service's credentials.
func newForwarder(cfg KubeConfig) http.Handler {
	rp, streams := newReverseProxy(cfg, copyBuffers), newReverseProxy(cfg, streamBuffers)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if st := stateFrom(r.Context()); st != nil && st.stream {
			streams.ServeHTTP(w, r)
			return
		}
		rp.ServeHTTP(w, r)
	})
}

func newReverseProxy(cfg KubeConfig, buffers httputil.BufferPool) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			fw := clusterFrom(pr.In.Context())
			pr.SetURL(fw.Server)
			pr.Out.URL.Path = singleJoin(fw.Server.Path, pr.In.URL.Path)
			pr.Out.URL.RawPath = ""
			pr.Out.Host = fw.Server.Host
			// ReverseProxy's SetXForwarded is not called: the API server needs none of it.
			if d := decisionFrom(pr.In.Context()); d != nil && d.Allow != nil {
				// Filtering reads JSON: protobuf is asked for as JSON, tables stay tables.
				pr.Out.Header.Set("Accept", acceptJSON(pr.In.Header.Get("Accept")))
			}
		},
		Transport:  clusterTransport{},
		BufferPool: buffers,
		// 0, not -1: ReverseProxy flushes responses of unknown length (watches,
		// followed logs) at every write anyway, and leaving the rest to the server's
		// buffer sends a small GET's headers and body in one write instead of three.
		FlushInterval:  0,
		ModifyResponse: func(resp *http.Response) error { return filterResponse(resp, cfg.sealer) },
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				return
			}
			st := stateFrom(r.Context())
			cfg.Logger.Warn("kube cluster unreachable", "cluster", st.cluster.Name, "error", err)
			st.reason = "kube cluster \"" + st.cluster.Name + "\" is unreachable: " + err.Error()
			writeStatus(w, http.StatusBadGateway, st.reason)
		},
	}
}

// copyBuffers are ReverseProxy's response copy buffers. Without a pool it allocates
// 32 KiB for every request (70% of the bytes the chain allocates on a small GET).
var copyBuffers = bufpool.New(32 << 10)

// streamBuffers serve watches and followed logs, which hold their buffer for as long as
// they stay open while moving little: 4 KiB instead of 32 KiB is most of an idle
// watch's memory in the proxy.
var streamBuffers = bufpool.New(4 << 10)

// clusterTransport sends each request over its cluster's pooled transport.
type clusterTransport struct{}

func (clusterTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	st := stateFrom(r.Context())
	if r.Header.Get("Upgrade") != "" {
		resp, err := st.cluster.UpgradeTransport.RoundTrip(r)
		if err == nil && resp.StatusCode == http.StatusSwitchingProtocols && st.recording != nil {
			if body, ok := resp.Body.(io.ReadWriteCloser); ok {
				resp.Body = st.recording.Wrap(body, resp.Header)
			}
		}
		return resp, err
	}
	c := st.cluster
	return c.Transport.RoundTrip(r)
}

func singleJoin(a, b string) string {
	return strings.TrimSuffix(a, "/") + b
}

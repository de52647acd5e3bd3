package proxy

import (
	"net/http"
	"slices"

	"github.com/keyport/keyport/internal/recording"
	"github.com/keyport/keyport/internal/types"
)

// withRecording starts the recording of an exec or attach session once it is
// authorised, emits its session.start (naming the recording), and finishes the
// recording when the session ends. A session whose roles say record_session.kubernetes:
// strict does not start when its recording cannot be written: it gets a 503 and nothing
// reaches the API server. In best_effort mode it starts unrecorded, and session.start
// says why.
func withRecording(next http.Handler, cfg KubeConfig) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := stateFrom(r.Context())
		if !isRecorded(st.info) {
			next.ServeHTTP(w, r)
			return
		}
		mode := st.decision.Recording
		var sess *recording.Session
		var failure string
		if cfg.Recorder == nil {
			failure = "this proxy records no sessions"
		} else {
			var err error
			sess, err = cfg.Recorder.Start(r.Context(), sessionMeta(st, r, mode))
			if err != nil {
				failure = err.Error()
			}
		}
		if sess == nil && mode == types.RecordStrict {
			st.reason = "session recording is unavailable, and a role requires it (record_session.kubernetes: strict): " + failure
			writeStatus(w, http.StatusServiceUnavailable, st.reason)
			return
		}
		if sess == nil && cfg.Recorder != nil {
			cfg.Logger.Warn("a session starts unrecorded (record_session.kubernetes: best_effort)", "user", st.id.Username, "error", failure)
		}
		st.recording, st.session = sess, true
		emitSessionStart(cfg, r, failure)
		if sess != nil {
			defer func() {
				sum := sess.Finish()
				st.summary = &sum
			}()
		}
		next.ServeHTTP(w, r)
	})
}

// sessionMeta describes the session for its recording.
func sessionMeta(st *requestState, r *http.Request, mode string) recording.Meta {
	q := r.URL.Query()
	id, info := st.id, st.info
	return recording.Meta{
		Kind: info.Subresource, User: id.Username, Roles: slices.Clone(id.Roles), BotName: id.BotName, BotInstanceID: id.BotInstanceID,
		Cluster: st.cluster.Name, Namespace: info.Namespace, Pod: info.Name, Container: q.Get("container"),
		Command: q["command"], TTY: queryBool(q.Get("tty")), Stdin: queryBool(q.Get("stdin")), Mode: mode,
	}
}

func queryBool(v string) bool { return v == "true" || v == "1" }

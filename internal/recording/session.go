package recording

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/keyport/keyport/internal/audit"
	"github.com/keyport/keyport/internal/clock"
)

// Info is what the index keeps of one recording: the session, how it ended and where
// its recording is.
type Info struct {
	Meta
	End      time.Time     `json:"end"`
	Duration time.Duration `json:"duration"`
	// ExitCode is the command's exit code; -1 when the session ended without one.
	ExitCode int `json:"exit_code"`
	// Failure is the API server's message when the session failed without an exit code.
	Failure  string `json:"failure,omitempty"`
	BytesIn  int64  `json:"bytes_in"`
	BytesOut int64  `json:"bytes_out"`
	// Status: complete; gap (the recording misses part of the session, Error says why);
	// incomplete (the proxy stopped mid-session: the recording ends at its last event).
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
	// URL is where the store keeps the recording.
	URL  string `json:"url,omitempty"`
	Size int64  `json:"size"`
}

// Recording statuses.
const (
	StatusComplete   = "complete"
	StatusGap        = "gap"
	StatusIncomplete = "incomplete"
)

// Store keeps finished recordings.
type Store interface {
	// Upload stores the recording of session id, size bytes read from r, and returns
	// its URL.
	Upload(ctx context.Context, id string, r io.Reader, size int64) (string, error)
	// Open returns the recording of session id.
	Open(ctx context.Context, id string) (io.ReadCloser, error)
	// Check reports whether recordings can be stored now.
	Check(ctx context.Context) error
}

// ErrNotFound is returned by Store.Open for a session without a recording.
var ErrNotFound = errors.New("no recording of this session")

// RecorderConfig configures a Recorder.
type RecorderConfig struct {
	// Dir is where sessions are written while they run (Dir/pending); the local store,
	// when it is the store, keeps finished ones in Dir itself.
	Dir   string
	Store Store
	// Index records a session's Info (the Auth Service's backend) once its recording
	// is stored.
	Index  func(ctx context.Context, info Info) error
	Audit  audit.Emitter
	Clock  clock.Clock
	Logger *slog.Logger
	Rand   io.Reader
	// Node is this proxy's node name, written into every recording.
	Node string
	// Context bounds uploads and the store checks.
	Context context.Context
	// CheckInterval is how often the store is checked while sessions run (default 2 s):
	// a strict session ends when it fails, a best_effort one gets a marker.
	CheckInterval time.Duration
}

// Recorder records the proxy's sessions and uploads them when they end.
type Recorder struct {
	cfg     RecorderConfig
	pending string
	wg      sync.WaitGroup

	mu   sync.Mutex
	live map[string]*Session
	// uploading holds the sessions being uploaded; retry is set when an upload failed.
	uploading map[string]bool
	retry     bool
	// stopping: Wait was called; no new upload starts.
	stopping bool
}

// NewRecorder makes Dir/pending.
func NewRecorder(cfg RecorderConfig) (*Recorder, error) {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Audit == nil {
		cfg.Audit = audit.Discard{}
	}
	if cfg.Context == nil {
		cfg.Context = context.Background()
	}
	if cfg.CheckInterval <= 0 {
		cfg.CheckInterval = 2 * time.Second
	}
	r := &Recorder{cfg: cfg, pending: filepath.Join(cfg.Dir, "pending"), live: map[string]*Session{}, uploading: map[string]bool{}}
	if err := os.MkdirAll(r.pending, 0o700); err != nil {
		return nil, fmt.Errorf("session recordings: %w", err)
	}
	if cfg.Store != nil {
		go r.watchStore()
	}
	go r.syncLoop()
	return r, nil
}

// syncInterval is how often the recordings of live sessions are flushed to the disk
// (fsync): every event is written to the file when it is forwarded, so a killed process
// loses nothing, and a machine that loses power loses at most the last second.
const syncInterval = time.Second

func (r *Recorder) syncLoop() {
	ctx := r.cfg.Context
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.cfg.Clock.After(syncInterval):
		}
		r.mu.Lock()
		live := make([]*Session, 0, len(r.live))
		for _, s := range r.live {
			live = append(live, s)
		}
		r.mu.Unlock()
		for _, s := range live {
			s.sync()
		}
	}
}

// sync flushes the recording to the disk if it grew since the last time.
func (s *Session) sync() {
	n, _ := s.w.Progress()
	s.mu.Lock()
	if n == s.synced || s.ended {
		s.mu.Unlock()
		return
	}
	s.synced = n
	s.mu.Unlock()
	s.fileMu.Lock()
	defer s.fileMu.Unlock()
	if s.closed {
		return
	}
	if err := s.f.Sync(); err != nil {
		s.recordGap(fmt.Errorf("flushing the recording to disk: %w", err))
	}
}

// watchStore checks the store while sessions run. A failure ends the strict sessions
// (their recordings could not be stored) and marks a gap in the best_effort ones, which
// are kept on the proxy's disk and stored once the store is back.
func (r *Recorder) watchStore() {
	ctx := r.cfg.Context
	var down error
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.cfg.Clock.After(r.cfg.CheckInterval):
		}
		r.mu.Lock()
		live := make([]*Session, 0, len(r.live))
		for _, s := range r.live {
			live = append(live, s)
		}
		retry := r.retry
		r.mu.Unlock()
		if len(live) == 0 && !retry {
			down = nil
			continue
		}
		err := r.cfg.Store.Check(ctx)
		if ctx.Err() != nil {
			return
		}
		switch {
		case err != nil:
			for _, s := range live {
				s.storeDown(err)
			}
			if down == nil {
				r.cfg.Logger.Warn("the session recording store is unavailable", "error", err)
			}
		case down != nil:
			for _, s := range live {
				s.storeUp()
			}
			r.cfg.Logger.Info("the session recording store is available again")
		}
		if err == nil && retry {
			r.mu.Lock()
			r.retry = false
			r.mu.Unlock()
			r.goTracked(r.UploadPending)
		}
		down = err
	}
}

// Session is one recorded exec or attach session.
type Session struct {
	rec  *Recorder
	Meta Meta
	path string
	f    *os.File
	w    *Writer
	tap  Tap

	mu       sync.Mutex
	bytesIn  int64
	bytesOut int64
	status   []byte
	resize   []byte
	gap      error
	// fail, when set, ends a strict session: the next read from the server sends the
	// client the notice instead.
	fail  error
	body  io.ReadWriteCloser
	ended bool
	// wrapped: the API server switched protocols, and the session ran.
	wrapped bool
	// storeErr is the store's failure while it lasts.
	storeErr error
	// finished is closed when the session ends.
	finished chan struct{}
	// synced is how much of the file was flushed to the disk.
	synced int64
	// fileMu orders the periodic fsync and the file's close; closed says it happened.
	fileMu sync.Mutex
	closed bool
}

// Start opens the recording of a new session. In strict mode an error means the session
// must not start; in best_effort mode the caller may go on without a recording.
func (r *Recorder) Start(ctx context.Context, m Meta) (*Session, error) {
	id, err := uuid.NewRandomFromReader(r.cfg.Rand)
	if err != nil {
		return nil, err
	}
	m.SessionID = id.String()
	m.Start = r.cfg.Clock.Now().UTC()
	m.Proxy = r.cfg.Node
	if m.Mode == "" {
		m.Mode = ModeBestEffort
	}
	if m.Mode == ModeStrict && r.cfg.Store != nil {
		if err := r.cfg.Store.Check(ctx); err != nil {
			return nil, fmt.Errorf("the recording store is unavailable: %w", err)
		}
	}
	path := filepath.Join(r.pending, m.SessionID+".cast")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("creating the recording: %w", err)
	}
	w, err := NewWriter(f, Header{Timestamp: m.Start.Unix(), Keyport: &m}, r.cfg.Clock)
	if err != nil {
		_ = f.Close()
		_ = os.Remove(path)
		return nil, err
	}
	s := &Session{rec: r, Meta: m, path: path, f: f, w: w, finished: make(chan struct{})}
	r.mu.Lock()
	r.live[m.SessionID] = s
	r.mu.Unlock()
	return s, nil
}

// Wrap returns the upgraded connection to the API server (an upgrade response's body)
// with the session's tap on both directions, or body itself when the protocol is one the
// tap cannot read (then the gap is recorded, and a strict session ends).
func (s *Session) Wrap(body io.ReadWriteCloser, resp http.Header) io.ReadWriteCloser {
	tap, err := NewTap(resp, s.sink)
	s.mu.Lock()
	s.body = body
	s.wrapped = true
	s.mu.Unlock()
	if err != nil {
		s.recordGap(err)
		return body
	}
	s.tap = tap
	return &tappedConn{s: s, body: body}
}

// sink takes each stream's bytes from the tap.
func (s *Session) sink(st Stream, p []byte) {
	s.mu.Lock()
	switch st {
	case Stdin:
		s.bytesIn += int64(len(p))
	case Stdout, Stderr:
		s.bytesOut += int64(len(p))
	case Error:
		if len(s.status)+len(p) <= 64<<10 {
			s.status = append(s.status, p...)
		}
		s.mu.Unlock()
		return
	case Resize:
		s.resize = append(s.resize, p...)
		sizes := s.takeResizes()
		s.mu.Unlock()
		for _, sz := range sizes {
			s.check(s.w.Resize(int(sz.Width), int(sz.Height)))
		}
		return
	}
	s.mu.Unlock()
	s.check(s.w.Data(st, p))
}

type terminalSize struct{ Width, Height uint16 }

// takeResizes decodes the complete JSON sizes in s.resize; s.mu is held.
func (s *Session) takeResizes() []terminalSize {
	var out []terminalSize
	dec := json.NewDecoder(bytes.NewReader(s.resize))
	for {
		var sz terminalSize
		if err := dec.Decode(&sz); err != nil {
			break
		}
		out = append(out, sz)
		s.resize = s.resize[dec.InputOffset():]
		dec = json.NewDecoder(bytes.NewReader(s.resize))
	}
	if len(s.resize) > 4096 {
		s.resize = nil // not JSON sizes: drop, do not grow
	}
	return out
}

// check handles a failed write to the recording.
func (s *Session) check(err error) {
	if err != nil {
		s.recordGap(err)
	}
}

// recordGap notes that the recording misses part of the session; a strict session ends.
func (s *Session) recordGap(err error) {
	s.mu.Lock()
	first := s.gap == nil
	if first {
		s.gap = err
	}
	strict := s.Meta.Mode == ModeStrict
	s.mu.Unlock()
	if !first {
		return
	}
	_ = s.w.Marker("gap: " + err.Error())
	s.rec.cfg.Logger.Warn("session recording has a gap", "session", s.Meta.SessionID, "mode", s.Meta.Mode, "error", err)
	if strict {
		s.End(fmt.Errorf("keyport ended this session: its recording could not be written (strict recording mode): %w", err))
	}
}

// Live returns the metadata of the sessions this recorder is recording now.
func (r *Recorder) Live() []Meta {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Meta, 0, len(r.live))
	for _, s := range r.live {
		out = append(out, s.Meta)
	}
	return out
}

// maxFollow is the most one Follow returns.
const maxFollow = 1 << 20

// Follow returns the recording of live session id from offset on, as it is written: it
// waits up to wait for new bytes. ended reports that the session is over (or not on
// this proxy) and nothing more will come.
func (r *Recorder) Follow(ctx context.Context, id string, offset int64, wait time.Duration) (meta Meta, data []byte, ended bool, err error) {
	r.mu.Lock()
	s := r.live[id]
	r.mu.Unlock()
	if s == nil {
		return Meta{}, nil, true, ErrNotFound
	}
	deadline := r.cfg.Clock.After(wait)
	for {
		n, changed := s.w.Progress()
		if offset < n {
			data, err := readAt(s.path, offset, min(n-offset, maxFollow))
			if err != nil {
				select {
				case <-s.finished: // uploaded and removed meanwhile
					return s.Meta, nil, true, nil
				default:
				}
			}
			return s.Meta, data, false, err
		}
		select {
		case <-s.finished:
			if n, _ := s.w.Progress(); offset < n {
				continue
			}
			return s.Meta, nil, true, nil
		default:
		}
		select {
		case <-changed:
		case <-deadline:
			return s.Meta, nil, false, nil
		case <-s.finished:
		case <-ctx.Done():
			return s.Meta, nil, false, ctx.Err()
		}
	}
}

func readAt(path string, off, n int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, n)
	k, err := f.ReadAt(b, off)
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return b[:k], err
}

// storeDown: the store failed a check while the session ran.
func (s *Session) storeDown(err error) {
	s.mu.Lock()
	already := s.storeErr != nil
	s.storeErr = err
	strict := s.Meta.Mode == ModeStrict
	s.mu.Unlock()
	if already {
		return
	}
	if strict {
		s.recordGap(fmt.Errorf("the session recording store is unavailable: %w", err))
		return
	}
	_ = s.w.Marker("gap: the session recording store is unavailable (the recording is kept on the proxy until it can be stored): " + err.Error())
}

// storeUp: the store passed a check after failing one.
func (s *Session) storeUp() {
	s.mu.Lock()
	was := s.storeErr
	s.storeErr = nil
	s.mu.Unlock()
	if was != nil {
		_ = s.w.Marker("the session recording store is available again")
	}
}

// End ends a strict session now with cause, which the client is shown.
func (s *Session) End(cause error) {
	s.mu.Lock()
	if s.fail != nil {
		s.mu.Unlock()
		return
	}
	s.fail = cause
	body := s.body
	s.mu.Unlock()
	_ = s.w.Marker("ended by keyport: " + cause.Error())
	if body != nil {
		// The server's read returns, and the client gets the notice from it.
		_ = body.Close()
	}
}

// tappedConn is the upgraded connection with the tap on it.
type tappedConn struct {
	s    *Session
	body io.ReadWriteCloser
	// notice is what is left to send the client of a strict session's end; ended is
	// set once it is sent: every later read is EOF.
	notice []byte
	ended  bool
}

func (c *tappedConn) Write(p []byte) (n int, err error) {
	c.s.mu.Lock()
	fail := c.s.fail
	c.s.mu.Unlock()
	if fail != nil {
		// The session is ending: the client's bytes (a heartbeat, say) go nowhere, and
		// must not fail the copy before the notice has reached the client.
		return len(p), nil
	}
	if terr := c.s.tap.Client(p); terr != nil {
		c.s.recordGap(fmt.Errorf("reading the client's stream: %w", terr))
	}
	n, err = c.body.Write(p)
	if err != nil {
		c.s.mu.Lock()
		fail = c.s.fail
		c.s.mu.Unlock()
		if fail != nil {
			// End closed the connection between the check above and this write: the
			// client's copy must not end (and the connection with it) before the
			// server's side has sent the client the notice.
			return len(p), nil
		}
	}
	return n, err
}

func (c *tappedConn) Read(p []byte) (int, error) {
	if c.ended {
		return 0, io.EOF
	}
	if len(c.notice) > 0 {
		n := copy(p, c.notice)
		c.notice = c.notice[n:]
		if len(c.notice) == 0 {
			c.ended = true
		}
		return n, nil
	}
	c.s.mu.Lock()
	fail := c.s.fail
	c.s.mu.Unlock()
	if fail != nil && c.s.tap.ServerBoundary() == 0 {
		return c.startNotice(p, fail)
	}
	n, err := c.body.Read(p)
	if n > 0 {
		if terr := c.s.tap.Server(p[:n]); terr != nil {
			c.s.recordGap(fmt.Errorf("reading the server's stream: %w", terr))
		}
	}
	if err != nil {
		c.s.mu.Lock()
		fail = c.s.fail
		c.s.mu.Unlock()
		if fail != nil && n == 0 && c.s.tap.ServerBoundary() == 0 {
			return c.startNotice(p, fail)
		}
	}
	return n, err
}

func (c *tappedConn) startNotice(p []byte, fail error) (int, error) {
	c.notice = c.s.tap.Notice(fail.Error())
	if len(c.notice) == 0 {
		c.ended = true
		return 0, io.EOF
	}
	return c.Read(p)
}

func (c *tappedConn) Close() error { return c.body.Close() }

// Summary is how a session ended.
type Summary struct {
	SessionID string
	Duration  time.Duration
	ExitCode  int
	// Failure is the API server's message for a failure without an exit code.
	Failure  string
	BytesIn  int64
	BytesOut int64
	// Gap is why the recording misses part of the session, if it does.
	Gap error
}

// Finish closes the recording when the session's connection has ended, and uploads it
// in the background. It returns what session.end reports.
func (s *Session) Finish() Summary {
	r := s.rec
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return Summary{SessionID: s.Meta.SessionID}
	}
	s.ended = true
	status, gap, wrapped := s.status, s.gap, s.wrapped
	sum := Summary{SessionID: s.Meta.SessionID, BytesIn: s.bytesIn, BytesOut: s.bytesOut, Gap: gap}
	s.mu.Unlock()
	// Observers see the whole recording, end markers included, before it leaves.
	defer func() {
		close(s.finished)
		r.mu.Lock()
		delete(r.live, s.Meta.SessionID)
		r.mu.Unlock()
	}()
	if !wrapped {
		// The API server refused the session (or never answered): nothing ran, and the
		// request's kube audit event says why.
		s.fileMu.Lock()
		_ = s.f.Close()
		s.closed = true
		s.fileMu.Unlock()
		_ = os.Remove(s.path)
		return Summary{ExitCode: -1}
	}
	sum.Duration = r.cfg.Clock.Now().Sub(s.Meta.Start)
	sum.ExitCode, sum.Failure = exitStatus(status)
	switch {
	case sum.ExitCode >= 0:
		_ = s.w.Marker("exit " + strconv.Itoa(sum.ExitCode))
	case sum.Failure != "":
		_ = s.w.Marker("error: " + sum.Failure)
	}
	_ = s.w.Flush()
	s.fileMu.Lock()
	_ = s.f.Sync()
	err := s.f.Close()
	s.closed = true
	s.fileMu.Unlock()
	if err != nil && gap == nil {
		sum.Gap = fmt.Errorf("closing the recording: %w", err)
	}
	info := Info{Meta: s.Meta, End: s.Meta.Start.Add(sum.Duration), Duration: sum.Duration, ExitCode: sum.ExitCode, Failure: sum.Failure,
		BytesIn: sum.BytesIn, BytesOut: sum.BytesOut, Status: StatusComplete}
	if sum.Gap != nil {
		info.Status, info.Error = StatusGap, sum.Gap.Error()
	}
	if !r.goTracked(func() { r.upload(s.path, info) }) {
		r.cfg.Logger.Info("stopping: the session's recording stays pending until the next start", "session", info.SessionID)
	}
	return sum
}

// exitStatus reads the API server's final status: exit code 0 for success, the code of
// a NonZeroExitCode failure; -1 and the message for another failure or none at all.
func exitStatus(status []byte) (int, string) {
	if len(bytes.TrimSpace(status)) == 0 {
		return -1, ""
	}
	var st metav1.Status
	if err := json.Unmarshal(status, &st); err != nil {
		return -1, "unreadable status: " + err.Error()
	}
	if st.Status == metav1.StatusSuccess {
		return 0, ""
	}
	if st.Details != nil {
		for _, c := range st.Details.Causes {
			if c.Type == "ExitCode" {
				if n, err := strconv.Atoi(c.Message); err == nil {
					return n, ""
				}
			}
		}
	}
	return -1, st.Message
}

// upload stores a finished recording, indexes it and removes the pending file. A failed
// upload leaves the file for the next start.
func (r *Recorder) upload(path string, info Info) {
	ctx := r.cfg.Context
	if r.cfg.Store == nil {
		return
	}
	r.mu.Lock()
	if r.uploading[info.SessionID] {
		r.mu.Unlock()
		return
	}
	r.uploading[info.SessionID] = true
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.uploading, info.SessionID)
		r.mu.Unlock()
	}()
	f, err := os.Open(path)
	if err != nil {
		r.cfg.Logger.Warn("uploading a session recording", "session", info.SessionID, "error", err)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		r.cfg.Logger.Warn("uploading a session recording", "session", info.SessionID, "error", err)
		return
	}
	info.Size = st.Size()
	url, err := r.cfg.Store.Upload(ctx, info.SessionID, f, info.Size)
	if err != nil {
		r.cfg.Logger.Warn("uploading a session recording; it stays pending and is uploaded once the store is back, or at the next start",
			"session", info.SessionID, "path", path, "error", err)
		r.mu.Lock()
		r.retry = true
		r.mu.Unlock()
		r.cfg.Audit.Emit(ctx, audit.Event{Type: audit.SessionUpload, Message: err.Error(), User: info.User,
			Fields: map[string]any{"session_id": info.SessionID, "pending": path}})
		return
	}
	info.URL = url
	if r.cfg.Index != nil {
		if err := r.cfg.Index(ctx, info); err != nil {
			r.cfg.Logger.Warn("indexing a session recording", "session", info.SessionID, "error", err)
		}
	}
	_ = f.Close()
	if err := os.Remove(path); err != nil {
		r.cfg.Logger.Warn("removing an uploaded recording", "path", path, "error", err)
	}
	r.cfg.Audit.Emit(ctx, audit.Event{Type: audit.SessionUpload, Success: true, User: info.User, Roles: info.Roles,
		BotName: info.BotName, BotInstanceID: info.BotInstanceID,
		Fields: map[string]any{"session_id": info.SessionID, "url": url, "size": info.Size, "status": info.Status}})
}

// UploadPending uploads the recordings of sessions that a stopped process left behind:
// they end at their last event and are marked incomplete.
func (r *Recorder) UploadPending() {
	entries, err := os.ReadDir(r.pending)
	if err != nil {
		r.cfg.Logger.Warn("reading pending session recordings", "error", err)
		return
	}
	r.mu.Lock()
	live := make(map[string]bool, len(r.live))
	for id := range r.live {
		live[id] = true
	}
	for id := range r.uploading {
		live[id] = true
	}
	r.mu.Unlock()
	for _, e := range entries {
		name := e.Name()
		id, ok := strings.CutSuffix(name, ".cast")
		if !ok || live[id] {
			continue
		}
		path := filepath.Join(r.pending, name)
		info, err := ReadInfo(path)
		if err != nil {
			r.cfg.Logger.Warn("a pending session recording is unreadable; it is uploaded as it is", "path", path, "error", err)
		}
		info.SessionID = id
		r.upload(path, info)
	}
}

// ReadInfo reads what a recording file says of its session: the header's metadata and,
// from its events, the end, the bytes and the exit code. A session that has no exit
// marker is incomplete.
func ReadInfo(path string) (Info, error) {
	info := Info{ExitCode: -1, Status: StatusIncomplete}
	f, err := os.Open(path)
	if err != nil {
		return info, err
	}
	defer f.Close()
	rd, err := NewReader(f)
	if err != nil {
		return info, err
	}
	if rd.Header.Keyport != nil {
		info.Meta = *rd.Header.Keyport
	}
	var last time.Duration
	for {
		e, err := rd.Next()
		if err != nil {
			info.Duration, info.End = last, info.Start.Add(last)
			if errors.Is(err, io.EOF) {
				return info, nil
			}
			info.Error = err.Error()
			return info, err
		}
		last = e.Time
		s, isData := e.Stream()
		switch {
		case e.Code == CodeMarker:
			if n, ok := strings.CutPrefix(string(e.Data), "exit "); ok {
				if c, err := strconv.Atoi(n); err == nil {
					info.ExitCode, info.Status = c, StatusComplete
				}
			}
			if msg, ok := strings.CutPrefix(string(e.Data), "error: "); ok {
				info.Failure, info.Status = msg, StatusComplete
			}
		case isData && s == Stdin:
			info.BytesIn += int64(len(e.Data))
		case isData:
			info.BytesOut += int64(len(e.Data))
		}
	}
}

// goTracked runs f in the background unless the recorder is stopping; Wait waits for it.
func (r *Recorder) goTracked(f func()) bool {
	r.mu.Lock()
	if r.stopping {
		r.mu.Unlock()
		return false
	}
	r.wg.Add(1)
	r.mu.Unlock()
	go func() {
		defer r.wg.Done()
		f()
	}()
	return true
}

// StartUploadPending uploads, in the background, what a stopped process left pending.
func (r *Recorder) StartUploadPending() { r.goTracked(r.UploadPending) }

// Wait stops new uploads and waits for those in progress (their session.upload events
// are emitted before it returns).
func (r *Recorder) Wait() {
	r.mu.Lock()
	r.stopping = true
	r.mu.Unlock()
	r.wg.Wait()
}

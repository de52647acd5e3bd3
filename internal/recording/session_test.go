package recording

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/spdystream/spdy"
)

type failingStore struct{ *DirStore }

func (failingStore) Check(context.Context) error { return errors.New("bucket unreachable") }

// pipeConn is an upstream whose server bytes the test writes.
type pipeConn struct {
	r       *io.PipeReader
	w       *io.PipeWriter
	written bytes.Buffer
}

func newPipeConn() *pipeConn {
	r, w := io.Pipe()
	return &pipeConn{r: r, w: w}
}
func (p *pipeConn) Read(b []byte) (int, error)  { return p.r.Read(b) }
func (p *pipeConn) Write(b []byte) (int, error) { return p.written.Write(b) }
func (p *pipeConn) Close() error                { return p.r.Close() }

func TestSessionRecordsAndUploads(t *testing.T) {
	dir := t.TempDir()
	store, err := NewDirStore(filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var indexed []Info
	r, err := NewRecorder(RecorderConfig{Dir: dir, Store: store, Index: func(_ context.Context, i Info) error {
		mu.Lock()
		defer mu.Unlock()
		indexed = append(indexed, i)
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := r.Start(context.Background(), Meta{Kind: "exec", User: "alice", Pod: "web-0", TTY: true})
	if err != nil {
		t.Fatal(err)
	}
	up := newPipeConn()
	conn := s.Wrap(up, http.Header{"Upgrade": {"SPDY/3.1"}})
	if _, err := conn.Write(spdyClientBytes(t)); err != nil {
		t.Fatal(err)
	}
	go func() {
		_, _ = up.w.Write(spdyServerBytes())
		_ = up.w.Close()
	}()
	if _, err := io.ReadAll(conn); err != nil {
		t.Fatal(err)
	}
	sum := s.Finish()
	if sum.ExitCode != 0 || sum.BytesIn != int64(len("echo hi\r")) || sum.BytesOut != int64(len("hi\r\n$ ")) || sum.Gap != nil {
		t.Errorf("summary = %+v", sum)
	}
	r.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(indexed) != 1 || indexed[0].Status != StatusComplete || !strings.HasPrefix(indexed[0].URL, "file://") {
		t.Fatalf("indexed = %+v", indexed)
	}
	rc, err := store.Open(context.Background(), s.Meta.SessionID)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	data, _ := io.ReadAll(rc)
	for _, want := range []string{`"i","echo hi\r"`, `"o","hi\r\n"`, `"r","100x30"`, `"m","exit 0"`} {
		if !bytes.Contains(data, []byte(want)) {
			t.Errorf("stored recording lacks %s:\n%s", want, data)
		}
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, "pending")); len(entries) != 0 {
		t.Errorf("pending files left: %v", entries)
	}
}

func TestStrictSessionRefusedWhenTheStoreIsDown(t *testing.T) {
	dir := t.TempDir()
	r, err := NewRecorder(RecorderConfig{Dir: dir, Store: failingStore{&DirStore{Dir: dir}}, CheckInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Start(context.Background(), Meta{Mode: ModeStrict}); err == nil || !strings.Contains(err.Error(), "bucket unreachable") {
		t.Errorf("strict start: %v", err)
	}
	s, err := r.Start(context.Background(), Meta{Mode: ModeBestEffort})
	if err != nil {
		t.Fatalf("best_effort start: %v", err)
	}
	s.Finish()
}

// TestEndSendsTheNotice: ending a session sends the client a stdout frame and a failure
// status on a frame boundary, then EOF.
func TestEndSendsTheNotice(t *testing.T) {
	r, err := NewRecorder(RecorderConfig{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	s, err := r.Start(context.Background(), Meta{Mode: ModeStrict})
	if err != nil {
		t.Fatal(err)
	}
	up := newPipeConn()
	conn := s.Wrap(up, http.Header{"Upgrade": {"SPDY/3.1"}})
	if _, err := conn.Write(spdyClientBytes(t)); err != nil {
		t.Fatal(err)
	}
	s.End(errors.New("store gone"))
	out, err := io.ReadAll(conn)
	if err != nil {
		t.Fatal(err)
	}
	fr, _ := spdy.NewFramer(nil, bytes.NewReader(out))
	var texts []string
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			break
		}
		texts = append(texts, string(f.(*spdy.DataFrame).Data))
	}
	if len(texts) != 2 || !strings.Contains(texts[0], "store gone") || !strings.Contains(texts[1], `"message":"store gone"`) {
		t.Errorf("client got %q", texts)
	}
	s.Finish()
}

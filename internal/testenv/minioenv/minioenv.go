// Package minioenv starts a real MinIO server for tests: the S3-compatible object store
// that session recordings are uploaded to (session_recording_uri s3://…). It owns the
// server's lifetime (Start, Stop, Restart on the same port and data), its credentials, and
// the "recordings" bucket it creates. The binary comes from package tools (installed by
// `make kube-tools`); a test that cannot find it fails, it never skips.
package minioenv

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/keyport/keyport/internal/testenv/freeport"
	"github.com/keyport/keyport/internal/testenv/proc"
	"github.com/keyport/keyport/internal/testenv/tools"
)

const (
	// rootUser and rootPassword are the root credentials every test server runs with
	// (MINIO_ROOT_USER and MINIO_ROOT_PASSWORD; the password needs 8 characters).
	rootUser     = "keyport-test"
	rootPassword = "keyport-test-secret"
	// bucket is the bucket Start creates.
	bucket = "recordings"
	// region is MinIO's default region, which URI names.
	region = "us-east-1"
)

// startTimeout bounds how long one start of the server may take to report ready.
const startTimeout = 60 * time.Second

// attempts is how often Start retries when a port it picked was taken in the meantime.
const attempts = 5

// Server is a running MinIO server owned by a test.
type Server struct {
	// Endpoint is the S3 API's host:port on 127.0.0.1.
	Endpoint string
	// AccessKey and SecretKey are the root credentials.
	AccessKey, SecretKey string
	// Bucket is "recordings"; it exists when Start returns.
	Bucket string
	// DataDir holds the objects; it survives Stop, so Restart serves them again.
	DataDir string
	// LogPath is the server's output, appended to by every start.
	LogPath string

	bin         string
	consoleAddr string
	certsDir    string

	mu   sync.Mutex    // guards proc
	proc *proc.Process // nil while stopped
}

// Start runs a MinIO server on free 127.0.0.1 ports with its data in a temporary
// directory, waits until it is ready, creates Bucket, and stops the server when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	dir := t.TempDir()
	s := &Server{
		AccessKey: rootUser,
		SecretKey: rootPassword,
		Bucket:    bucket,
		DataDir:   filepath.Join(dir, "data"),
		LogPath:   filepath.Join(dir, "minio.log"),
		bin:       tools.Path(t, "minio"),
		certsDir:  filepath.Join(dir, "certs"),
	}
	for _, d := range []string{s.DataDir, s.certsDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("minioenv: last lines of %s:\n%s", s.LogPath, proc.TailFile(s.LogPath, 40))
		}
	})

	var lastErr error
	for range attempts {
		ports, err := freeport.Ports(2)
		if err != nil {
			t.Fatalf("minioenv: %v", err)
		}
		s.Endpoint = "127.0.0.1:" + strconv.Itoa(ports[0])
		s.consoleAddr = "127.0.0.1:" + strconv.Itoa(ports[1])
		lastErr = s.start()
		if lastErr == nil || !errors.Is(lastErr, errPortTaken) {
			break
		}
	}
	if lastErr != nil {
		t.Fatalf("minioenv: starting minio: %v", lastErr)
	}

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := s.Client(t).MakeBucket(ctx, s.Bucket, minio.MakeBucketOptions{Region: region}); err != nil {
		t.Fatalf("minioenv: creating bucket %q: %v", s.Bucket, err)
	}
	t.Logf("minioenv: minio ready at %s, bucket %q, data in %s", s.Endpoint, s.Bucket, s.DataDir)
	return s
}

// URI is a session_recording_uri for objects under prefix in Bucket:
// s3://recordings/PREFIX?endpoint=HOST:PORT&region=us-east-1&insecure=true.
func (s *Server) URI(prefix string) string {
	u := url.URL{
		Scheme:   "s3",
		Host:     s.Bucket,
		Path:     "/" + strings.TrimPrefix(prefix, "/"),
		RawQuery: "endpoint=" + s.Endpoint + "&region=" + region + "&insecure=true",
	}
	return u.String()
}

// Env is the environment (KEY=value lines) that gives a process the server's
// credentials, for exec.Cmd.Env.
func (s *Server) Env() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + s.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + s.SecretKey,
	}
}

// Client is a minio-go client for the server with the root credentials.
func (s *Server) Client(t testing.TB) *minio.Client {
	t.Helper()
	c, err := minio.New(s.Endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""),
		Region: region,
	})
	if err != nil {
		t.Fatalf("minioenv: %v", err)
	}
	return c
}

// Stop kills the server and waits for it to exit. Stopping a stopped server does
// nothing. The data directory stays, for Restart.
func (s *Server) Stop() {
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p != nil {
		p.Kill()
	}
}

// Restart starts the server again (stopping it first if it runs) on the same address
// and data directory, and waits until it is ready. It fails t if the port was taken
// while the server was down.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	if err := s.start(); err != nil {
		t.Fatalf("minioenv: restarting minio: %v", err)
	}
}

// errPortTaken marks a start that failed because another process bound a port between
// freeport choosing it and MinIO listening: the one failure worth retrying.
var errPortTaken = errors.New("port taken")

// start runs the server on s.Endpoint and s.consoleAddr and waits until it is ready.
func (s *Server) start() error {
	env := []string{
		"MINIO_ROOT_USER=" + s.AccessKey,
		"MINIO_ROOT_PASSWORD=" + s.SecretKey,
		"MINIO_BROWSER=off", // no console UI (it then does not bind --console-address)
		"MINIO_UPDATE=off",  // no update check against dl.min.io at start-up
	}
	p, err := proc.Start("minio", s.LogPath, env, s.bin,
		"server", s.DataDir,
		"--address", s.Endpoint,
		"--console-address", s.consoleAddr,
		"--certs-dir", s.certsDir, // not ~/.minio/certs
	)
	if err != nil {
		return err
	}
	if err := s.waitReady(p); err != nil {
		p.Kill()
		if p.BindFailed() {
			return fmt.Errorf("%w: %w", errPortTaken, err)
		}
		return err
	}
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()
	return nil
}

// waitReady polls /minio/health/live until it answers 200 with the object layer up,
// the process exits, or startTimeout passes. The live check answers 200 as soon as the
// HTTP server listens, before the drives are initialized; until then it carries
// "x-minio-server-status: offline" and S3 calls fail, so that header must be gone too.
func (s *Server) waitReady(p *proc.Process) error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	url := "http://" + s.Endpoint + "/minio/health/live"
	var last error
	for {
		if last = live(ctx, url); last == nil {
			return nil
		}
		select {
		case <-p.Done:
			return fmt.Errorf("minio exited before becoming ready (%w); last lines of %s:\n%s", p.WaitErr, s.LogPath, p.Tail(40))
		case <-ctx.Done():
			return fmt.Errorf("minio at %s not ready after %s (last error: %w); last lines of %s:\n%s",
				s.Endpoint, time.Since(start).Round(time.Millisecond), last, s.LogPath, p.Tail(40))
		case <-tick.C:
		}
	}
}

func live(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if st := resp.Header.Get("X-Minio-Server-Status"); st != "" {
		return fmt.Errorf("GET %s: server status %q", url, st)
	}
	return nil
}

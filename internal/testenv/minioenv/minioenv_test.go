package minioenv_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/keyport/keyport/internal/recording"
	"github.com/keyport/keyport/internal/testenv/minioenv"
)

func TestStartStopRestart(t *testing.T) {
	s := minioenv.Start(t)
	c := s.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	ok, err := c.BucketExists(ctx, s.Bucket)
	if err != nil || !ok {
		t.Fatalf("BucketExists(%q) = %v, %v; want true", s.Bucket, ok, err)
	}

	const key = "prefix/hello.cast"
	body := []byte(`{"version": 2, "width": 80, "height": 24}` + "\n")
	if _, err := c.PutObject(ctx, s.Bucket, key, bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); err != nil {
		t.Fatalf("PutObject: %v", err)
	}
	if got := getObject(ctx, t, c, s.Bucket, key); !bytes.Equal(got, body) {
		t.Fatalf("GetObject = %q, want %q", got, body)
	}

	s.Stop()
	s.Stop() // idempotent
	if resp, err := http.Get("http://" + s.Endpoint + "/minio/health/live"); err == nil {
		resp.Body.Close()
		t.Fatalf("health check answered %s after Stop", resp.Status)
	}
	// minio-go retries a refused connection with backoff; a short deadline ends that.
	sctx, scancel := context.WithTimeout(ctx, 2*time.Second)
	defer scancel()
	if _, err := c.StatObject(sctx, s.Bucket, key, minio.StatObjectOptions{}); err == nil {
		t.Fatal("StatObject succeeded against a stopped server")
	}

	endpoint := s.Endpoint
	s.Restart(t)
	if s.Endpoint != endpoint {
		t.Fatalf("Restart moved the server from %s to %s", endpoint, s.Endpoint)
	}
	if got := getObject(ctx, t, c, s.Bucket, key); !bytes.Equal(got, body) {
		t.Fatalf("after Restart GetObject = %q, want %q", got, body)
	}
}

func TestURIAndEnv(t *testing.T) {
	s := minioenv.Start(t)
	uri := s.URI("team/a")
	want := "s3://recordings/team/a?endpoint=" + s.Endpoint + "&region=us-east-1&insecure=true"
	if uri != want {
		t.Fatalf("URI = %q, want %q", uri, want)
	}
	// The recording store's own parser must read it back.
	_, loc, err := recording.ParseURI(uri)
	if err != nil {
		t.Fatalf("ParseURI(%q): %v", uri, err)
	}
	if loc.Bucket != "recordings" || loc.Prefix != "team/a" || loc.Endpoint != s.Endpoint || loc.Region != "us-east-1" || !loc.Insecure {
		t.Fatalf("ParseURI(%q) = %+v", uri, loc)
	}
	env := strings.Join(s.Env(), "\n")
	for _, line := range []string{"AWS_ACCESS_KEY_ID=" + s.AccessKey, "AWS_SECRET_ACCESS_KEY=" + s.SecretKey} {
		if !strings.Contains(env, line) {
			t.Errorf("Env() = %q, missing %q", env, line)
		}
	}
}

func getObject(ctx context.Context, t *testing.T, c *minio.Client, bucket, key string) []byte {
	t.Helper()
	obj, err := c.GetObject(ctx, bucket, key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatalf("GetObject: %v", err)
	}
	defer obj.Close()
	b, err := io.ReadAll(obj)
	if err != nil {
		t.Fatalf("reading %s/%s: %v", bucket, key, err)
	}
	return b
}

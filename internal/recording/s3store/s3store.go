// Package s3store keeps session recordings in S3-compatible object storage
// (auth_service.session_recording_uri: s3://bucket/prefix?endpoint=…&region=…), through
// minio-go. Several Auth Services and proxies on one backend share one bucket, so any
// of them can play any recording. Credentials come from the environment
// (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or MINIO_ROOT_USER and
// MINIO_ROOT_PASSWORD), ~/.aws/credentials, or the instance's IAM role, in that order.
package s3store

import (
	"context"
	"fmt"
	"io"
	"path"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/keyport/keyport/internal/recording"
)

// Store is a bucket and a prefix.
type Store struct {
	c *minio.Client
	// probe answers Check: one try, no retries, so a store that is down is found within
	// a check, and a strict session ends promptly.
	probe *minio.Client
	loc   recording.S3Location
}

// checkTimeout bounds Check: a store that does not answer in time is unavailable.
const checkTimeout = 5 * time.Second

// New connects to the bucket; it does not call the server.
func New(_ context.Context, loc recording.S3Location) (*Store, error) {
	endpoint := loc.Endpoint
	if endpoint == "" {
		endpoint = "s3.amazonaws.com"
	}
	creds := credentials.NewChainCredentials([]credentials.Provider{
		&credentials.EnvAWS{}, &credentials.EnvMinio{}, &credentials.FileAWSCredentials{}, &credentials.IAM{},
	})
	c, err := minio.New(endpoint, &minio.Options{Creds: creds, Secure: !loc.Insecure, Region: loc.Region})
	if err != nil {
		return nil, fmt.Errorf("s3://%s: %w", loc.Bucket, err)
	}
	probe, err := minio.New(endpoint, &minio.Options{Creds: creds, Secure: !loc.Insecure, Region: loc.Region, MaxRetries: 1})
	if err != nil {
		return nil, fmt.Errorf("s3://%s: %w", loc.Bucket, err)
	}
	return &Store{c: c, probe: probe, loc: loc}, nil
}

func (s *Store) key(id string) (string, error) {
	if !recording.ValidID(id) {
		return "", fmt.Errorf("%q is not a session ID", id)
	}
	return path.Join(s.loc.Prefix, id+".cast"), nil
}

// Upload puts the recording as one object.
func (s *Store) Upload(ctx context.Context, id string, r io.Reader, size int64) (string, error) {
	key, err := s.key(id)
	if err != nil {
		return "", err
	}
	_, err = s.c.PutObject(ctx, s.loc.Bucket, key, r, size, minio.PutObjectOptions{ContentType: "application/x-asciicast"})
	if err != nil {
		return "", fmt.Errorf("s3://%s/%s: %w", s.loc.Bucket, key, err)
	}
	return "s3://" + s.loc.Bucket + "/" + key, nil
}

// Open returns the recording's object.
func (s *Store) Open(ctx context.Context, id string) (io.ReadCloser, error) {
	key, err := s.key(id)
	if err != nil {
		return nil, err
	}
	if _, err := s.c.StatObject(ctx, s.loc.Bucket, key, minio.StatObjectOptions{}); err != nil {
		if minio.ToErrorResponse(err).Code == minio.NoSuchKey {
			return nil, recording.ErrNotFound
		}
		return nil, fmt.Errorf("s3://%s/%s: %w", s.loc.Bucket, key, err)
	}
	obj, err := s.c.GetObject(ctx, s.loc.Bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("s3://%s/%s: %w", s.loc.Bucket, key, err)
	}
	return obj, nil
}

// Check asks the server whether the bucket exists.
func (s *Store) Check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	ok, err := s.probe.BucketExists(ctx, s.loc.Bucket)
	if err != nil {
		return fmt.Errorf("s3://%s: %w", s.loc.Bucket, err)
	}
	if !ok {
		return fmt.Errorf("s3://%s: no such bucket", s.loc.Bucket)
	}
	return nil
}

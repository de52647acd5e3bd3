package recording

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// validID is a session ID as Start makes them (a UUID): nothing else names a file.
var validID = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// ValidID reports whether id is a session ID.
func ValidID(id string) bool { return validID.MatchString(id) }

// DirStore keeps recordings as files in a directory (data_dir/records by default).
type DirStore struct{ Dir string }

// NewDirStore makes dir.
func NewDirStore(dir string) (*DirStore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("session recordings: %w", err)
	}
	return &DirStore{Dir: dir}, nil
}

func (d *DirStore) path(id string) (string, error) {
	if !ValidID(id) {
		return "", fmt.Errorf("%q is not a session ID", id)
	}
	return filepath.Join(d.Dir, id+".cast"), nil
}

// Upload writes the recording to a temporary file and renames it into place.
func (d *DirStore) Upload(_ context.Context, id string, r io.Reader, _ int64) (string, error) {
	path, err := d.path(id)
	if err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(d.Dir, ".upload-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, r); err != nil {
		_ = tmp.Close()
		return "", err
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", err
	}
	return "file://" + filepath.ToSlash(path), nil
}

// Open opens a stored recording.
func (d *DirStore) Open(_ context.Context, id string) (io.ReadCloser, error) {
	path, err := d.path(id)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotFound
	}
	return f, err
}

// Check reports whether the directory can take a file.
func (d *DirStore) Check(context.Context) error {
	f, err := os.CreateTemp(d.Dir, ".check-*")
	if err != nil {
		return err
	}
	name := f.Name()
	_ = f.Close()
	return os.Remove(name)
}

// S3Location is an s3:// session_recording_uri, parsed.
type S3Location struct {
	Bucket, Prefix string
	// Endpoint is host:port of an S3-compatible server; empty for AWS.
	Endpoint string
	Region   string
	// Insecure: plain HTTP to the endpoint (insecure=true), for a server on loopback.
	Insecure bool
}

// ParseURI checks a session_recording_uri: empty (data_dir/records), file:///path, or
// s3://bucket/prefix?endpoint=host:port&region=…&insecure=true. It returns the
// directory of a file URI, or the S3 location.
func ParseURI(uri string) (dir string, s3 *S3Location, err error) {
	if uri == "" {
		return "", nil, nil
	}
	u, err := url.Parse(uri)
	if err != nil {
		return "", nil, errors.New("not a URI (want file:///dir or s3://bucket/prefix)")
	}
	if u.User != nil {
		// The URI is not repeated: it holds a secret.
		return "", nil, errors.New("credentials do not belong in the URI; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" || !filepath.IsAbs(u.Path) || u.RawQuery != "" {
			return "", nil, fmt.Errorf("%q: want file:///absolute/path", uri)
		}
		return u.Path, nil, nil
	case "s3":
		loc := &S3Location{Bucket: u.Host, Prefix: strings.Trim(u.Path, "/")}
		if loc.Bucket == "" {
			return "", nil, fmt.Errorf("%q: no bucket (want s3://bucket/prefix)", uri)
		}
		q := u.Query()
		for k := range q {
			switch k {
			case "endpoint", "region", "insecure":
			default:
				return "", nil, fmt.Errorf("%q: unknown parameter %q (want endpoint, region, insecure)", uri, k)
			}
		}
		loc.Endpoint, loc.Region = q.Get("endpoint"), q.Get("region")
		switch q.Get("insecure") {
		case "", "false":
		case "true":
			loc.Insecure = true
		default:
			return "", nil, fmt.Errorf("%q: insecure must be true or false", uri)
		}
		return "", loc, nil
	}
	return "", nil, fmt.Errorf("%q: the scheme must be file or s3", uri)
}

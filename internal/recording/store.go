package recording

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
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
func (d *DirStore) Upload(_ context.Context, id string, r io.Reader) (string, error) {
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

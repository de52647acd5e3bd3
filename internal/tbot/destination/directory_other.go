//go:build !unix

package destination

import (
	"context"
	"log/slog"

	"github.com/keyport/keyport/internal/errs"
)

// Directory is not supported on this platform: tbot's safe-write rules rely on
// descriptor-relative POSIX calls.
type Directory struct{ path string }

// NewDirectory reports that directory destinations need a Unix system.
func NewDirectory(path, _ string, _ *slog.Logger) (*Directory, error) {
	return nil, errs.BadParameterf("directory destinations are not supported on this platform yet")
}

func (d *Directory) Path() string   { return d.path }
func (d *Directory) String() string { return "file://" + d.path }
func (d *Directory) Write(context.Context, map[string][]byte) error {
	return errs.BadParameterf("not supported")
}
func (d *Directory) Read(context.Context, string) ([]byte, error) {
	return nil, errs.BadParameterf("not supported")
}

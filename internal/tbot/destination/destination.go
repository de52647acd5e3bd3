// Package destination owns where tbot puts files: a directory on disk (atomic writes,
// 0600 files in a 0700 directory, never through a symlink), process memory, or a
// Kubernetes Secret. Outputs and the bot's own storage write whole sets of files through
// one interface, so the rules for writing credentials live in one place.
package destination

import (
	"context"
	"log/slog"
	"maps"
	"sort"
	"sync"

	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/tbot/config"
)

// Destination holds a set of named files.
type Destination interface {
	// Write replaces the named files. Either every file is replaced or, on error, the old
	// files are left as they were (as far as the medium allows).
	Write(ctx context.Context, files map[string][]byte) error
	// Read returns one file; errs.NotFound when it does not exist.
	Read(ctx context.Context, name string) ([]byte, error)
	// String names the destination in logs and errors.
	String() string
}

// New builds the destination described by d.
func New(d *config.Destination, log *slog.Logger) (Destination, error) {
	switch d.Type {
	case config.DestDirectory:
		return NewDirectory(d.Path, d.Symlinks, log)
	case config.DestMemory:
		return NewMemory(), nil
	case config.DestKubeSecret:
		return NewKubeSecret(d.Name, d.Namespace, d.Labels), nil
	}
	return nil, errs.BadParameterf("unknown destination type %q", d.Type)
}

// Memory keeps files in process memory: for bots that must leave nothing on disk, and
// for tests.
type Memory struct {
	mu    sync.Mutex
	files map[string][]byte
}

// NewMemory returns an empty memory destination.
func NewMemory() *Memory { return &Memory{files: map[string][]byte{}} }

// Write implements Destination.
func (m *Memory) Write(_ context.Context, files map[string][]byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, v := range files {
		m.files[k] = append([]byte(nil), v...)
	}
	return nil
}

// Read implements Destination.
func (m *Memory) Read(_ context.Context, name string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.files[name]
	if !ok {
		return nil, errs.NotFoundf("%s not found in memory", name)
	}
	return append([]byte(nil), v...), nil
}

// Files returns a copy of everything written so far.
func (m *Memory) Files() map[string][]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.files)
}

func (m *Memory) String() string { return "memory://" }

// sortedNames returns the file names in a stable order, so that errors and writes are
// reproducible.
func sortedNames(files map[string][]byte) []string {
	names := make([]string, 0, len(files))
	for k := range files {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

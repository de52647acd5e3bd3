package backend

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/keyport/keyport/internal/errs"
)

func TestPrefixEnd(t *testing.T) {
	tests := []struct {
		name   string
		prefix []byte
		want   []byte
	}{
		{"empty has no bound", nil, nil},
		{"slash becomes zero", []byte("a/"), []byte("a0")},
		{"last byte bumped", []byte("abc"), []byte("abd")},
		{"trailing 0xff dropped", []byte{'a', 0xff}, []byte("b")},
		{"all 0xff has no bound", []byte{0xff, 0xff}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := PrefixEnd(tt.prefix)
			if !bytes.Equal(got, tt.want) || (got == nil) != (tt.want == nil) {
				t.Fatalf("PrefixEnd(%q) = %q, want %q", tt.prefix, got, tt.want)
			}
		})
	}
}

func TestPrefixEndDoesNotAlias(t *testing.T) {
	p := []byte("ab")
	_ = PrefixEnd(p)
	if string(p) != "ab" {
		t.Fatalf("PrefixEnd modified its argument: %q", p)
	}
}

func TestIsCompacted(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"sentinel", ErrCompacted, true},
		{"wrapped", fmt.Errorf("watch from 3: %w", ErrCompacted), true},
		{"other kind", errs.NotFoundf("missing"), false},
		{"closed", ErrClosed, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsCompacted(tt.err); got != tt.want {
				t.Fatalf("IsCompacted(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

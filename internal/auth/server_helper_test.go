package auth

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/keyport/keyport/internal/backend/sqlite"
	"github.com/keyport/keyport/internal/clock"
	"github.com/keyport/keyport/internal/types"
)

// newTestServer starts an Auth Server for cluster keyport.example.com on a fresh SQLite
// backend, with a fake clock at 2026-03-01 10:00 UTC; cfg supplies anything else.
func newTestServer(t testing.TB, cfg Config) (*Server, *clock.Fake) {
	t.Helper()
	ctx := context.Background()
	clk := clock.NewFake(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC))
	b, err := sqlite.New(ctx, sqlite.Config{Path: filepath.Join(t.TempDir(), "db"), Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	cfg.ClusterName, cfg.Backend, cfg.Clock = "keyport.example.com", b, clk
	s, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, clk
}

// putJoinToken stores token resource name: role, bot and method over spec's method block.
func putJoinToken(t testing.TB, s *Server, name, role, bot, method string, spec types.TokenSpec) {
	t.Helper()
	spec.Roles, spec.BotName, spec.JoinMethod = []string{role}, bot, method
	tok := &types.Token{Header: types.Header{Kind: types.KindToken, Version: types.V2, Metadata: types.Metadata{Name: name}}, Spec: spec}
	if err := tok.CheckAndSetDefaults(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.putToken(context.Background(), Actor{}, tok, CreateOnly); err != nil {
		t.Fatal(err)
	}
}

package sqlite

import (
	"context"
	"database/sql"
	"fmt"
)

// prepared holds statements prepared once per query text on a *sql.DB. Parsing SQL was
// about a tenth of a write's CPU before statements were reused. database/sql prepares a
// statement again on any connection that has not seen it, so a reconnect is harmless.
//
// Statements are prepared up front, never lazily: the writer pool has exactly one
// connection, which a transaction holds while it runs, so preparing on the pool from
// inside a transaction would wait for itself. A query text that is not in the map runs
// unprepared.
type prepared map[string]*sql.Stmt

func prepare(ctx context.Context, db *sql.DB, queries ...string) (prepared, error) {
	p := make(prepared, len(queries))
	for _, q := range queries {
		if _, ok := p[q]; ok {
			continue
		}
		s, err := db.PrepareContext(ctx, q)
		if err != nil {
			p.close()
			return nil, fmt.Errorf("sqlite backend: preparing statements: %w", err)
		}
		p[q] = s
	}
	return p, nil
}

func (p prepared) close() {
	for _, s := range p {
		_ = s.Close()
	}
}

// ptx is a transaction that runs the prepared statements it knows by their text.
type ptx struct {
	*sql.Tx
	p prepared
}

func (t ptx) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	if s, ok := t.p[q]; ok {
		return t.StmtContext(ctx, s).ExecContext(ctx, args...)
	}
	return t.Tx.ExecContext(ctx, q, args...)
}

func (t ptx) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if s, ok := t.p[q]; ok {
		return t.StmtContext(ctx, s).QueryContext(ctx, args...)
	}
	return t.Tx.QueryContext(ctx, q, args...)
}

func (t ptx) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	if s, ok := t.p[q]; ok {
		return t.StmtContext(ctx, s).QueryRowContext(ctx, args...)
	}
	return t.Tx.QueryRowContext(ctx, q, args...)
}

// queryRow runs q on the pool, prepared when p knows it.
func (p prepared) queryRow(ctx context.Context, db *sql.DB, q string, args ...any) *sql.Row {
	if s, ok := p[q]; ok {
		return s.QueryRowContext(ctx, args...)
	}
	return db.QueryRowContext(ctx, q, args...)
}

package sqlite

import (
	"context"
	"fmt"

	"github.com/keyport/keyport/internal/backend"
	"github.com/keyport/keyport/internal/errs"
)

// watchBatch bounds how many events one read transaction fetches, so a watcher far behind
// does not hold a read snapshot (and so block WAL checkpoints) for long.
const watchBatch = 256

// Watch implements backend.Backend.
func (b *Backend) Watch(ctx context.Context, prefix []byte, fromRevision int64) (backend.Watcher, error) {
	if err := b.checkOpen(); err != nil {
		return nil, err
	}
	if fromRevision < 0 {
		return nil, errs.BadParameterf("backend: watch revision must not be negative")
	}
	var cur, compacted int64
	if err := b.rp.queryRow(ctx, b.r, qMeta).Scan(&cur, &compacted); err != nil {
		return nil, fmt.Errorf("sqlite backend: watch: %w", err)
	}
	if fromRevision == 0 {
		fromRevision = cur
	}
	if fromRevision < compacted {
		return nil, fmt.Errorf("watch from revision %d, history starts after %d: %w", fromRevision, compacted, backend.ErrCompacted)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closing {
		return nil, backend.ErrClosed
	}
	wctx, cancel := context.WithCancel(ctx)
	// Closing the backend ends the watcher through its context like any other stop.
	stop := context.AfterFunc(b.ctx, cancel)
	w := &watcher{
		b:          b,
		WatcherEnd: backend.NewWatcherEnd(ctx, cancel),
		ctx:        wctx,
		cancel:     cancel,
		stop:       stop,
		prefix:     append([]byte(nil), prefix...),
		last:       fromRevision,
	}
	if b.prefixes == nil {
		b.prefixes = map[*watcher][]byte{}
	}
	b.prefixes[w] = w.prefix
	b.watchers.Add(1)
	b.wg.Add(1)
	go w.run()
	return w, nil
}

type watcher struct {
	*backend.WatcherEnd
	b      *Backend
	ctx    context.Context
	cancel context.CancelFunc
	stop   func() bool
	prefix []byte
	last   int64 // every event at or below last has been delivered or skipped
}

func (w *watcher) run() {
	defer w.b.wg.Done()
	defer w.b.watchers.Add(-1)
	err := w.loop()
	w.b.mu.Lock()
	delete(w.b.prefixes, w)
	w.b.mu.Unlock()
	w.cancel()
	w.stop()
	w.Finish(err, w.b.ctx.Err() != nil, w.b.log)
}

func (w *watcher) loop() error {
	for {
		wake := w.b.notify.wait()
		evs, next, more, err := w.read()
		if err != nil {
			return err
		}
		for _, ev := range evs {
			select {
			case w.Send <- ev:
			case <-w.ctx.Done():
				return w.ctx.Err()
			}
		}
		w.last = next
		if more {
			continue
		}
		select {
		case <-wake:
		case <-w.ctx.Done():
			return w.ctx.Err()
		}
	}
}

// read returns the next batch of matching events after w.last, the revision the watcher
// has then covered, and whether more events may follow without waiting.
func (w *watcher) read() (evs []backend.Event, next int64, more bool, err error) {
	sqltx, err := w.b.r.BeginTx(w.ctx, nil)
	if err != nil {
		return nil, 0, false, fmt.Errorf("sqlite backend: watch: %w", err)
	}
	defer sqltx.Rollback()
	tx := ptx{sqltx, w.b.rp}
	var cur, compacted int64
	if err := tx.QueryRowContext(w.ctx, qMeta).Scan(&cur, &compacted); err != nil {
		return nil, 0, false, fmt.Errorf("sqlite backend: watch: %w", err)
	}
	if w.last < compacted {
		return nil, 0, false, fmt.Errorf("watcher at revision %d fell behind history starting after %d: %w", w.last, compacted, backend.ErrCompacted)
	}
	if cur <= w.last {
		return nil, w.last, false, nil
	}
	where, args := rangeWhere(w.prefix)
	args = append([]any{w.last, cur}, args...)
	args = append(args, watchBatch)
	rows, err := tx.QueryContext(w.ctx, watchQuery(where), args...)
	if err != nil {
		return nil, 0, false, fmt.Errorf("sqlite backend: watch: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var ev backend.Event
		var typ int
		var value []byte
		var expires int64
		if err := rows.Scan(&ev.Item.Revision, &typ, &ev.Item.Key, &value, &expires); err != nil {
			return nil, 0, false, fmt.Errorf("sqlite backend: watch: %w", err)
		}
		ev.Type = backend.EventType(typ)
		if ev.Type == backend.EventPut {
			if value == nil {
				value = []byte{}
			}
			ev.Item.Value = value
			ev.Item.Expires = fromNanos(expires)
		}
		evs = append(evs, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, false, fmt.Errorf("sqlite backend: watch: %w", err)
	}
	// A full batch may have stopped short of cur; otherwise every event up to cur has
	// been seen, matching or not, so the next read need not rescan the skipped ones.
	if len(evs) == watchBatch {
		return evs, evs[len(evs)-1].Item.Revision, true, nil
	}
	return evs, cur, false, nil
}

// watchQuery reads the events after a revision, up to another, under a key range.
func watchQuery(where string) string {
	return `SELECT revision, type, key, value, expires FROM events
		WHERE revision > ? AND revision <= ? AND ` + where + ` ORDER BY revision LIMIT ?`
}

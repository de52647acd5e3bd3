package etcdbk

import (
	"context"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/keyport/keyport/internal/backend"
	"github.com/keyport/keyport/internal/errs"
)

// Watch implements backend.Backend.
func (b *Backend) Watch(ctx context.Context, prefix []byte, fromRevision int64) (backend.Watcher, error) {
	if err := b.checkOpen(); err != nil {
		return nil, err
	}
	if fromRevision < 0 {
		return nil, errs.BadParameterf("backend: watch revision must not be negative")
	}
	if fromRevision == 0 {
		// etcd creates a watch without a revision asynchronously, after Watch returns,
		// so a write made right after could be missed. Pinning the start revision makes
		// "from now" mean now.
		rev, err := b.CurrentRevision(ctx)
		if err != nil {
			return nil, err
		}
		fromRevision = rev
	}
	b.mu.Lock()
	if b.closing {
		b.mu.Unlock()
		return nil, backend.ErrClosed
	}
	b.wg.Add(1)
	b.mu.Unlock()
	// WithRequireLeader makes a member cut off from the quorum end the watch instead
	// of leaving it silently stalled, so the caller reconnects elsewhere.
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	stop := context.AfterFunc(b.ctx, cancel)
	w := &watcher{
		b:          b,
		WatcherEnd: backend.NewWatcherEnd(ctx, cancel),
		ctx:        wctx,
		cancel:     cancel,
		stop:       stop,
	}
	// If Close ran since the check above, wctx is already cancelled and the watcher
	// ends at once with ErrClosed.
	ch := b.client.Watch(wctx, b.key(prefix), clientv3.WithPrefix(), clientv3.WithRev(fromRevision+1))
	go w.run(ch)
	return w, nil
}

type watcher struct {
	*backend.WatcherEnd
	b      *Backend
	ctx    context.Context
	cancel context.CancelFunc
	stop   func() bool
}

func (w *watcher) run(ch clientv3.WatchChan) {
	defer w.b.wg.Done()
	err := w.loop(ch)
	// Cancelling the watch context closes the channel; drain it so the client's
	// goroutines are not left blocked on a send.
	w.cancel()
	for range ch {
	}
	w.stop()
	w.Finish(err, w.b.ctx.Err() != nil, w.b.log)
}

func (w *watcher) loop(ch clientv3.WatchChan) error {
	for {
		var resp clientv3.WatchResponse
		var ok bool
		select {
		case resp, ok = <-ch:
		case <-w.ctx.Done():
			return w.ctx.Err()
		}
		if !ok {
			if w.ctx.Err() != nil {
				return w.ctx.Err()
			}
			return errors.New("etcd backend: watch channel closed")
		}
		if resp.CompactRevision != 0 {
			return fmt.Errorf("watch needs revisions compacted up to %d: %w", resp.CompactRevision, backend.ErrCompacted)
		}
		if err := resp.Err(); err != nil {
			if errors.Is(err, rpctypes.ErrCompacted) {
				return fmt.Errorf("etcd backend: watch: %w: %w", backend.ErrCompacted, err)
			}
			return fmt.Errorf("etcd backend: watch: %w", err)
		}
		for _, ev := range resp.Events {
			out, err := w.convert(ev)
			if err != nil {
				return err
			}
			select {
			case w.Send <- out:
			case <-w.ctx.Done():
				return w.ctx.Err()
			}
		}
	}
}

func (w *watcher) convert(ev *clientv3.Event) (backend.Event, error) {
	kv := ev.Kv
	switch ev.Type {
	case mvccpb.PUT:
		it, _, err := w.b.item(kv.Key, kv.Value, kv.ModRevision)
		if err != nil {
			return backend.Event{}, err
		}
		return backend.Event{Type: backend.EventPut, Item: it}, nil
	case mvccpb.DELETE:
		// A delete carries the revision of the delete in ModRevision.
		return backend.Event{Type: backend.EventDelete, Item: backend.Item{Key: w.b.trim(kv.Key), Revision: kv.ModRevision}}, nil
	default:
		return backend.Event{}, fmt.Errorf("etcd backend: unknown watch event type %v", ev.Type)
	}
}

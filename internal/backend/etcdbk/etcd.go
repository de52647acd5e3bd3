// Package etcdbk is Keyport's HA backend: every auth and proxy process talks to one etcd
// cluster and sees the others' writes through etcd watches.
//
// Keys live under a configurable prefix. Revisions are etcd's own ModRevision, so they
// are global to the cluster (other users of the same etcd move them too) and history
// compaction is etcd's. Each value is stored in a small envelope that carries its expiry
// time: etcd leases do the actual removal (and so produce the delete events), but they
// fire on the server's wall clock and at whole-second granularity, so reads and
// conditional writes also check the envelope against the injected clock. That makes an
// item invisible the moment it expires, exactly as in the SQLite backend.
package etcdbk

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/keyport/keyport/internal/backend"
	"github.com/keyport/keyport/internal/clock"
	"github.com/keyport/keyport/internal/errs"
)

// Defaults for Config.
const (
	DefaultPrefix      = "/keyport/"
	DefaultDialTimeout = 5 * time.Second
)

// Config configures the etcd backend.
type Config struct {
	// Endpoints are the etcd client URLs.
	Endpoints []string
	// Prefix is prepended to every key, so several Keyport clusters (or other
	// applications) can share one etcd. A trailing "/" is added if missing.
	Prefix string
	// TLS is used for the client connection when set (and required for https
	// endpoints).
	TLS *tls.Config
	// DialTimeout bounds connecting and the initial health check in New.
	DialTimeout time.Duration
	// Clock decides expiry and lease TTLs. Defaults to the wall clock.
	Clock clock.Clock
	// Logger defaults to discarding.
	Logger *slog.Logger
}

// CheckAndSetDefaults validates c and fills in defaults.
func (c *Config) CheckAndSetDefaults() error {
	if len(c.Endpoints) == 0 {
		return errs.BadParameterf("etcd backend: at least one endpoint is required")
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if !strings.HasSuffix(c.Prefix, "/") {
		c.Prefix += "/"
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.Clock == nil {
		c.Clock = clock.Real()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Backend is the etcd implementation of backend.Backend.
type Backend struct {
	cfg    Config
	client *clientv3.Client
	prefix string
	clock  clock.Clock
	log    *slog.Logger

	ctx       context.Context // done when Close starts
	cancel    context.CancelFunc
	mu        sync.Mutex // orders wg.Add before wg.Wait in Close
	closing   bool
	wg        sync.WaitGroup // watchers and lease revocations
	closeOnce sync.Once
	closeErr  error
}

var _ backend.Backend = (*Backend)(nil)

// New connects to etcd and checks that it answers within cfg.DialTimeout.
func New(ctx context.Context, cfg Config) (*Backend, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, err
	}
	client, err := clientv3.New(clientv3.Config{
		Endpoints:   cfg.Endpoints,
		TLS:         cfg.TLS,
		DialTimeout: cfg.DialTimeout,
		// Keepalives notice a dead member in seconds rather than at the next write,
		// so watches fail over.
		DialKeepAliveTime:    30 * time.Second,
		DialKeepAliveTimeout: 10 * time.Second,
		// The client logs through zap; our errors already reach the caller.
		Logger: zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("etcd backend: connecting to %v: %w", cfg.Endpoints, err)
	}
	b := &Backend{cfg: cfg, client: client, prefix: cfg.Prefix, clock: cfg.Clock, log: cfg.Logger}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	// clientv3 dials lazily; a wrong endpoint should fail here, not at the first request.
	hctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	if _, err := client.Get(hctx, b.prefix, clientv3.WithCountOnly()); err != nil {
		_ = b.Close()
		return nil, fmt.Errorf("etcd backend: reaching %v: %w", cfg.Endpoints, err)
	}
	return b, nil
}

// Close ends every watcher and closes the client.
func (b *Backend) Close() error {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closing = true
		b.mu.Unlock()
		b.cancel()
		b.wg.Wait()
		b.closeErr = b.client.Close()
	})
	return b.closeErr
}

func (b *Backend) checkOpen() error {
	if b.ctx.Err() != nil {
		return backend.ErrClosed
	}
	return nil
}

// fail wraps an etcd error for op. Errors caused by Close are reported as ErrClosed.
func (b *Backend) fail(op string, err error) error {
	if b.ctx.Err() != nil {
		return backend.ErrClosed
	}
	return fmt.Errorf("etcd backend: %s: %w", op, err)
}

func (b *Backend) key(k []byte) string { return b.prefix + string(k) }

func (b *Backend) trim(k []byte) []byte { return []byte(strings.TrimPrefix(string(k), b.prefix)) }

// The envelope is a version byte, the expiry as big-endian Unix nanoseconds (0: never)
// and the value. The version byte leaves room to change the layout later.
const (
	envelopeVersion = 1
	envelopeHeader  = 9
)

func encode(value []byte, expires time.Time) string {
	buf := make([]byte, envelopeHeader+len(value))
	buf[0] = envelopeVersion
	if !expires.IsZero() {
		binary.BigEndian.PutUint64(buf[1:envelopeHeader], uint64(expires.UnixNano()))
	}
	copy(buf[envelopeHeader:], value)
	return string(buf)
}

var errEnvelope = errors.New("etcd backend: stored value is not in Keyport's format")

func decode(raw []byte) (value []byte, expires time.Time, err error) {
	if len(raw) < envelopeHeader || raw[0] != envelopeVersion {
		return nil, time.Time{}, errEnvelope
	}
	if n := int64(binary.BigEndian.Uint64(raw[1:envelopeHeader])); n != 0 {
		expires = time.Unix(0, n)
	}
	return append([]byte{}, raw[envelopeHeader:]...), expires, nil
}

// live reports whether an item with this expiry is visible now.
func (b *Backend) live(expires time.Time) bool {
	return expires.IsZero() || b.clock.Now().Before(expires)
}

// item decodes a stored key-value and reports whether it is live.
func (b *Backend) item(key, raw []byte, rev int64) (backend.Item, bool, error) {
	value, expires, err := decode(raw)
	if err != nil {
		return backend.Item{}, false, err
	}
	return backend.Item{Key: b.trim(key), Value: value, Expires: expires, Revision: rev}, b.live(expires), nil
}

func checkKey(key []byte) error {
	if len(key) == 0 {
		return errs.BadParameterf("backend: key must not be empty")
	}
	return nil
}

// Get implements backend.Backend.
func (b *Backend) Get(ctx context.Context, key []byte) (*backend.Item, error) {
	if err := b.checkOpen(); err != nil {
		return nil, err
	}
	if err := checkKey(key); err != nil {
		return nil, err
	}
	resp, err := b.client.Get(ctx, b.key(key))
	if err != nil {
		return nil, b.fail("get", err)
	}
	if len(resp.Kvs) == 0 {
		return nil, errs.NotFoundf("backend: key not found")
	}
	kv := resp.Kvs[0]
	it, live, err := b.item(kv.Key, kv.Value, kv.ModRevision)
	if err != nil {
		return nil, err
	}
	if !live {
		return nil, errs.NotFoundf("backend: key not found")
	}
	return &it, nil
}

// rangePage bounds one range request, so a large range is read in several bounded
// responses instead of one that could reach the gRPC message limit.
const rangePage = 500

// GetRange implements backend.Backend.
func (b *Backend) GetRange(ctx context.Context, prefix []byte, limit int) ([]backend.Item, error) {
	if err := b.checkOpen(); err != nil {
		return nil, err
	}
	start := b.key(prefix)
	end := clientv3.GetPrefixRangeEnd(start)
	page := int64(rangePage)
	if limit > 0 && limit < rangePage {
		page = int64(limit)
	}
	var items []backend.Item
	var rev int64
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(page)}
		if rev != 0 {
			// Later pages read the same snapshot as the first.
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := b.client.Get(ctx, start, opts...)
		if err != nil {
			return nil, b.fail("get range", err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			it, live, err := b.item(kv.Key, kv.Value, kv.ModRevision)
			if err != nil {
				return nil, err
			}
			// Expired items still in etcd are skipped here rather than counted against
			// limit, which is why a short page does not mean the range is done.
			if !live {
				continue
			}
			items = append(items, it)
			if limit > 0 && len(items) == limit {
				return items, nil
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return items, nil
		}
		start = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// CurrentRevision implements backend.Backend.
func (b *Backend) CurrentRevision(ctx context.Context) (int64, error) {
	if err := b.checkOpen(); err != nil {
		return 0, err
	}
	resp, err := b.client.Get(ctx, b.prefix, clientv3.WithCountOnly())
	if err != nil {
		return 0, b.fail("current revision", err)
	}
	return resp.Header.Revision, nil
}

// putOp builds the write of i, granting a lease when the item expires. The caller must
// pass the returned lease to revoke if the write does not happen.
func (b *Backend) putOp(ctx context.Context, i backend.Item) (clientv3.Op, clientv3.LeaseID, error) {
	if err := checkKey(i.Key); err != nil {
		return clientv3.Op{}, 0, err
	}
	if i.Expires.IsZero() {
		return clientv3.OpPut(b.key(i.Key), encode(i.Value, i.Expires)), clientv3.NoLease, nil
	}
	// Whole seconds, rounded up, so etcd never removes an item before it expires;
	// reads hide it on time regardless. The server raises very short TTLs to its
	// minimum (about 2s), which only delays the delete event.
	ttl := max(int64(math.Ceil(i.Expires.Sub(b.clock.Now()).Seconds())), 1)
	lease, err := b.client.Grant(ctx, ttl)
	if err != nil {
		return clientv3.Op{}, 0, b.fail("grant lease", err)
	}
	return clientv3.OpPut(b.key(i.Key), encode(i.Value, i.Expires), clientv3.WithLease(lease.ID)), lease.ID, nil
}

// revoke drops leases that no longer hold a key: one replaced by a newer write, or one
// granted for a write that did not happen. It is only housekeeping (an orphaned lease
// just waits out its TTL), so it runs in the background and its errors are logged.
func (b *Backend) revoke(ids ...clientv3.LeaseID) {
	var live []clientv3.LeaseID
	for _, id := range ids {
		if id != clientv3.NoLease {
			live = append(live, id)
		}
	}
	if len(live) == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closing {
		return
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
		defer cancel()
		for _, id := range live {
			if _, err := b.client.Revoke(ctx, id); err != nil && ctx.Err() == nil {
				b.log.Debug("Revoking an unused lease failed; it will expire on its own.", "error", err)
			}
		}
	}()
}

// oldLease reads the lease of the key-value a transaction's keys-only Get returned.
func oldLease(r *clientv3.TxnResponse, idx int) clientv3.LeaseID {
	if idx >= len(r.Responses) {
		return clientv3.NoLease
	}
	rr := r.Responses[idx].GetResponseRange()
	if rr == nil || len(rr.Kvs) == 0 {
		return clientv3.NoLease
	}
	return clientv3.LeaseID(rr.Kvs[0].Lease)
}

// Put implements backend.Backend.
func (b *Backend) Put(ctx context.Context, i backend.Item) (int64, error) {
	if err := b.checkOpen(); err != nil {
		return 0, err
	}
	op, lease, err := b.putOp(ctx, i)
	if err != nil {
		return 0, err
	}
	k := b.key(i.Key)
	// The keys-only Get in the same transaction finds the lease being replaced.
	resp, err := b.client.Txn(ctx).Then(clientv3.OpGet(k, clientv3.WithKeysOnly()), op).Commit()
	if err != nil {
		b.revoke(lease)
		return 0, b.fail("put", err)
	}
	b.revoke(oldLease(resp, 0))
	return resp.Header.Revision, nil
}

// Create implements backend.Backend.
func (b *Backend) Create(ctx context.Context, i backend.Item) (int64, error) {
	if err := b.checkOpen(); err != nil {
		return 0, err
	}
	op, lease, err := b.putOp(ctx, i)
	if err != nil {
		return 0, err
	}
	k := b.key(i.Key)
	cmp := clientv3.Compare(clientv3.CreateRevision(k), "=", 0)
	replaced := clientv3.NoLease
	// Each retry follows a concurrent change to the key; a few are plenty.
	for range 5 {
		resp, err := b.client.Txn(ctx).If(cmp).Then(op).Else(clientv3.OpGet(k)).Commit()
		if err != nil {
			b.revoke(lease)
			return 0, b.fail("create", err)
		}
		if resp.Succeeded {
			b.revoke(replaced)
			return resp.Header.Revision, nil
		}
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 {
			cmp = clientv3.Compare(clientv3.CreateRevision(k), "=", 0)
			continue
		}
		kv := kvs[0]
		_, live, err := b.item(kv.Key, kv.Value, kv.ModRevision)
		if err == nil && live {
			b.revoke(lease)
			return 0, errs.AlreadyExistsf("backend: key already exists")
		}
		// Expired but not yet removed by its lease: it counts as missing, so replace
		// exactly that version of it.
		cmp = clientv3.Compare(clientv3.ModRevision(k), "=", kv.ModRevision)
		replaced = clientv3.LeaseID(kv.Lease)
	}
	b.revoke(lease)
	return 0, errs.AlreadyExistsf("backend: key already exists (it kept changing)")
}

// CompareAndSwap implements backend.Backend.
func (b *Backend) CompareAndSwap(ctx context.Context, i backend.Item, expectedRevision int64) (int64, error) {
	if err := b.checkOpen(); err != nil {
		return 0, err
	}
	if expectedRevision <= 0 {
		return 0, errs.BadParameterf("backend: expected revision must be positive")
	}
	op, lease, err := b.putOp(ctx, i)
	if err != nil {
		return 0, err
	}
	k := b.key(i.Key)
	sameRev := clientv3.Compare(clientv3.ModRevision(k), "=", expectedRevision)
	// Fast path: an item without a lease cannot have expired, so the revision check is
	// the whole condition and one round trip does.
	noLease := clientv3.Compare(clientv3.LeaseValue(k), "=", clientv3.NoLease)
	resp, err := b.client.Txn(ctx).If(sameRev, noLease).Then(op).Else(clientv3.OpGet(k)).Commit()
	if err != nil {
		b.revoke(lease)
		return 0, b.fail("compare and swap", err)
	}
	if resp.Succeeded {
		return resp.Header.Revision, nil
	}
	if err := b.casFailure(resp, expectedRevision); err != nil {
		b.revoke(lease)
		return 0, err
	}
	// The item is at the expected revision, has a lease and has not expired by our
	// clock: swap it if it is still that version.
	replaced := clientv3.LeaseID(resp.Responses[0].GetResponseRange().Kvs[0].Lease)
	resp, err = b.client.Txn(ctx).If(sameRev).Then(op).Else(clientv3.OpGet(k)).Commit()
	if err != nil {
		b.revoke(lease)
		return 0, b.fail("compare and swap", err)
	}
	if !resp.Succeeded {
		b.revoke(lease)
		if err := b.casFailure(resp, expectedRevision); err != nil {
			return 0, err
		}
		return 0, errs.CompareFailedf("backend: key changed during compare and swap")
	}
	b.revoke(replaced)
	return resp.Header.Revision, nil
}

// casFailure turns the Else branch of a failed swap into the caller's error, or nil when
// the key is live at the expected revision (it only failed the no-lease check).
func (b *Backend) casFailure(resp *clientv3.TxnResponse, expected int64) error {
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return errs.NotFoundf("backend: key not found")
	}
	kv := kvs[0]
	_, live, err := b.item(kv.Key, kv.Value, kv.ModRevision)
	if err != nil {
		return err
	}
	if !live {
		return errs.NotFoundf("backend: key not found")
	}
	if kv.ModRevision != expected {
		return errs.CompareFailedf("backend: key is at revision %d, not %d", kv.ModRevision, expected)
	}
	return nil
}

// Delete implements backend.Backend.
func (b *Backend) Delete(ctx context.Context, key []byte) error {
	if err := b.checkOpen(); err != nil {
		return err
	}
	if err := checkKey(key); err != nil {
		return err
	}
	resp, err := b.client.Delete(ctx, b.key(key), clientv3.WithPrevKV())
	if err != nil {
		return b.fail("delete", err)
	}
	if resp.Deleted == 0 || len(resp.PrevKvs) == 0 {
		return errs.NotFoundf("backend: key not found")
	}
	prev := resp.PrevKvs[0]
	b.revoke(clientv3.LeaseID(prev.Lease))
	// An item that had expired by our clock was already gone to readers; removing it
	// early changes nothing they could see, but the caller deleted nothing.
	if _, live, err := b.item(prev.Key, prev.Value, prev.ModRevision); err == nil && !live {
		return errs.NotFoundf("backend: key not found")
	}
	return nil
}

// DeleteRange implements backend.Backend.
func (b *Backend) DeleteRange(ctx context.Context, prefix []byte) error {
	if err := b.checkOpen(); err != nil {
		return err
	}
	start := b.key(prefix)
	end := clientv3.GetPrefixRangeEnd(start)
	// The keys-only Get in the same transaction finds the leases to drop without
	// transferring the values being deleted.
	resp, err := b.client.Txn(ctx).Then(
		clientv3.OpGet(start, clientv3.WithRange(end), clientv3.WithKeysOnly()),
		clientv3.OpDelete(start, clientv3.WithRange(end)),
	).Commit()
	if err != nil {
		return b.fail("delete range", err)
	}
	var leases []clientv3.LeaseID
	for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
		leases = append(leases, clientv3.LeaseID(kv.Lease))
	}
	b.revoke(leases...)
	return nil
}

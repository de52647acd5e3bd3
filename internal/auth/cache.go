package auth

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/keyport/keyport/internal/backend"
	"github.com/keyport/keyport/internal/clock"
	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/tlsca"
	"github.com/keyport/keyport/internal/types"
)

// cachedKinds are the kinds every process keeps in memory: what authorisation and lock
// checks read on every request.
var cachedKinds = []string{types.KindRole, types.KindUser, types.KindBot, types.KindLock, types.KindKubeCluster}

// Cache is an in-memory view of roles, users, bots, locks and kube clusters, fed by a
// backend watch, so that every process — auth or proxy, on one SQLite file or one etcd —
// sees writes made through any other within moments and without polling.
type Cache struct {
	backend backend.Backend
	clock   clock.Clock
	logger  *slog.Logger

	mu        sync.RWMutex
	resources map[string]map[string]types.Resource
	revision  int64
	subs      []chan struct{}

	cancel context.CancelFunc
	done   chan struct{}
	ready  chan struct{}
}

// NewCache loads the cached kinds and starts following changes.
func NewCache(ctx context.Context, b backend.Backend, clk clock.Clock, logger *slog.Logger) (*Cache, error) {
	c := &Cache{backend: b, clock: clk, logger: logger, resources: map[string]map[string]types.Resource{},
		done: make(chan struct{}), ready: make(chan struct{})}
	if err := c.load(ctx); err != nil {
		return nil, err
	}
	close(c.ready)
	runCtx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	go c.run(runCtx)
	return c, nil
}

// load lists everything, remembering the revision before the list so that the watch
// that follows misses nothing (replaying a few writes twice is harmless).
func (c *Cache) load(ctx context.Context) error {
	rev, err := c.backend.CurrentRevision(ctx)
	if err != nil {
		return err
	}
	fresh := map[string]map[string]types.Resource{}
	for _, k := range cachedKinds {
		fresh[k] = map[string]types.Resource{}
	}
	items, err := c.backend.GetRange(ctx, []byte(ResourcePrefix), 0)
	if err != nil {
		return err
	}
	for i := range items {
		kind, name, ok := splitResourceKey(items[i].Key)
		if !ok || fresh[kind] == nil {
			continue
		}
		r, err := decodeItem(&items[i])
		if err != nil {
			c.logger.Warn("skipping undecodable resource", "kind", kind, "name", name, "error", err)
			continue
		}
		fresh[kind][name] = r
	}
	c.mu.Lock()
	c.resources = fresh
	c.revision = rev
	c.mu.Unlock()
	c.notify()
	return nil
}

func splitResourceKey(key []byte) (kind, name string, ok bool) {
	rest, found := strings.CutPrefix(string(key), ResourcePrefix)
	if !found {
		return "", "", false
	}
	return strings.Cut(rest, "/")
}

func (c *Cache) run(ctx context.Context) {
	defer close(c.done)
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		c.mu.RLock()
		from := c.revision
		c.mu.RUnlock()
		w, err := c.backend.Watch(ctx, []byte(ResourcePrefix), from)
		if err == nil {
			backoff = 100 * time.Millisecond
			for ev := range w.Events() {
				c.apply(ev)
			}
			err = w.Err()
			_ = w.Close()
		}
		if ctx.Err() != nil {
			return
		}
		if backend.IsCompacted(err) {
			if lerr := c.load(ctx); lerr != nil {
				c.logger.Warn("reloading cache", "error", lerr)
			}
			continue
		}
		if err != nil {
			c.logger.Warn("cache watch ended; restarting", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-c.clock.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (c *Cache) apply(ev backend.Event) {
	kind, name, ok := splitResourceKey(ev.Item.Key)
	c.mu.Lock()
	if ev.Item.Revision > c.revision {
		c.revision = ev.Item.Revision
	}
	if !ok || c.resources[kind] == nil {
		c.mu.Unlock()
		return
	}
	switch ev.Type {
	case backend.EventPut:
		r, err := decodeItem(&ev.Item)
		if err != nil {
			c.mu.Unlock()
			c.logger.Warn("skipping undecodable resource", "kind", kind, "name", name, "error", err)
			return
		}
		c.resources[kind][name] = r
	case backend.EventDelete:
		delete(c.resources[kind], name)
	}
	c.mu.Unlock()
	c.notify()
}

// Subscribe returns a channel that receives a value (coalesced) after every change, so
// that a proxy can re-check locks on open streams at once.
func (c *Cache) Subscribe() <-chan struct{} {
	ch := make(chan struct{}, 1)
	c.mu.Lock()
	c.subs = append(c.subs, ch)
	c.mu.Unlock()
	return ch
}

func (c *Cache) notify() {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, ch := range c.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Close stops following changes.
func (c *Cache) Close() {
	if c.cancel != nil {
		c.cancel()
		<-c.done
	}
}

// Get returns a cached resource.
func (c *Cache) Get(kind, name string) (types.Resource, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	r, ok := c.resources[kind][name]
	if !ok {
		return nil, errs.NotFoundf("%s %q not found", kind, name)
	}
	return r, nil
}

// List returns the cached resources of kind.
func (c *Cache) List(kind string) []types.Resource {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]types.Resource, 0, len(c.resources[kind]))
	for _, r := range c.resources[kind] {
		out = append(out, r)
	}
	return out
}

// Roles returns the named roles; missing roles are skipped (a deleted role grants nothing).
func (c *Cache) Roles(names []string) []*types.Role {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]*types.Role, 0, len(names))
	for _, n := range names {
		if r, ok := c.resources[types.KindRole][n].(*types.Role); ok {
			out = append(out, r)
		}
	}
	return out
}

// LockFor returns the first lock in force that targets id, or nil.
func (c *Cache) LockFor(id *tlsca.Identity) *types.Lock {
	now := c.clock.Now()
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, r := range c.resources[types.KindLock] {
		l := r.(*types.Lock)
		if l.Spec.Expires != nil && !now.Before(*l.Spec.Expires) {
			continue
		}
		if lockMatches(l.Spec.Target, id) {
			return l
		}
	}
	// A locked user (spec.status.is_locked) is locked everywhere too.
	if u, ok := c.resources[types.KindUser][id.Username].(*types.User); ok && u.Spec.Status.IsLocked {
		if u.Spec.Status.LockExpires == nil || now.Before(*u.Spec.Status.LockExpires) {
			msg := u.Spec.Status.LockedMessage
			if msg == "" {
				msg = "user is locked"
			}
			return &types.Lock{Spec: types.LockSpec{Target: types.LockTarget{User: id.Username}, Message: msg}}
		}
	}
	return nil
}

func lockMatches(t types.LockTarget, id *tlsca.Identity) bool {
	switch {
	case t.User != "":
		return t.User == id.Username
	case t.Bot != "":
		return t.Bot == id.BotName
	case t.BotInstanceID != "":
		return t.BotInstanceID == id.BotInstanceID
	case t.AccessRequest != "":
		return slices.Contains(id.ActiveRequests, t.AccessRequest)
	case t.Role != "":
		for _, r := range id.Roles {
			if r == t.Role {
				return true
			}
		}
	}
	return false
}

// Package backend owns Keyport's storage contract: a revisioned key-value store with
// expiring items and ordered, resumable watches. Auth and proxy processes keep all shared
// state behind this interface, so the SQLite backend (one node) and the etcd backend (HA)
// are interchangeable; package backendtest holds the conformance suite both must pass.
//
// Errors never include keys or values: keys can embed secrets such as join token names,
// so callers add whatever context is safe to show.
package backend

import (
	"context"
	"errors"
	"time"
)

// Item is one stored key and its value.
type Item struct {
	Key   []byte
	Value []byte
	// Expires is when the item stops being visible; zero means never.
	Expires time.Time
	// Revision is set by the backend: the revision of the last write to this key. It is
	// what CompareAndSwap compares against.
	Revision int64
}

// EventType says what happened to a key.
type EventType int

// The event types. Expiry is reported as EventDelete: watchers cannot tell it from an
// explicit delete, and need not.
const (
	EventPut EventType = iota + 1
	EventDelete
)

func (t EventType) String() string {
	switch t {
	case EventPut:
		return "put"
	case EventDelete:
		return "delete"
	default:
		return "unknown"
	}
}

// Event is one change seen by a watcher. For deletes, Item holds only Key and Revision
// (the revision of the delete).
type Event struct {
	Type EventType
	Item Item
}

// Backend is a revisioned key-value store. Every write gets a revision larger than any
// before it; revisions are global to the store (not per key and not per prefix), so a
// caller can list, remember the revision, and watch from there without gaps.
type Backend interface {
	// Get returns the item at key, or an errs.NotFound error when it is missing or expired.
	Get(ctx context.Context, key []byte) (*Item, error)
	// GetRange returns the live items whose keys start with prefix, sorted by key.
	// limit <= 0 means no limit.
	GetRange(ctx context.Context, prefix []byte, limit int) ([]Item, error)
	// Create writes i only if its key does not exist (or has expired); otherwise it fails
	// with errs.AlreadyExists. It returns the new revision.
	Create(ctx context.Context, i Item) (int64, error)
	// Put writes i whether or not its key exists and returns the new revision.
	Put(ctx context.Context, i Item) (int64, error)
	// CompareAndSwap writes i only if its key's current revision is expectedRevision. It
	// fails with errs.CompareFailed if the revision differs and errs.NotFound if the key
	// is missing or expired.
	CompareAndSwap(ctx context.Context, i Item, expectedRevision int64) (int64, error)
	// Delete removes key, or fails with errs.NotFound if it is missing or expired.
	Delete(ctx context.Context, key []byte) error
	// DeleteRange removes every key that starts with prefix. Nothing to delete is not an
	// error.
	DeleteRange(ctx context.Context, prefix []byte) error
	// Watch delivers, in revision order, every put and delete under prefix with a
	// revision greater than fromRevision. fromRevision 0 means "from now on": only
	// writes made after Watch returns. If fromRevision is older than the history the
	// backend keeps, Watch or the watcher fails with an error for which IsCompacted is
	// true, and the caller must list again. Expired items produce EventDelete.
	Watch(ctx context.Context, prefix []byte, fromRevision int64) (Watcher, error)
	// CurrentRevision returns the revision of the latest write to the store.
	CurrentRevision(ctx context.Context) (int64, error)
	// Close releases the store and ends every watcher.
	Close() error
}

// Watcher is a stream of events started by Backend.Watch.
type Watcher interface {
	// Events is closed when the watcher ends: its context is done, Close is called, the
	// backend is closed, or an error occurs.
	Events() <-chan Event
	// Err says why the watcher ended, once Events is closed. It is nil after Close or
	// cancellation of the watch context, ErrClosed when the backend was closed, and an
	// error for which IsCompacted is true when the watcher fell behind the kept history.
	Err() error
	// Close ends the watcher. Events is closed by the time Close returns.
	Close() error
}

// ErrCompacted is wrapped by errors reporting that a watch asked for history the backend
// no longer keeps. Test with IsCompacted.
var ErrCompacted = errors.New("backend: requested revision has been compacted")

// ErrClosed is returned by watchers (and calls) that end because the backend was closed.
var ErrClosed = errors.New("backend: closed")

// IsCompacted reports whether err means the requested watch history is gone, so the
// caller must list again and watch from the listed revision.
func IsCompacted(err error) bool { return errors.Is(err, ErrCompacted) }

// PrefixEnd returns the smallest key greater than every key that starts with prefix, or
// nil when there is none (prefix is empty or all 0xff bytes), meaning "no upper bound".
// Range scans use [prefix, PrefixEnd(prefix)) so "a/" never matches "ab".
func PrefixEnd(prefix []byte) []byte {
	end := append([]byte(nil), prefix...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// Package bufpool owns the pools of copy buffers that the proxy and the Kubernetes
// Service hand to httputil.ReverseProxy: without one it allocates 32 KiB per request.
package bufpool

import "sync"

// Pool hands out buffers of one size. It implements httputil.BufferPool.
type Pool struct {
	size int
	p    sync.Pool
}

// New returns a pool of size-byte buffers.
func New(size int) *Pool { return &Pool{size: size} }

// Get returns a buffer of the pool's size.
func (b *Pool) Get() []byte {
	if buf, ok := b.p.Get().(*[]byte); ok {
		return *buf
	}
	return make([]byte, b.size)
}

// Put returns buf to the pool.
func (b *Pool) Put(buf []byte) { b.p.Put(&buf) }

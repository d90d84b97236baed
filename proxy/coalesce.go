package proxy

import (
	"errors"
	"sync"
)

// errFetchAborted reaches waiters when the leader's fetch ended without a result.
var errFetchAborted = errors.New("origin fetch aborted")

// Coalescer makes concurrent misses for one key share one origin fetch. Unlike nginx's proxy_cache_lock, which
// polls every 500 ms, waiters block on a channel that the leader closes, so they wake the moment the fetch ends.
type Coalescer[T any] struct {
	mu    sync.Mutex
	calls map[string]*call[T]
}

type call[T any] struct {
	done    chan struct{}
	val     T
	err     error
	waiters int
}

// NewCoalescer returns an empty Coalescer.
func NewCoalescer[T any]() *Coalescer[T] {
	return &Coalescer[T]{calls: make(map[string]*call[T])}
}

// Do runs fn once per key among concurrent callers. Every caller gets the leader's value and error: an origin
// error reaches every waiter and, since nothing is stored here after the call ends, is never kept as success.
// shared reports whether this caller waited on another's fetch.
func (c *Coalescer[T]) Do(key []byte, fn func() (T, error)) (val T, err error, shared bool) {
	c.mu.Lock()
	if cl, ok := c.calls[string(key)]; ok {
		cl.waiters++
		c.mu.Unlock()
		<-cl.done
		return cl.val, cl.err, true
	}
	cl := &call[T]{done: make(chan struct{})}
	k := string(key)
	c.calls[k] = cl
	c.mu.Unlock()

	// The leader must always release its waiters, even if fn panics, or they would block forever.
	defer func() {
		c.mu.Lock()
		delete(c.calls, k)
		c.mu.Unlock()
		close(cl.done)
	}()
	cl.err = errFetchAborted
	cl.val, cl.err = fn()
	return cl.val, cl.err, false
}

// InFlight reports the number of keys being fetched now.
func (c *Coalescer[T]) InFlight() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.calls)
}

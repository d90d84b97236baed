// Package flight makes concurrent calls for one key share a single execution (origin fetches, backend calls).
package flight

import (
	"errors"
	"fmt"
	"sync"
)

// ErrPanicked is wrapped by the error every caller of a call whose function panicked receives. The panic is
// recovered so that neither the leader's goroutine nor its waiters take the process down, and no waiter blocks.
var ErrPanicked = errors.New("call panicked")

// Group coalesces calls by key. Unlike nginx's proxy_cache_lock, which polls every 500 ms, waiters block on a
// channel the leader closes, so they wake the moment the call ends. Nothing is kept once a call ends: an error
// reaches the callers of that call and is never served to later ones. The zero Group is ready to use.
type Group[K comparable, V any] struct {
	mu    sync.Mutex
	calls map[K]*call[V]
}

type call[V any] struct {
	done    chan struct{}
	val     V
	err     error
	waiters int
}

// Do runs fn once among the concurrent callers with the same key; every caller gets the leader's value and
// error. shared reports whether this caller waited on another's call.
func (g *Group[K, V]) Do(key K, fn func() (V, error)) (val V, err error, shared bool) {
	g.mu.Lock()
	if c, ok := g.calls[key]; ok {
		c.waiters++
		g.mu.Unlock()
		<-c.done
		return c.val, c.err, true
	}
	if g.calls == nil {
		g.calls = make(map[K]*call[V])
	}
	c := &call[V]{done: make(chan struct{})}
	g.calls[key] = c
	g.mu.Unlock()

	defer func() {
		// Released on every path, a panic included, or the waiters would block forever.
		if p := recover(); p != nil {
			var zero V
			c.val, c.err = zero, fmt.Errorf("%w: %v", ErrPanicked, p)
		}
		g.mu.Lock()
		delete(g.calls, key)
		g.mu.Unlock()
		close(c.done)
		val, err = c.val, c.err
	}()
	c.val, c.err = fn()
	return c.val, c.err, false
}

// InFlight reports the number of keys with a call running now.
func (g *Group[K, V]) InFlight() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.calls)
}

// Waiters reports how many callers wait on the running call for key (the leader not counted). Tests use it to
// know every caller has joined before they let the leader finish, instead of sleeping and hoping.
func (g *Group[K, V]) Waiters(key K) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if c, ok := g.calls[key]; ok {
		return c.waiters
	}
	return 0
}

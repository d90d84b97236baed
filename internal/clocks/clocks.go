// Package clocks holds the clocks the load harness, the synthetic origin and the edge's tests follow: the wall
// clock in a run, and a manual one that tests move on.
package clocks

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Wall is the system clock.
type Wall struct{}

// Now returns time.Now().
func (Wall) Now() time.Time { return time.Now() }

// SleepUntil waits until t, or until ctx is done, and reports whether t came first.
func (Wall) SleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Manual moves only when a test advances it. It counts the goroutines asleep on it, so that a test can wait until
// a run's goroutines (or the requests an origin holds) sleep before it moves time on: what they did by then no
// longer depends on how fast the machine is.
type Manual struct {
	mu       sync.Mutex
	now      time.Time
	sleepers []*sleeper
	changed  chan struct{} // closed and replaced whenever sleepers changes
}

type sleeper struct {
	at   time.Time
	wake chan struct{}
}

// NewManual returns a manual clock at t.
func NewManual(t time.Time) *Manual {
	return &Manual{now: t, changed: make(chan struct{})}
}

// Now returns the clock's time.
func (c *Manual) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// SleepUntil waits until the clock reaches t, or until ctx is done, and reports whether t came first.
func (c *Manual) SleepUntil(ctx context.Context, t time.Time) bool {
	c.mu.Lock()
	if !t.After(c.now) {
		c.mu.Unlock()
		return ctx.Err() == nil
	}
	s := &sleeper{at: t, wake: make(chan struct{})}
	c.sleepers = append(c.sleepers, s)
	c.notifyLocked()
	c.mu.Unlock()
	select {
	case <-s.wake:
		return true
	case <-ctx.Done():
		c.mu.Lock()
		if i := slices.Index(c.sleepers, s); i >= 0 { // not woken by an Advance in the meantime
			c.sleepers = slices.Delete(c.sleepers, i, i+1)
			c.notifyLocked()
		}
		c.mu.Unlock()
		return false
	}
}

// Advance moves the clock on by d and wakes the sleepers whose time has come.
func (c *Manual) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	n := len(c.sleepers)
	c.sleepers = slices.DeleteFunc(c.sleepers, func(s *sleeper) bool {
		if s.at.After(c.now) {
			return false
		}
		close(s.wake)
		return true
	})
	if len(c.sleepers) != n {
		c.notifyLocked()
	}
}

// AdvanceTo moves the clock on to t; a t not after the clock's time leaves it where it is.
func (c *Manual) AdvanceTo(t time.Time) {
	if d := t.Sub(c.Now()); d > 0 {
		c.Advance(d)
	}
}

func (c *Manual) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// WaitSleepers blocks until ok holds for the number of goroutines asleep on the clock, and returns that number
// and true; or until done is closed, and returns the number then and false.
func (c *Manual) WaitSleepers(ok func(n int) bool, done <-chan struct{}) (int, bool) {
	for {
		c.mu.Lock()
		have, changed := len(c.sleepers), c.changed
		c.mu.Unlock()
		if ok(have) {
			return have, true
		}
		select {
		case <-changed:
		case <-done:
			return have, false
		}
	}
}

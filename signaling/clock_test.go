package signaling

import (
	"strings"
	"sync"
	"testing"
	"time"
)

// manualClock moves only when a test calls Advance. The timers due by then fire in order, on the caller's
// goroutine, before Advance returns: a test that advances past a ping interval knows the ping is queued.
type manualClock struct {
	mu     sync.Mutex
	now    time.Time
	seq    uint64
	timers map[*manualTimer]struct{} // armed ones
}

type manualTimer struct {
	c    *manualClock
	when time.Time
	seq  uint64 // timers due at the same instant fire in the order they were armed
	f    func()
}

// newManualClock starts at the wall clock's now, so that tokens minted against the wall clock are valid.
func newManualClock() *manualClock {
	return &manualClock{now: time.Now(), timers: map[*manualTimer]struct{}{}}
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) AfterFunc(d time.Duration, f func()) timer {
	t := &manualTimer{c: c, f: f}
	t.Reset(d)
	return t
}

// Advance moves the clock by d, firing every timer due on the way at its own instant.
func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	target := c.now.Add(d)
	c.mu.Unlock()
	for {
		c.mu.Lock()
		var next *manualTimer
		for t := range c.timers {
			if t.when.After(target) {
				continue
			}
			if next == nil || t.when.Before(next.when) || (t.when.Equal(next.when) && t.seq < next.seq) {
				next = t
			}
		}
		if next == nil {
			c.now = target
			c.mu.Unlock()
			return
		}
		delete(c.timers, next)
		if next.when.After(c.now) {
			c.now = next.when
		}
		f := next.f
		c.mu.Unlock()
		f() // unlocked: it may arm timers
	}
}

func (t *manualTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	_, armed := t.c.timers[t]
	delete(t.c.timers, t)
	return armed
}

func (t *manualTimer) Reset(d time.Duration) bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	_, armed := t.c.timers[t]
	t.c.seq++
	t.when, t.seq = t.c.now.Add(d), t.c.seq
	t.c.timers[t] = struct{}{}
	return armed
}

func TestManualClock(t *testing.T) {
	c := newManualClock()
	start := c.Now()
	var fired []string
	at := func(name string) func() {
		return func() { fired = append(fired, name+"@"+c.Now().Sub(start).String()) }
	}
	c.AfterFunc(3*time.Second, at("c"))
	c.AfterFunc(time.Second, at("a"))
	stopped := c.AfterFunc(2*time.Second, at("stopped"))
	var again timer
	again = c.AfterFunc(2*time.Second, func() {
		at("b")()
		again.Reset(2 * time.Second) // re-armed from inside its own callback, as the ping timer is
	})
	if !stopped.Stop() || stopped.Stop() {
		t.Fatal("Stop reports whether the timer was armed")
	}
	c.Advance(5 * time.Second)
	want := "a@1s b@2s c@3s b@4s"
	if got := strings.Join(fired, " "); got != want {
		t.Fatalf("fired %s, want %s", got, want)
	}
	if got := c.Now().Sub(start); got != 5*time.Second {
		t.Fatalf("now %v after the advance, want 5s", got)
	}
}

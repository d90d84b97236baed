package bench

import (
	"context"
	"io"
	"slices"
	"sync"
	"testing"
	"time"
)

// manualClock moves only when the test advances it. It counts the goroutines asleep on it, so that a test can
// wait until every goroutine of a run sleeps before it moves time on: what the run did by then no longer depends
// on how fast the machine is.
type manualClock struct {
	mu       sync.Mutex
	now      time.Time
	sleepers []*sleeper
	changed  chan struct{} // closed and replaced whenever sleepers changes
}

type sleeper struct {
	at   time.Time
	wake chan struct{}
}

func newManualClock(t time.Time) *manualClock {
	return &manualClock{now: t, changed: make(chan struct{})}
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) SleepUntil(ctx context.Context, t time.Time) bool {
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
func (c *manualClock) Advance(d time.Duration) {
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

func (c *manualClock) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// waitSleepers blocks until at least n goroutines sleep on the clock, and reports true; or until done is closed,
// and reports false.
func (c *manualClock) waitSleepers(n int, done <-chan struct{}) bool {
	for {
		c.mu.Lock()
		have, changed := len(c.sleepers), c.changed
		c.mu.Unlock()
		if have >= n {
			return true
		}
		select {
		case <-changed:
		case <-done:
			return false
		}
	}
}

// runOnClock runs cfg on clk and drives it: whenever sleepers goroutines of the run sleep (its viewers, and its
// own timer for samples and the end), it moves the clock on by step; until the run returns.
func runOnClock(t *testing.T, clk *manualClock, cfg HLSConfig, progress io.Writer, sleepers int, step time.Duration) *HLSReport {
	t.Helper()
	// A safety net for a run that never ends, not a measure of anything.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var (
		rep  *HLSReport
		err  error
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		rep, err = runHLS(ctx, cfg, progress, clk)
	}()
	for clk.waitSleepers(sleepers, done) {
		clk.Advance(step)
	}
	if err != nil {
		t.Fatalf("RunHLS: %v", err)
	}
	return rep
}

func TestManualClock(t *testing.T) {
	t0 := time.Unix(1000, 0)
	clk := newManualClock(t0)
	ctx, cancel := context.WithCancel(context.Background())
	woke := make(chan bool, 2)
	go func() { woke <- clk.SleepUntil(ctx, t0.Add(time.Second)) }()
	go func() { woke <- clk.SleepUntil(ctx, t0.Add(2*time.Second)) }()
	clk.waitSleepers(2, nil)
	clk.Advance(999 * time.Millisecond)
	clk.Advance(time.Millisecond)
	if !<-woke {
		t.Fatal("a sleeper whose time came was not woken by Advance")
	}
	clk.waitSleepers(1, nil)
	cancel()
	if <-woke {
		t.Fatal("a cancelled sleeper reported its time as reached")
	}
	if !clk.Now().Equal(t0.Add(time.Second)) {
		t.Fatalf("Now %v after advancing 1 s from %v", clk.Now(), t0)
	}
	if clk.SleepUntil(ctx, t0) {
		t.Fatal("SleepUntil a past time with a cancelled context reported true")
	}
	if !clk.SleepUntil(context.Background(), t0) {
		t.Fatal("SleepUntil a past time did not return true at once")
	}
}

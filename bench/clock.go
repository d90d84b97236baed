package bench

import (
	"context"
	"time"
)

// clock is the time a run's schedule follows: when viewers start, poll and play, when samples are taken and when
// the run ends. A run uses the wall clock; tests use a manual one, so that they assert the schedule itself
// however loaded the machine is. Request latencies are always measured on the wall clock.
type clock interface {
	Now() time.Time
	// SleepUntil waits until t or until ctx is done, and reports whether t came first.
	SleepUntil(ctx context.Context, t time.Time) bool
}

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

func (wallClock) SleepUntil(ctx context.Context, t time.Time) bool {
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

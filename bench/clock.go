package bench

import (
	"context"
	"time"
)

// clock is the time a run's schedule follows: when viewers start, poll and play, when samples are taken and when
// the run ends. A run uses the wall clock (clocks.Wall); tests use a manual one (clocks.Manual), so that they
// assert the schedule itself however loaded the machine is. Request latencies are always measured on the wall
// clock.
type clock interface {
	Now() time.Time
	// SleepUntil waits until t or until ctx is done, and reports whether t came first.
	SleepUntil(ctx context.Context, t time.Time) bool
}

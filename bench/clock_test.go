package bench

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/hlsedge/hlsedge/internal/clocks"
)

// runOnClock runs cfg on clk and drives it: whenever sleepers goroutines of the run sleep (its viewers, and its
// own timer for samples and the end), it moves the clock on by step; until the run returns.
func runOnClock(t *testing.T, clk *clocks.Manual, cfg HLSConfig, progress io.Writer, sleepers int, step time.Duration) *HLSReport {
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
	asleep := func(n int) bool { return n >= sleepers }
	for {
		if _, ok := clk.WaitSleepers(asleep, done); !ok {
			break
		}
		clk.Advance(step)
	}
	if err != nil {
		t.Fatalf("RunHLS: %v", err)
	}
	return rep
}

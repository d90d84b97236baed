package synthorigin

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// The live edge follows the clock; Stall and End stop it where it is, so that tests can reach the hold timeouts
// and EXT-X-ENDLIST of a real stream, which a clock-driven origin would otherwise never show.

// liveControl is the state Stall, End and Resume change. Its zero value is a live stream.
type liveControl struct {
	frozenAt atomic.Int64 // unix nanos where Stall or End stopped the live edge; 0 while live
	ended    atomic.Bool  // End: the playlists carry EXT-X-ENDLIST

	stateMu     sync.Mutex
	stateCtx    context.Context // cancelled and replaced at every change, to wake the held requests
	stateCancel context.CancelFunc
}

// liveEdge is where the stream is at one instant.
type liveEdge struct {
	seq   int64 // the segment in progress; seq-1 is the last complete one
	parts int   // parts of seq complete, 0 to Parts-1 (always 0 outside LL mode)
	ended bool
}

// now is the time the live edge is at: the clock's, or where Stall or End stopped it.
func (o *Origin) now() time.Time {
	t := o.cfg.Now()
	if f := o.frozenAt.Load(); f != 0 && t.UnixNano() > f {
		return time.Unix(0, f)
	}
	return t
}

func (o *Origin) edge() liveEdge {
	ns := o.now().UnixNano()
	sd := int64(o.cfg.SegmentDuration)
	seq := floorDiv(ns, sd)
	// (ns - seq*sd) < sd, so the product cannot overflow for any sane segment duration.
	parts := int((ns - seq*sd) * int64(o.cfg.Parts) / sd)
	return liveEdge{seq: seq, parts: parts, ended: o.ended.Load()}
}

// LiveEdge returns the segment in progress and how many of its parts are complete: in LL mode the preload hint
// names part `parts` of segment seq, and seq-1 is the last complete segment. Outside LL mode parts is 0.
func (o *Origin) LiveEdge() (seq int64, parts int) {
	e := o.edge()
	return e.seq, e.parts
}

// Stall freezes the live edge of every channel where it is, as an encoder outage would: playlists stop
// advancing, blocking reloads run into their hold and get 503, and a hinted part being streamed is cut short
// when its hold runs out. Resume ends the outage.
func (o *Origin) Stall() { o.freeze(false) }

// End freezes the live edge and ends the stream: playlists carry EXT-X-ENDLIST, the segment in progress and its
// parts are gone, and blocking reloads are answered at once, their directives ignored (rfc8216bis 6.2.5.2).
// Resume starts the stream again.
func (o *Origin) End() { o.freeze(true) }

// Resume lets the clock drive the live edge again after Stall or End. The window jumps to the present, as it
// does after a real outage.
func (o *Origin) Resume() {
	o.stateMu.Lock()
	defer o.stateMu.Unlock()
	o.ended.Store(false)
	o.frozenAt.Store(0)
	o.wakeLocked()
}

func (o *Origin) freeze(end bool) {
	o.stateMu.Lock()
	defer o.stateMu.Unlock()
	if o.frozenAt.Load() == 0 {
		o.frozenAt.Store(max(o.cfg.Now().UnixNano(), 1))
	}
	if end {
		o.ended.Store(true)
	}
	o.wakeLocked()
}

func (o *Origin) wakeLocked() {
	o.stateCancel()
	o.stateCtx, o.stateCancel = context.WithCancel(o.ctx)
}

func (o *Origin) stateContext() context.Context {
	o.stateMu.Lock()
	defer o.stateMu.Unlock()
	return o.stateCtx
}

type holdResult int

const (
	holdReached  holdResult = iota // the live edge reached the time
	holdEnded                      // End was called first
	holdTimeout                    // the deadline came first (a stall)
	holdShutdown                   // the origin is shutting down
)

// waitFor holds the calling request until the live edge reaches t, the stream ends, deadline passes on the
// clock, or the origin shuts down. A request that waits counts in WaitHeld.
func (o *Origin) waitFor(t, deadline time.Time) holdResult {
	held := false
	defer func() {
		if held {
			o.addHeld(-1)
		}
	}()
	for {
		switch {
		case !o.now().Before(t):
			return holdReached
		case o.ended.Load():
			return holdEnded
		case o.ctx.Err() != nil:
			return holdShutdown
		case !o.cfg.Now().Before(deadline):
			return holdTimeout
		}
		// A stalled edge will not reach t by itself: sleep to the deadline, or until Resume wakes us.
		wake := deadline
		if o.frozenAt.Load() == 0 && t.Before(wake) {
			wake = t
		}
		if !held {
			held = true
			o.addHeld(1)
		}
		o.cfg.SleepUntil(o.stateContext(), wake)
	}
}

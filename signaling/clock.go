package signaling

import "time"

// clock is time as the server's timers and checks see it: pings, idle and expiry closes, reconnect grace, rate
// limits and token times. It is the system clock outside tests, which drive a manual one so that nothing they
// assert depends on how fast a loaded machine runs. Socket deadlines stay on the system clock: they only bound
// a write or the wait for a close frame.
type clock interface {
	Now() time.Time
	// AfterFunc calls f once d has passed, on a goroutine that holds none of the server's locks.
	AfterFunc(d time.Duration, f func()) timer
}

// timer is the part of *time.Timer the server uses.
type timer interface {
	Stop() bool
	Reset(d time.Duration) bool
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) AfterFunc(d time.Duration, f func()) timer { return time.AfterFunc(d, f) }

package authz

import (
	"sync"
	"sync/atomic"
	"time"
)

// ClientCounter is a ViewerState that counts its open sessions as they open and close, so that the counts a
// Flussonic middleware is sent with every call (stream_clients, total_clients) cost a lookup. A ViewerState
// without it is counted through Viewers, at most once a second.
type ClientCounter interface {
	// Clients returns the open sessions watching channel, and the open sessions overall.
	Clients(channel []byte) (stream, total int)
}

// clientCounts answers how many are watching, for the middlewares.
type clientCounts struct {
	exact ClientCounter // nil when the viewer state does not count
	mu    sync.Mutex    // one Viewers call at a time; the others read the previous snapshot
	snap  atomic.Pointer[clientSnapshot]
}

// clientSnapshot is one Viewers call, taken at request time at (unix nanos).
type clientSnapshot struct {
	at       int64
	channels map[string]int
	total    int
}

// snapshotEvery bounds how often a ViewerState without ClientCounter is scanned: Viewers walks every session.
const snapshotEvery = time.Second

func (a *Authorizer) clients(ch []byte, now time.Time) (stream, total int) {
	c := &a.counts
	if c.exact != nil {
		return c.exact.Clients(ch)
	}
	at := now.UnixNano()
	s := c.snap.Load()
	if (s == nil || at-s.at >= int64(snapshotEvery) || at < s.at) && c.mu.TryLock() {
		// Another caller refreshing meanwhile answers from the previous snapshot (or none yet).
		s = &clientSnapshot{at: at, channels: a.state.Viewers(now)}
		for _, n := range s.channels {
			s.total += n
		}
		c.snap.Store(s)
		c.mu.Unlock()
	}
	if s == nil {
		return 0, 0
	}
	return s.channels[string(ch)], s.total
}

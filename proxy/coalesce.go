package proxy

import (
	"sync"

	"github.com/VictoriaMetrics/metrics"

	"github.com/hlsedge/hlsedge/internal/flight"
)

// fetchGroup makes concurrent misses for one key share one origin fetch. Objects that fit the cache are
// coalesced by the flight.Group alone: the leader fetches, every waiter gets the object. A large object (above
// cache.max_object_size) is not buffered, so the flight hands out a sharedStream instead, and the stream stays
// registered here while it can still serve from its first byte, so that viewers who arrive after the flight
// ended join it too rather than asking the origin again.
type fetchGroup struct {
	flight.Group[string, fetchResult]

	mu      sync.Mutex
	streams map[string]*sharedStream

	// cut counts viewers cut from a stream for being too slow, failed origin bodies that ended early on the
	// streamed path, stale playlists served because the origin failed.
	cut, failed, stale *metrics.Counter
}

func newFetchGroup(set *metrics.Set) *fetchGroup {
	return &fetchGroup{
		streams: make(map[string]*sharedStream),
		cut:     set.NewCounter(`hlsedge_stream_viewers_cut_total`),
		failed:  set.NewCounter(`hlsedge_stream_origin_failures_total`),
		stale:   set.NewCounter(`hlsedge_stale_playlists_served_total`),
	}
}

// stream returns the joinable stream for key, or nil.
func (g *fetchGroup) stream(key string) *sharedStream {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.streams[key]
}

func (g *fetchGroup) register(st *sharedStream) {
	g.mu.Lock()
	g.streams[st.key] = st
	g.mu.Unlock()
}

// unregister removes st, unless a newer stream for the same key replaced it already.
func (g *fetchGroup) unregister(st *sharedStream) {
	g.mu.Lock()
	if g.streams[st.key] == st {
		delete(g.streams, st.key)
	}
	g.mu.Unlock()
}

// InFlight reports the origin fetches running now: flights, and large objects still streaming.
func (g *fetchGroup) InFlight() int {
	g.mu.Lock()
	n := len(g.streams)
	g.mu.Unlock()
	return n + g.Group.InFlight()
}

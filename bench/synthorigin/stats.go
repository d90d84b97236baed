package synthorigin

import (
	"sync"
	"sync/atomic"
)

type kind int

const (
	kindMaster kind = iota
	kindPlaylist
	kindSegment
	kindPart
	kindInit
	kindOther
	numKinds
)

// Stats is what GET /stats returns: how many requests reached the origin, by kind and by full request URI
// (query string included, so tests can assert that no token parameter ever reaches it).
type Stats struct {
	// Requests counts every request except those to /stats.
	Requests uint64 `json:"requests"`
	// Kinds counts requests by kind: master, playlist (media playlists, blocking or not), segment, part and init
	// (LL mode), other.
	Kinds map[string]uint64 `json:"kinds"`
	// NotFound counts requests answered 404 (unknown channel or name, segment outside the window).
	NotFound uint64 `json:"notFound"`
	// URIs counts requests by request URI, path and query as received.
	URIs map[string]uint64 `json:"uris"`
	// URIsDropped counts requests left out of URIs because it reached its size bound.
	URIsDropped uint64 `json:"urisDropped"`

	// Blocking counts LL blocking playlist reloads by path and delivery directives
	// ("/play/a001/index.m3u8?_HLS_msn=7&_HLS_part=2", then "&_HLS_skip=YES" for a delta update; other query
	// parameters left out): the cost of each playlist version at the origin.
	Blocking map[string]uint64 `json:"blocking,omitempty"`
	// BlockingRequests counts every blocking reload, those left out of Blocking by its size bound included.
	BlockingRequests uint64 `json:"blockingRequests"`
	// BlockingDropped counts blocking reloads left out of Blocking because it reached its size bound.
	BlockingDropped uint64 `json:"blockingDropped,omitempty"`
	// HoldTimeouts counts LL requests answered 503 because their part did not appear within the hold.
	HoldTimeouts uint64 `json:"holdTimeouts"`
	// BadRequests counts requests answered 400: delivery directives the spec refuses.
	BadRequests uint64 `json:"badRequests"`
	// SkipRequests counts LL playlist requests that carried _HLS_skip, blocking or not, answered or refused.
	SkipRequests uint64 `json:"skipRequests"`
	// DeltaUpdates counts LL playlists served as delta updates, with EXT-X-SKIP in place of older segments.
	DeltaUpdates uint64 `json:"deltaUpdates"`
}

var kindNames = [numKinds]string{"master", "playlist", "segment", "part", "init", "other"}

type originStats struct {
	requests     atomic.Uint64
	kinds        [numKinds]atomic.Uint64
	notFound     atomic.Uint64
	blocking     atomic.Uint64
	holdTimeouts atomic.Uint64
	badRequests  atomic.Uint64
	skipRequests atomic.Uint64
	deltaUpdates atomic.Uint64
	uris         boundedCounts
	blockingKeys boundedCounts
}

// boundedCounts counts by key, up to max distinct keys.
type boundedCounts struct {
	dropped atomic.Uint64
	max     int
	mu      sync.Mutex
	m       map[string]*uint64 // pointers: a hit increments in place, with no key conversion to allocate
}

func (b *boundedCounts) init(max int) {
	b.max = max
	b.m = make(map[string]*uint64)
}

func (b *boundedCounts) add(key []byte) {
	b.mu.Lock()
	// Fast path: a known key is a map increment without allocation; only a new one copies the key.
	if n := b.m[string(key)]; n != nil {
		*n++
	} else if len(b.m) < b.max {
		one := uint64(1)
		b.m[string(key)] = &one
	} else {
		b.dropped.Add(1)
	}
	b.mu.Unlock()
}

func (b *boundedCounts) snapshot() map[string]uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[string]uint64, len(b.m))
	for k, n := range b.m {
		out[k] = *n
	}
	return out
}

func (s *originStats) init(max int) {
	s.uris.init(max)
	s.blockingKeys.init(max)
}

func (s *originStats) count(k kind, uri []byte, notFound bool) {
	s.requests.Add(1)
	s.kinds[k].Add(1)
	if notFound {
		s.notFound.Add(1)
	}
	s.uris.add(uri)
}

// countBlocking counts a blocking reload under its path and the directives it has, as received.
func (s *originStats) countBlocking(path, msn, part, skip []byte, hasMsn, hasPart, hasSkip bool) {
	s.blocking.Add(1)
	var kb [160]byte
	k := append(kb[:0], path...)
	sep := byte('?')
	if hasMsn {
		k = append(k, "?_HLS_msn="...)
		k = append(k, msn...)
		sep = '&'
	}
	if hasPart {
		k = append(k, sep)
		k = append(k, "_HLS_part="...)
		k = append(k, part...)
		sep = '&'
	}
	if hasSkip {
		k = append(k, sep)
		k = append(k, "_HLS_skip="...)
		k = append(k, skip...)
	}
	s.blockingKeys.add(k)
}

func (s *originStats) snapshot() Stats {
	st := Stats{
		Requests:         s.requests.Load(),
		Kinds:            make(map[string]uint64, numKinds),
		NotFound:         s.notFound.Load(),
		URIs:             s.uris.snapshot(),
		URIsDropped:      s.uris.dropped.Load(),
		BlockingRequests: s.blocking.Load(),
		BlockingDropped:  s.blockingKeys.dropped.Load(),
		HoldTimeouts:     s.holdTimeouts.Load(),
		BadRequests:      s.badRequests.Load(),
		SkipRequests:     s.skipRequests.Load(),
		DeltaUpdates:     s.deltaUpdates.Load(),
	}
	for k := range numKinds {
		st.Kinds[kindNames[k]] = s.kinds[k].Load()
	}
	if b := s.blockingKeys.snapshot(); len(b) > 0 {
		st.Blocking = b
	}
	return st
}

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
	kindOther
	numKinds
)

// Stats is what GET /stats returns: how many requests reached the origin, by kind and by full request URI
// (query string included, so tests can assert that no token parameter ever reaches it).
type Stats struct {
	// Requests counts every request except those to /stats.
	Requests uint64 `json:"requests"`
	// Kinds counts requests by kind: master, playlist (media playlists), segment, other.
	Kinds map[string]uint64 `json:"kinds"`
	// NotFound counts requests answered 404 (unknown channel or name, segment outside the window).
	NotFound uint64 `json:"notFound"`
	// URIs counts requests by request URI, path and query as received.
	URIs map[string]uint64 `json:"uris"`
	// URIsDropped counts requests left out of URIs because it reached its size bound.
	URIsDropped uint64 `json:"urisDropped"`
}

var kindNames = [numKinds]string{"master", "playlist", "segment", "other"}

type originStats struct {
	requests atomic.Uint64
	kinds    [numKinds]atomic.Uint64
	notFound atomic.Uint64
	dropped  atomic.Uint64
	max      int
	mu       sync.Mutex
	uris     map[string]*uint64 // pointers: a hit increments in place, with no key conversion to allocate
}

func (s *originStats) init(max int) {
	s.max = max
	s.uris = make(map[string]*uint64)
}

func (s *originStats) count(k kind, uri []byte, notFound bool) {
	s.requests.Add(1)
	s.kinds[k].Add(1)
	if notFound {
		s.notFound.Add(1)
	}
	s.mu.Lock()
	// Fast path: a known URI is a map increment without allocation; only a new one copies the key.
	if n := s.uris[string(uri)]; n != nil {
		*n++
	} else if len(s.uris) < s.max {
		one := uint64(1)
		s.uris[string(uri)] = &one
	} else {
		s.dropped.Add(1)
	}
	s.mu.Unlock()
}

func (s *originStats) snapshot() Stats {
	st := Stats{
		Requests:    s.requests.Load(),
		Kinds:       make(map[string]uint64, numKinds),
		NotFound:    s.notFound.Load(),
		URIsDropped: s.dropped.Load(),
	}
	for k := range numKinds {
		st.Kinds[kindNames[k]] = s.kinds[k].Load()
	}
	s.mu.Lock()
	st.URIs = make(map[string]uint64, len(s.uris))
	for u, n := range s.uris {
		st.URIs[u] = *n
	}
	s.mu.Unlock()
	return st
}

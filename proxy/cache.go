package proxy

import (
	"container/heap"
	"hash/maphash"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/hlsedge/hlsedge/playlist"
)

// object is one cached origin response. It is immutable once built, so any number of viewers may read it
// without locks; it never points into a fasthttp buffer, because those are reused when the handler returns.
type object struct {
	key         string
	body        []byte
	contentType string
	kind        kind
	storedAt    time.Time
	// originAge is the Age the origin gave the object (a shield's cache time, say); Age adds the time since storedAt.
	originAge time.Duration
	// expiresAt ends freshness: after it the object is served only as a stale copy when the origin fails.
	expiresAt time.Time
	// keepUntil is how long the cache holds the object at all: expiresAt, or later for a playlist kept for
	// cache.playlist_stale_if_error.
	keepUntil time.Time

	// tmpl is the playlist parsed once per origin version and rewriter; every viewer's rewrite reuses it. A
	// reload that changes the rewriter (token parameters, origin hosts) has it parsed again, once.
	tmpl   atomic.Pointer[parsedPlaylist]
	tmplMu sync.Mutex
}

// parsedPlaylist is a playlist parsed by one rewriter.
type parsedPlaylist struct {
	rw   *playlist.Rewriter
	tmpl *playlist.Template
	err  error
}

func (o *object) size() int64 { return int64(len(o.body) + len(o.key) + 256) }

// template parses a playlist object once per rewriter, on first use, so that a playlist nobody asks a rewrite
// for costs nothing and one that a thousand viewers ask for is parsed once.
func (o *object) template(rw *playlist.Rewriter) (*playlist.Template, error) {
	// Fast path: parsed already, by this generation's rewriter.
	if p := o.tmpl.Load(); p != nil && p.rw == rw {
		return p.tmpl, p.err
	}
	// Slow path: the first viewer, or the first one after a reload replaced the rewriter.
	o.tmplMu.Lock()
	defer o.tmplMu.Unlock()
	if p := o.tmpl.Load(); p != nil && p.rw == rw {
		return p.tmpl, p.err
	}
	p := &parsedPlaylist{rw: rw}
	p.tmpl, p.err = rw.Parse(o.body)
	o.tmpl.Store(p)
	return p.tmpl, p.err
}

// Cache is the edge's byte-bounded LRU of origin objects with per-object expiry. It is sharded so that viewers
// of different channels do not contend on one lock, but the byte budget is shared: any object up to
// cache.max_object_size fits, and byte pressure evicts the least recently used object of whichever shard holds
// it. Expired objects are removed as they expire (see expire), so memory follows the live window instead of
// filling up to max_bytes.
type Cache struct {
	seed   maphash.Seed
	shards [cacheShards]cacheShard
	// front answers hits without a lock. Every viewer of a channel asks for the same few objects (its live
	// playlist, its newest segments), so a shard's mutex taken on every hit is one lock for all of them, handed
	// from core to core. front is a direct-mapped table of entries served recently: filled on a hit and cleared
	// on removal, both under the entry's shard lock, so it only ever points at entries the shard holds.
	front [cacheFront]atomic.Pointer[cacheEntry]
	// maxBytes is 'cache.max_bytes'; a reload may change it (SetMaxBytes).
	maxBytes atomic.Int64
	bytes    atomic.Int64
	objects  atomic.Int64

	expired, pressure, refused *metrics.Counter

	jan janitor
}

const (
	cacheShards = 16
	// cacheFront is the front table's size: the live playlist and newest segments of some thousand channels.
	cacheFront = 4096
	// cacheTouchEvery is how often a hit from the front takes the shard's lock to mark its entry used. Byte
	// pressure evicts by last use, so it sees a hot object as used at most this long ago.
	cacheTouchEvery = int64(100 * time.Millisecond)
)

type cacheShard struct {
	mu    sync.Mutex
	items map[string]*cacheEntry
	// root is the sentinel of the LRU ring: root.next is the most recently used entry, root.prev the least.
	root cacheEntry
	// exp orders the entries by removeAt, so expiry pops them instead of scanning.
	exp expiryHeap
}

// cacheEntry is an object's place in its shard. The LRU list is intrusive so that neither a hit nor a store
// allocates a list element.
type cacheEntry struct {
	o          *object
	prev, next *cacheEntry
	// hash is the key's hash, which picks the entry's shard and its front slot.
	hash uint64
	// used is when the entry was last served (unix nanoseconds); byte pressure evicts the smallest across shards.
	// Hits from the front read it without the lock, and write it only through the shard (cacheTouchEvery).
	used atomic.Int64
	// removeAt is o.keepUntil in unix nanoseconds.
	removeAt int64
	heapIdx  int
}

// NewCache returns a cache that holds at most maxBytes of objects in all and registers its gauges and counters
// (hlsedge_cache_*) in set.
func NewCache(maxBytes int64, set *metrics.Set) *Cache {
	c := &Cache{seed: maphash.MakeSeed()}
	c.maxBytes.Store(maxBytes)
	for i := range c.shards {
		s := &c.shards[i]
		s.items = make(map[string]*cacheEntry)
		s.root.next, s.root.prev = &s.root, &s.root
	}
	c.expired = set.NewCounter(`hlsedge_cache_evictions_total{reason="expired"}`)
	c.pressure = set.NewCounter(`hlsedge_cache_evictions_total{reason="capacity"}`)
	c.refused = set.NewCounter(`hlsedge_cache_refused_total{reason="too_large"}`)
	set.NewGauge(`hlsedge_cache_bytes`, func() float64 { return float64(c.bytes.Load()) })
	set.NewGauge(`hlsedge_cache_objects`, func() float64 { return float64(c.objects.Load()) })
	set.NewGauge(`hlsedge_cache_max_bytes`, func() float64 { return float64(c.maxBytes.Load()) })
	return c
}

func (c *Cache) hash(key []byte) uint64 { return maphash.Bytes(c.seed, key) }

func (c *Cache) shard(h uint64) *cacheShard { return &c.shards[h%cacheShards] }

// frontSlot takes other bits of the hash than the shard does.
func (c *Cache) frontSlot(h uint64) *atomic.Pointer[cacheEntry] { return &c.front[(h>>32)%cacheFront] }

// Get returns a fresh object. The key is a byte slice so that the hit path (the fast path) does not allocate.
func (c *Cache) Get(key []byte, now time.Time) *object {
	h := c.hash(key)
	t := now.UnixNano()
	slot := c.frontSlot(h)
	if e := slot.Load(); e != nil && e.o.key == string(key) && now.Before(e.o.expiresAt) && t-e.used.Load() < cacheTouchEvery {
		// Fast path: a hot object, marked used a moment ago.
		return e.o
	}
	s := c.shard(h)
	s.mu.Lock()
	e := s.items[string(key)]
	if e == nil {
		s.mu.Unlock()
		return nil
	}
	if !now.Before(e.o.expiresAt) {
		if now.UnixNano() >= e.removeAt {
			c.remove(s, e)
			c.expired.Inc()
		}
		s.mu.Unlock()
		return nil
	}
	e.used.Store(t)
	slot.Store(e)
	if s.root.next != e {
		// A hot object (a live playlist, the newest segments) is usually at the front already; moving it there
		// again would write two more entries' links on every hit.
		s.unlink(e)
		s.pushFront(e)
	}
	s.mu.Unlock()
	return e.o
}

// GetStale returns the object under key even when it is no longer fresh, as long as the cache still keeps it:
// the stale copy served when the origin fails.
func (c *Cache) GetStale(key []byte, now time.Time) *object {
	s := c.shard(c.hash(key))
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.items[string(key)]
	if e == nil || now.UnixNano() >= e.removeAt {
		return nil
	}
	return e.o
}

// Put stores o until o.keepUntil (or o.expiresAt, whichever is later), then evicts the least recently used
// objects, across shards, to stay within the byte budget. An object larger than the whole budget is refused
// and counted.
func (c *Cache) Put(o *object) {
	size := o.size()
	if size > c.maxBytes.Load() {
		c.refused.Inc()
		return
	}
	keep := o.keepUntil
	if keep.Before(o.expiresAt) {
		keep = o.expiresAt
	}
	e := &cacheEntry{o: o, hash: c.hash([]byte(o.key)), removeAt: keep.UnixNano()}
	e.used.Store(o.storedAt.UnixNano())
	s := c.shard(e.hash)
	s.mu.Lock()
	if old := s.items[o.key]; old != nil {
		// A newer version replaces the old one: not an eviction.
		c.remove(s, old)
	}
	s.items[o.key] = e
	s.pushFront(e)
	heap.Push(&s.exp, e)
	c.bytes.Add(size)
	c.objects.Add(1)
	s.mu.Unlock()
	c.evictOver()
}

// evictOver evicts the least recently used objects until the cache is within its byte budget.
func (c *Cache) evictOver() {
	for c.bytes.Load() > c.maxBytes.Load() {
		if !c.evictOldest() {
			break
		}
	}
}

// SetMaxBytes changes the byte budget, evicting the least recently used objects when it shrank; every object
// that still fits stays.
func (c *Cache) SetMaxBytes(n int64) {
	c.maxBytes.Store(n)
	c.evictOver()
}

// refuse counts an object the cache was not offered because it is above cache.max_object_size.
func (c *Cache) refuse() { c.refused.Inc() }

// evictOldest removes the least recently used entry of all shards. It looks at each shard's tail under that
// shard's lock alone, so it never holds two locks; an entry used in between is at worst evicted a little early.
func (c *Cache) evictOldest() bool {
	var victim *cacheShard
	oldest := int64(math.MaxInt64)
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		if e := s.root.prev; e != &s.root && e.used.Load() <= oldest {
			oldest, victim = e.used.Load(), s
		}
		s.mu.Unlock()
	}
	if victim == nil {
		return false
	}
	victim.mu.Lock()
	if e := victim.root.prev; e != &victim.root {
		c.remove(victim, e)
		c.pressure.Inc()
	}
	victim.mu.Unlock()
	return true
}

// expire removes every object whose time is up; the janitor calls it every second.
func (c *Cache) expire(now time.Time) {
	t := now.UnixNano()
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for len(s.exp) > 0 && s.exp[0].removeAt <= t {
			c.remove(s, s.exp[0])
			c.expired.Inc()
		}
		s.mu.Unlock()
	}
}

// remove takes e out of s, and out of the front; the caller holds s.mu.
func (c *Cache) remove(s *cacheShard, e *cacheEntry) {
	c.frontSlot(e.hash).CompareAndSwap(e, nil)
	s.unlink(e)
	heap.Remove(&s.exp, e.heapIdx)
	delete(s.items, e.o.key)
	c.bytes.Add(-e.o.size())
	c.objects.Add(-1)
}

func (s *cacheShard) pushFront(e *cacheEntry) {
	e.prev, e.next = &s.root, s.root.next
	s.root.next.prev = e
	s.root.next = e
}

func (s *cacheShard) unlink(e *cacheEntry) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}

// Stats reports objects, bytes and evictions (all reasons) across shards.
func (c *Cache) Stats() (objects int, bytes int64, evictions uint64) {
	return int(c.objects.Load()), c.bytes.Load(), c.expired.Get() + c.pressure.Get()
}

// drop removes every object that f picks.
func (c *Cache) drop(f func(o *object) bool) {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for e := s.root.next; e != &s.root; {
			next := e.next
			if f(e.o) {
				c.remove(s, e)
			}
			e = next
		}
		s.mu.Unlock()
	}
}

// Each calls fn with every cached object, most recently used first within a shard, under that shard's lock: fn
// must be quick and must not call the cache.
func (c *Cache) Each(fn func(o *object)) {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for e := s.root.next; e != &s.root; e = e.next {
			fn(e.o)
		}
		s.mu.Unlock()
	}
}

// expiryHeap is a min-heap of entries by removeAt (container/heap).
type expiryHeap []*cacheEntry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].removeAt < h[j].removeAt }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx, h[j].heapIdx = i, j
}
func (h *expiryHeap) Push(x any) {
	e := x.(*cacheEntry)
	e.heapIdx = len(*h)
	*h = append(*h, e)
}
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.heapIdx = -1
	return e
}

// janitor runs expire on a ticker while the server serves.
type janitor struct {
	mu      sync.Mutex
	stop    chan struct{}
	done    chan struct{}
	stopped bool
}

// janitorEvery is how late, at most, an expired object leaves memory.
const janitorEvery = time.Second

// startJanitor starts expiring objects in the background; it does nothing once stopJanitor was called, or when
// already started.
func (c *Cache) startJanitor(now func() time.Time) {
	c.jan.mu.Lock()
	defer c.jan.mu.Unlock()
	if c.jan.stopped || c.jan.stop != nil {
		return
	}
	stop, done := make(chan struct{}), make(chan struct{})
	c.jan.stop, c.jan.done = stop, done
	t := time.NewTicker(janitorEvery)
	go func() {
		defer close(done)
		defer t.Stop()
		c.runJanitor(stop, t.C, now)
	}()
}

// runJanitor expires objects on every tick until stop is closed. Tests drive it with their own tick channel.
func (c *Cache) runJanitor(stop <-chan struct{}, tick <-chan time.Time, now func() time.Time) {
	for {
		select {
		case <-stop:
			return
		case <-tick:
			c.expire(now())
		}
	}
}

// stopJanitor stops the background expiry and waits for it to end.
func (c *Cache) stopJanitor() {
	c.jan.mu.Lock()
	c.jan.stopped = true
	stop, done := c.jan.stop, c.jan.done
	c.jan.stop = nil
	c.jan.mu.Unlock()
	if stop != nil {
		close(stop)
		<-done
	}
}

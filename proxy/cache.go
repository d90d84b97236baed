package proxy

import (
	"container/list"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

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
	expiresAt   time.Time

	// tmpl is the playlist parsed once per origin version; every viewer's rewrite reuses it.
	tmplOnce sync.Once
	tmpl     *playlist.Template
	tmplErr  error
}

func (o *object) size() int64 { return int64(len(o.body) + len(o.key) + 256) }

// template parses a playlist object once, on first use, so that a playlist nobody asks a rewrite for costs
// nothing and one that a thousand viewers ask for is parsed once.
func (o *object) template(rw *playlist.Rewriter) (*playlist.Template, error) {
	o.tmplOnce.Do(func() { o.tmpl, o.tmplErr = rw.Parse(o.body) })
	return o.tmpl, o.tmplErr
}

// Cache is the edge's byte-bounded LRU of origin objects with per-object expiry. It is sharded so that viewers
// of different channels do not contend on one lock.
type Cache struct {
	seed     maphash.Seed
	shards   [cacheShards]cacheShard
	maxBytes int64
}

const cacheShards = 16

type cacheShard struct {
	mu    sync.Mutex
	items map[string]*list.Element
	lru   list.List
	bytes int64
	// evictions is read by metrics without taking the lock.
	evictions atomic.Uint64
}

// NewCache returns a cache that holds at most maxBytes of objects in all.
func NewCache(maxBytes int64) *Cache {
	c := &Cache{seed: maphash.MakeSeed(), maxBytes: maxBytes}
	for i := range c.shards {
		c.shards[i].items = make(map[string]*list.Element)
	}
	return c
}

func (c *Cache) shard(key []byte) *cacheShard {
	return &c.shards[maphash.Bytes(c.seed, key)%cacheShards]
}

// Get returns a fresh object. The key is a byte slice so that the hit path (the fast path) does not allocate.
func (c *Cache) Get(key []byte, now time.Time) *object {
	s := c.shard(key)
	s.mu.Lock()
	el, ok := s.items[string(key)]
	if !ok {
		s.mu.Unlock()
		return nil
	}
	o := el.Value.(*object)
	if !now.Before(o.expiresAt) {
		s.remove(el)
		s.mu.Unlock()
		return nil
	}
	s.lru.MoveToFront(el)
	s.mu.Unlock()
	return o
}

// Put stores o, evicting the least recently used objects of its shard to stay within the shard's share of the
// byte budget.
func (c *Cache) Put(o *object) {
	limit := c.maxBytes / cacheShards
	if o.size() > limit {
		return
	}
	s := c.shard([]byte(o.key))
	s.mu.Lock()
	if el, ok := s.items[o.key]; ok {
		s.remove(el)
	}
	s.items[o.key] = s.lru.PushFront(o)
	s.bytes += o.size()
	for s.bytes > limit {
		s.remove(s.lru.Back())
		s.evictions.Add(1)
	}
	s.mu.Unlock()
}

func (s *cacheShard) remove(el *list.Element) {
	o := s.lru.Remove(el).(*object)
	delete(s.items, o.key)
	s.bytes -= o.size()
}

// Stats reports objects, bytes and evictions across shards.
func (c *Cache) Stats() (objects int, bytes int64, evictions uint64) {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		objects += len(s.items)
		bytes += s.bytes
		s.mu.Unlock()
		evictions += s.evictions.Load()
	}
	return
}

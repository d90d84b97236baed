package proxy

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

func testObject(key string, size int, now time.Time, ttl time.Duration) *object {
	return &object{key: key, body: make([]byte, size), storedAt: now, expiresAt: now.Add(ttl)}
}

// The byte budget is the cache's, not a sixteenth of it per shard: an object up to max_bytes fits, and byte
// pressure evicts the least recently used objects whichever shard they are in.
func TestCacheSharedBudgetEvictsLeastRecentlyUsed(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	set := metrics.NewSet()
	c := NewCache(10<<20, set)
	big := testObject("big", 6<<20, now, time.Minute)
	c.Put(big)
	if c.Get([]byte("big"), now) != big {
		t.Fatal("an object of 60% of max_bytes was not cached")
	}
	for i := range 20 {
		c.Put(testObject(fmt.Sprint("s", i), 100<<10, now.Add(time.Duration(i+1)*time.Millisecond), time.Minute))
	}
	c.Get([]byte("s0"), now.Add(time.Second)) // s0 becomes the most recently used
	c.Put(testObject("next", 3<<20, now.Add(2*time.Second), time.Minute))
	if c.Get([]byte("big"), now.Add(3*time.Second)) != nil {
		t.Fatal("the least recently used object survived byte pressure")
	}
	if c.Get([]byte("s0"), now.Add(3*time.Second)) == nil || c.Get([]byte("next"), now.Add(3*time.Second)) == nil {
		t.Fatal("recently used objects were evicted")
	}
	objs, bytes, ev := c.Stats()
	if bytes > 10<<20 || objs != 21 || ev != 1 {
		t.Fatalf("objects %d bytes %d evictions %d; want 21 objects within 10 MiB after 1 eviction", objs, bytes, ev)
	}
	c.Put(testObject("huge", 11<<20, now, time.Minute))
	if c.refused.Get() != 1 {
		t.Fatalf("an object over max_bytes was not refused and counted")
	}
}

// Expired objects leave memory as they expire, without byte pressure and without anyone asking for them; a
// playlist stays for its stale-if-error window, served only by GetStale.
func TestCacheExpiresAsObjectsExpire(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	c := NewCache(64<<20, metrics.NewSet())
	for i := range 10 {
		c.Put(testObject(fmt.Sprint("seg", i), 1000, now.Add(time.Duration(i)*time.Second), 10*time.Second))
	}
	pl := testObject("pl", 100, now, time.Second)
	pl.keepUntil = now.Add(11 * time.Second)
	c.Put(pl)

	stop, tick := make(chan struct{}), make(chan time.Time)
	clock := &testClock{t: now}
	done := make(chan struct{})
	go func() { c.runJanitor(stop, tick, clock.Now); close(done) }()
	// An unbuffered tick is received only when the janitor waits again, so the second send returns once the
	// first expiry has run: no sleeping.
	expireAt := func(t time.Time) {
		clock.Add(t.Sub(clock.Now()))
		tick <- t
		tick <- t
	}
	defer func() { close(stop); <-done }()

	expireAt(now.Add(5 * time.Second))
	if objs, _, _ := c.Stats(); objs != 11 {
		t.Fatalf("%d objects at 5s, want all 11", objs)
	}
	if c.Get([]byte("pl"), now.Add(5*time.Second)) != nil || c.GetStale([]byte("pl"), now.Add(5*time.Second)) != pl {
		t.Fatal("a stale playlist must be a miss for Get and a hit for GetStale")
	}
	expireAt(now.Add(14500 * time.Millisecond))
	if objs, _, _ := c.Stats(); objs != 5 {
		t.Fatalf("%d objects at 14.5s, want 5 (seg5..seg9)", objs)
	}
	expireAt(now.Add(time.Minute))
	if objs, b, ev := c.Stats(); objs != 0 || b != 0 || ev != 11 || c.expired.Get() != 11 {
		t.Fatalf("objects %d bytes %d evictions %d (expired %d), want an empty cache after 11 expiries", objs, b, ev, c.expired.Get())
	}
}

// testClock is a clock the test moves.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

package proxy

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"strings"
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

// A hit from the front (no lock) serves exactly what the shard holds: never an object that was replaced,
// purged, evicted or expired, and a hot object served only from the front is still seen as used by byte
// pressure.
func TestCacheFrontServesOnlyWhatTheShardHolds(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	c := NewCache(10<<20, metrics.NewSet())
	get := func(key string, at time.Time) *object {
		t.Helper()
		o := c.Get([]byte(key), at)
		// A second hit right after the first comes from the front; it must say the same.
		if again := c.Get([]byte(key), at); again != o {
			t.Fatalf("%s: the front served %p, the shard %p", key, again, o)
		}
		return o
	}
	f := func(key string, at time.Time, want *object, what string) {
		t.Helper()
		if got := get(key, at); got != want {
			t.Fatalf("%s: got %p, want %p (%s)", key, got, want, what)
		}
	}
	v1 := testObject("pl", 100, now, time.Second)
	c.Put(v1)
	f("pl", now, v1, "first hit")
	v2 := testObject("pl", 100, now, time.Second)
	c.Put(v2)
	f("pl", now, v2, "a newer version replaced it")
	f("pl", now.Add(time.Second), nil, "expired")
	c.Put(testObject("pl", 100, now, time.Minute))
	get("pl", now)
	c.drop(func(o *object) bool { return o.key == "pl" })
	f("pl", now, nil, "purged")

	// Byte pressure: hot is first asked for before cold, then over and over, from the front; cold only once.
	hot := testObject("hot", 4<<20, now, time.Hour)
	cold := testObject("cold", 4<<20, now, time.Hour)
	c.Put(hot)
	c.Put(cold)
	get("hot", now.Add(500*time.Millisecond))
	get("cold", now.Add(time.Second))
	for at := now.Add(time.Second); at.Before(now.Add(3 * time.Second)); at = at.Add(10 * time.Millisecond) {
		get("hot", at)
	}
	c.Put(testObject("next", 4<<20, now.Add(3*time.Second), time.Hour))
	f("cold", now.Add(3*time.Second), nil, "the least recently used object, evicted")
	f("hot", now.Add(3*time.Second), hot, "the hot one stays")
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

// The edge's cache honours cache.max_object_size: a 3 MiB segment behind a 16 MiB cache is fetched once (it
// was fetched on every request, being over the 1 MiB per-shard limit), one over max_object_size is streamed and
// counted as refused, and /metrics shows the cache's bytes, objects and evictions by reason as objects expire.
func TestEdgeCacheHonoursMaxObjectSizeAndExportsMetrics(t *testing.T) {
	seg := bytes.Repeat([]byte{0x47}, 3<<20)
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/huge.ts") {
			w.Write(bytes.Repeat(seg, 2))
			return
		}
		w.Write(seg)
	})
	clock := newTestClock()
	base, srv := startEdgeAt(t, clock, func(c *Config) {
		c.Cache.MaxBytes = 16 << 20
		c.Cache.MaxObjectSize = 4 << 20
	}, o.url)
	for range 2 {
		if code, _, body := get(t, base+"/play/a001/seg1.ts"); code != 200 || len(body) != len(seg) {
			t.Fatalf("%d, %d bytes", code, len(body))
		}
	}
	if n := o.count("/play/a001/seg1.ts"); n != 1 {
		t.Fatalf("a 3 MiB segment under max_object_size 4 MiB cost %d origin fetches for 2 requests, want 1", n)
	}
	if code, _, body := get(t, base+"/play/a001/huge.ts"); code != 200 || len(body) != 2*len(seg) {
		t.Fatalf("huge: %d, %d bytes", code, len(body))
	}
	for i := 2; i <= 6; i++ {
		get(t, base+"/play/a001/seg"+strconv.Itoa(i)+".ts")
	}
	_, cached, _ := srv.cache.Stats()
	wantMetrics(t, srv,
		`hlsedge_cache_objects 5`,
		`hlsedge_cache_bytes `+strconv.FormatInt(cached, 10),
		`hlsedge_cache_evictions_total{reason="capacity"} 1`,
		`hlsedge_cache_refused_total{reason="too_large"} 1`,
	)
	clock.Add(3 * time.Minute) // past segment_ttl
	srv.cache.expire(clock.Now())
	wantMetrics(t, srv,
		`hlsedge_cache_objects 0`,
		`hlsedge_cache_bytes 0`,
		`hlsedge_cache_evictions_total{reason="expired"} 5`,
	)
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

func newTestClock() *testClock { return &testClock{t: time.Unix(1_700_000_000, 0)} }

// startEdgeAt is startEdge with the edge's clock (cache, expiry, Age) under the test's control.
func startEdgeAt(t *testing.T, clock *testClock, mutate func(*Config), origins ...string) (string, *Server) {
	t.Helper()
	srv := newEdge(t, mutate, origins...)
	srv.clock, srv.now = clock.Now, clock.Now
	ln := serveEdge(t, srv)
	return "http://" + ln.Addr().String(), srv
}

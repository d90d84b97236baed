package proxy

import (
	"net/http"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestViewerTableCountsIdleAndBounds(t *testing.T) {
	now := time.Unix(1700000000, 0)
	v := newViewerTable(30*time.Second, 2, 3)
	a := netip.MustParseAddr("10.0.0.1")
	b := netip.MustParseAddr("10.0.0.2")
	v.observe([]byte("a001"), a, 0, now)
	v.observe([]byte("a001"), a, 0, now.Add(time.Second)) // the same viewer polling again
	v.observe([]byte("a001"), a, 7, now)                  // a second token behind the same address
	v.observe([]byte("a002"), b, 0, now)
	f := func(at time.Time, want map[string]int) {
		t.Helper()
		got := v.counts(at)
		if len(got) != len(want) {
			t.Fatalf("counts = %v, want %v", got, want)
		}
		for k, n := range want {
			if got[k] != n {
				t.Fatalf("counts = %v, want %v", got, want)
			}
		}
	}
	f(now, map[string]int{"a001": 2, "a002": 1})
	// Bounds: a third channel and a fourth viewer are dropped while everyone is fresh.
	v.observe([]byte("a003"), b, 0, now)
	v.observe([]byte("a002"), a, 0, now)
	f(now, map[string]int{"a001": 2, "a002": 1})
	// After the idle timeout the stale ones make room.
	later := now.Add(32 * time.Second)
	v.observe([]byte("a003"), b, 0, later)
	f(later, map[string]int{"a003": 1})
	f(later.Add(time.Minute), map[string]int{})
	if v.viewers != 0 || len(v.channels) != 0 {
		t.Fatalf("pruned table still holds %d viewers in %d channels", v.viewers, len(v.channels))
	}
}

func TestViewerTableObserveKnownViewerDoesNotAllocate(t *testing.T) {
	v := newViewerTable(30*time.Second, 10, 10)
	ch := []byte("a001")
	ip := netip.MustParseAddr("10.0.0.1")
	now := time.Now()
	v.observe(ch, ip, 1, now)
	if n := testing.AllocsPerRun(100, func() { v.observe(ch, ip, 1, now) }); n != 0 {
		t.Fatalf("a returning viewer costs %v allocations, want 0", n)
	}
}

func TestStatusPageShowsChannelsViewersHitRateAndOrigins(t *testing.T) {
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, ".m3u8") {
			w.Write([]byte(testPlaylist))
			return
		}
		w.Write([]byte("segment"))
	})
	// The second origin is down for good; the first answers after failover marks it.
	deadOrigin := "http://127.0.0.1:1"
	e := startPlayerEdge(t, PlayerConfig{}, nil, deadOrigin, o.url)

	code, h, body := get(t, e.admin+"/")
	if code != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/html") || !strings.Contains(string(body), "no channel watched") {
		t.Fatalf("empty status page: %d %q\n%s", code, h.Get("Content-Type"), body)
	}
	if !regexp.MustCompile(`<meta http-equiv="refresh" content="\d+">`).Match(body) {
		t.Fatal("the status page must refresh itself")
	}

	for i := 0; i < 3; i++ {
		get(t, e.base+"/a001/index.m3u8?token=x", "X-Forwarded-For", "1.2.3.4")
		get(t, e.base+"/play/a001/seg7.ts")
		get(t, e.base+"/play/a002/seg7.ts")
	}
	code, _, body = get(t, e.admin+"/")
	page := string(body)
	if code != 200 {
		t.Fatalf("status page: %d", code)
	}
	// One viewer of a001 (three polls from one address, untrusted X-Forwarded-For ignored), none of a002, whose
	// segment is cached: channels show up from the cache too.
	for _, want := range []string{
		`<td>a001</td><td>1</td><td>2</td>`,
		`<td>a002</td><td>0</td><td>1</td>`,
		`<b id="viewers">1</b>`,
		// 3 misses (first playlist, two segments) then 6 hits (1 s playlist micro-cache, cached segments).
		`<b id="hit-rate">66.7%</b>`,
		`<td>127.0.0.1:1</td><td><span class="down">down</span></td>`,
		`<td>` + strings.TrimPrefix(o.url, "http://") + `</td><td><span class="up">up</span></td>`,
	} {
		if !strings.Contains(page, want) {
			t.Fatalf("status page lacks %q:\n%s", want, page)
		}
	}

	snap := e.status.snapshot()
	if snap.Hits != 6 || snap.Misses != 3 || snap.Viewers != 1 {
		t.Fatalf("snapshot: %+v", snap)
	}

	// Names come from the cache and the paths: html/template escapes them whatever they are.
	if strings.Contains(page, "<script") {
		t.Fatal("status page contains a script")
	}
	code, _, _ = get(t, e.admin+"/", "X-Method-Override", "x")
	if code != 200 {
		t.Fatal(code)
	}
	req, _ := http.NewRequest(http.MethodPost, e.admin+"/", nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 {
		t.Fatalf("POST /: %d, want 405", resp.StatusCode)
	}
}

// BenchmarkViewerTableObserve is the cost the status page adds to each served playlist: returning viewers of one
// channel from many goroutines, all on the table's one lock.
func BenchmarkViewerTableObserve(b *testing.B) {
	v := newViewerTable(30*time.Second, 100, 100000)
	ch := []byte("a001")
	now := time.Now()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ip := netip.AddrFrom4([4]byte{10, 0, 0, byte(time.Now().UnixNano())})
		for pb.Next() {
			v.observe(ch, ip, 0, now)
		}
	})
}

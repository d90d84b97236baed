package proxy

import (
	"bufio"
	"context"
	"fmt"
	"hash/maphash"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hlsedge/hlsedge/bench/synthorigin"
	"github.com/hlsedge/hlsedge/internal/clocks"
)

// llClock is a clock that moves only when the test moves it, shared by the LL origin (whose held requests sleep
// on it) and the edges (cache, Age, tier signatures), so that what a test sees never depends on how fast the
// machine is.
type llClock = clocks.Manual

// llStart is 1.3 s into segment 566666667 of a 3 s, 5-part LL stream: parts 0 and 1 are complete, part 2
// (fragments 6 to 8, 0.2 s each, from 1.2 s) is the hinted one.
var llStart = time.Unix(1_700_000_002, 300_000_000)

const llSeq = 566666667

func newLLClock() *llClock { return clocks.NewManual(llStart) }

// startLLOrigin runs the synthetic LL-HLS origin (3 s segments of five 0.6 s parts) on clk.
func startLLOrigin(t *testing.T, clk *llClock, cfg synthorigin.Config) (string, *synthorigin.Origin) {
	t.Helper()
	cfg.LL, cfg.Now, cfg.SleepUntil = true, clk.Now, clk.SleepUntil
	if cfg.Channels == nil {
		cfg.Channels = []string{"a001"}
	}
	return startDemoOrigin(t, cfg)
}

// startEdgeOn is startEdge with every clock of the edge (cache, Age, upstream health, tier signatures) on clk.
func startEdgeOn(t *testing.T, clk *llClock, mutate func(*Config), origins ...string) (string, *Server) {
	t.Helper()
	cfg := &Config{}
	for _, o := range origins {
		cfg.Origins = append(cfg.Origins, OriginConfig{URL: o})
	}
	cfg.Upstream.Timeout = 10 * time.Second
	cfg.Upstream.ConnectTimeout = time.Second
	cfg.Auth.Disabled = true
	if mutate != nil {
		mutate(cfg)
	}
	srv := buildEdge(t, cfg, Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: clk.Now})
	ln := serveEdge(t, srv)
	return "http://" + ln.Addr().String(), srv
}

// waitHeld waits until the origin holds n requests; the bound only turns a hang into a failure.
func waitHeld(t *testing.T, o *synthorigin.Origin, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := o.WaitHeld(ctx, n); err != nil {
		t.Fatal(err)
	}
}

type llResult struct {
	code int
	h    http.Header
	body string
	err  error
}

func asyncGet(url string) <-chan llResult {
	ch := make(chan llResult, 1)
	go func() {
		resp, err := client.Get(url)
		if err != nil {
			ch <- llResult{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		ch <- llResult{code: resp.StatusCode, h: resp.Header, body: string(b), err: err}
	}()
	return ch
}

var (
	partRE = regexp.MustCompile(`(?m)^#EXT-X-PART:.*URI="([^"]+)"`)
	hintRE = regexp.MustCompile(`(?m)^#EXT-X-PRELOAD-HINT:TYPE=PART,URI="([^"]+)"`)
)

func lastPart(body string) string {
	m := partRE.FindAllStringSubmatch(body, -1)
	if len(m) == 0 {
		return ""
	}
	return m[len(m)-1][1]
}

func hint(body string) string {
	if m := hintRE.FindStringSubmatch(body); m != nil {
		return m[1]
	}
	return ""
}

// A thousand viewers waiting for the same playlist version cost the origin one blocking request: the directives
// are part of the cache key, spelled one way whatever order the player wrote them in, and tokens are not.
func TestLLBlockingReloadOneOriginRequestPerVersion(t *testing.T) {
	clk := newLLClock()
	originURL, o := startLLOrigin(t, clk, synthorigin.Config{URIs: synthorigin.URIsPath})
	base, srv := startEdgeOn(t, clk, nil, originURL)
	pl := base + "/play/a001/index.m3u8"
	code, _, body := get(t, pl+"?token=first")
	if code != 200 || !strings.HasSuffix(lastPart(string(body)), o.PartName("a001", 0, llSeq, 1)) {
		t.Fatalf("plain playlist: %d, last part %q:\n%s", code, lastPart(string(body)), body)
	}

	const viewers = 1000
	key := fmt.Sprintf("/play/a001/index.m3u8?_HLS_msn=%d&_HLS_part=2", llSeq)
	first := herdOneVersion(t, clk, o, srv, pl, key, viewers, "", []string{
		"?_HLS_msn=%d&_HLS_part=2&token=v%d",
		"?token=v%[2]d&_HLS_part=2&_HLS_msn=%[1]d",
		"?_HLS_part=02&_HLS_msn=0%d&token=v%d",
	})
	st := o.Stats()
	if st.BlockingRequests != 1 || st.Blocking[key] != 1 {
		t.Fatalf("%d viewers cost %d blocking requests at the origin (%v), want 1 for %s", viewers, st.BlockingRequests, st.Blocking, key)
	}
	for uri := range st.URIs {
		if strings.Contains(uri, "token") {
			t.Fatalf("origin saw %q", uri)
		}
	}
	// A viewer asking for that version later gets the cached answer, past playlist_ttl (the version stays a
	// valid answer for the hold), with its age.
	clk.AdvanceTo(clk.Now().Add(2 * time.Second))
	code, h, late := get(t, pl+fmt.Sprintf("?_HLS_msn=%d&_HLS_part=2", llSeq))
	if code != 200 || string(late) != first || h.Get("Age") != "2" || o.Stats().BlockingRequests != 1 {
		t.Fatalf("late viewer: %d Age %q, same body %v, %d blocking requests at the origin", code, h.Get("Age"),
			string(late) == first, o.Stats().BlockingRequests)
	}
	wantMetrics(t, srv, `hlsedge_ll_blocking_requests_total 1001`)
}

// herdOneVersion has viewers ask at once for part 2 of segment llSeq of the playlist pl, viewer i spelling the
// directives as spellings[i%len(spellings)] (arguments: the media sequence, i), waits until all but one wait on
// the one fetch for key, makes the part available and returns the playlist every viewer must have got: 200,
// ending with that part, holding want, the same for all.
func herdOneVersion(t *testing.T, clk *llClock, o *synthorigin.Origin, srv *Server, pl, key string, viewers int, want string, spellings []string) string {
	t.Helper()
	results := make([]<-chan llResult, viewers)
	for i := range results {
		results[i] = asyncGet(pl + fmt.Sprintf(spellings[i%len(spellings)], llSeq, i))
	}
	waitHeld(t, o, 1)
	eventually(t, "every viewer queued on the one blocking request", func() bool {
		return srv.fetches.Waiters(key) == viewers-1
	})
	clk.AdvanceTo(o.PartAvailable(llSeq, 2))
	first := ""
	for i, ch := range results {
		r := <-ch
		if r.err != nil || r.code != 200 || !strings.HasSuffix(lastPart(r.body), o.PartName("a001", 0, llSeq, 2)) ||
			!strings.Contains(r.body, want) {
			t.Fatalf("viewer %d: %v %d, last part %q:\n%s", i, r.err, r.code, lastPart(r.body), r.body)
		}
		if first == "" {
			first = r.body
		} else if r.body != first {
			t.Fatalf("viewer %d got another playlist than viewer 0", i)
		}
	}
	return first
}

// A hinted part's bytes reach every viewer waiting for it as the origin produces them, not once the part is
// complete; the origin is asked once, and the part is cached when it ends.
func TestLLHintedPartReachesEveryViewerAsItArrives(t *testing.T) {
	clk := newLLClock()
	originURL, o := startLLOrigin(t, clk, synthorigin.Config{URIs: synthorigin.URIsAbsolute})
	base, srv := startEdgeOn(t, clk, nil, originURL)
	_, _, body := get(t, base+"/play/a001/index.m3u8")
	want := "/play/a001/" + o.PartName("a001", 0, llSeq, 2)
	if h := hint(string(body)); h != want {
		t.Fatalf("hint %q, want %q (absolute origin URIs become edge paths)", h, want)
	}

	const viewers = 50
	type viewer struct {
		first chan int // bytes of the first read once the response started, or -status for an error
		rest  chan llResult
	}
	vs := make([]viewer, viewers)
	for i := range vs {
		v := viewer{first: make(chan int, 1), rest: make(chan llResult, 1)}
		vs[i] = v
		go func() {
			resp, err := client.Get(base + want + fmt.Sprintf("?token=v%d", i))
			if err != nil {
				v.first <- 0
				v.rest <- llResult{err: err}
				return
			}
			defer resp.Body.Close()
			br := bufio.NewReader(resp.Body)
			_, err = br.Peek(1)
			if resp.StatusCode != 200 {
				v.first <- -resp.StatusCode
			} else {
				v.first <- br.Buffered()
			}
			b, err2 := io.ReadAll(br)
			v.rest <- llResult{code: resp.StatusCode, body: string(b), err: cmpErr(err, err2)}
		}()
	}
	waitHeld(t, o, 1) // the origin holds the part until its first fragment exists
	eventually(t, "every viewer queued on the one part request", func() bool {
		return srv.fetches.Waiters(want) == viewers-1
	})
	// The first of the part's three fragments: every viewer gets bytes while the rest does not exist yet.
	clk.AdvanceTo(llStart.Add(100 * time.Millisecond)) // fragment 6 ends 1.4 s into the segment
	for i, v := range vs {
		select {
		case n := <-v.first:
			if n <= 0 {
				t.Fatalf("viewer %d: no bytes of the part (status %d)", i, -n)
			}
		case <-time.After(30 * time.Second): // a safety net, not a measure: the bytes were held back
			t.Fatalf("viewer %d got nothing of the part before it was complete: the edge waited for its end", i)
		}
	}
	clk.AdvanceTo(o.PartAvailable(llSeq, 2))
	var part string
	for i, v := range vs {
		r := <-v.rest
		if r.err != nil || r.code != 200 {
			t.Fatalf("viewer %d: %v %d", i, r.err, r.code)
		}
		if i == 0 {
			part = r.body
		}
	}
	if n := o.Stats().Kinds["part"]; n != 1 {
		t.Fatalf("%d viewers cost %d part requests at the origin, want 1", viewers, n)
	}
	// Cached once whole: a later viewer gets the same bytes without the origin.
	eventually(t, "the part cached", func() bool { return srv.cache.Get([]byte(want), clk.Now()) != nil })
	code, _, again := get(t, base+want)
	if code != 200 || string(again) != part || o.Stats().Kinds["part"] != 1 {
		t.Fatalf("later viewer: %d, %d bytes (want %d), %d origin requests", code, len(again), len(part), o.Stats().Kinds["part"])
	}
	code, _, direct := get(t, originURL+want)
	if code != 200 || string(direct) != part {
		t.Fatalf("the part through the edge (%d bytes) differs from the origin's (%d)", len(part), len(direct))
	}
	wantMetrics(t, srv, `hlsedge_ll_parts_streamed_total 1`, `hlsedge_ll_parts_cached_total 1`)
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// llTestPlaylist is a small LL-HLS media playlist with a 1 s target duration.
const llTestPlaylist = "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:1\n" +
	"#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.0\n#EXT-X-PART-INF:PART-TARGET=0.333\n" +
	"#EXT-X-MEDIA-SEQUENCE:10\n#EXT-X-MAP:URI=\"init.mp4\"\n" +
	"#EXT-X-PART:DURATION=0.333,URI=\"10.0.m4s\",INDEPENDENT=YES\n#EXTINF:1.000,\n10.m4s\n" +
	"#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"11.0.m4s\"\n"

// The edge refuses what the spec refuses before any origin work, waits for a blocking reload as long as the
// origin holds it rather than upstream.timeout, answers 503 when the hold runs out without caching it or holding
// it against the origin, and ignores the directives once the playlist ended.
func TestLLBlockingReloadHoldAndDirectives(t *testing.T) {
	arrived := make(chan string, 16)
	release := make(chan struct{})
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		switch {
		case strings.HasPrefix(r.URL.Path, "/play/ended/"):
			w.Write([]byte(llTestPlaylist + "#EXT-X-ENDLIST\n"))
		case q.Get("_HLS_msn") == "10":
			w.WriteHeader(http.StatusServiceUnavailable) // the origin's own hold ran out
		case q.Get("_HLS_msn") == "11":
			arrived <- r.RequestURI
			<-release
			w.Write([]byte(llTestPlaylist))
		case q.Get("_HLS_msn") == "12":
			<-r.Context().Done() // never answers: the edge's own wait runs out
		case strings.HasSuffix(r.URL.Path, "slow.ts"):
			<-r.Context().Done()
		default:
			w.Write([]byte(llTestPlaylist))
		}
	})
	// Two edges in front of the origin. The first answers what must succeed, or wait out the edge's own hold,
	// with an upstream.timeout no loaded machine runs into. The second has a short upstream.timeout and a long
	// hold: a blocking reload on it outlasts the timeout, which is what it shows.
	base, srv := startEdge(t, func(c *Config) {
		c.Upstream.Timeout = 20 * time.Second
		c.Upstream.MaxHold = 1500 * time.Millisecond
	}, o.url)
	short, _ := startEdge(t, func(c *Config) {
		c.Upstream.Timeout = 200 * time.Millisecond
		c.Upstream.TotalTimeout = 300 * time.Millisecond
		c.Upstream.MaxHold = time.Minute
	}, o.url)
	pl := base + "/play/a001/index.m3u8"

	f := func(query string, want int, reason string) {
		t.Helper()
		code, _, body := get(t, pl+query)
		if code != want || !strings.Contains(string(body), reason) || want != 200 && strings.Count(string(body), "\n") != 1 {
			t.Fatalf("%s: %d %q, want %d %q", query, code, body, want, reason)
		}
	}
	f("?_HLS_part=1&token=x", 400, "_HLS_part requires _HLS_msn")
	f("?_HLS_msn=x", 400, "_HLS_msn must be a decimal integer")
	f("?_HLS_msn=-1", 400, "_HLS_msn must be a decimal integer")
	f("?_HLS_msn=1&_HLS_part=", 400, "_HLS_part must be a decimal integer")
	f("?_HLS_msn=1&_HLS_msn=2", 400, "given twice")
	f("?_HLS_skip=NO", 400, "_HLS_skip must be YES or v2")
	if n := o.total(); n != 0 {
		t.Fatalf("refused directives reached the origin: %v", o.allURIs())
	}

	f("", 200, "#EXTM3U") // the edge learns the 1 s target duration: holds last 3 s (+1 s), here at most 1.5 s

	// Held past upstream.timeout: a plain request sent once the blocking one is at the origin times out first,
	// and the blocking one still gets its playlist after that.
	blocked := asyncGet(short + "/play/a001/index.m3u8?_HLS_part=0&_HLS_msn=0011&_HLS_skip=YES&token=x")
	if uri := <-arrived; uri != "/play/a001/index.m3u8?_HLS_msn=11&_HLS_part=0&_HLS_skip=YES" {
		t.Fatalf("origin asked for %q: the directives must come in one spelling, without the token", uri)
	}
	if code, _, _ := get(t, short+"/play/a001/slow.ts"); code != 504 {
		t.Fatalf("a plain request to the stalled origin: %d, want 504 after upstream.timeout", code)
	}
	close(release)
	if r := <-blocked; r.code != 200 || r.body != llTestPlaylist {
		t.Fatalf("blocking reload held past upstream.timeout: %d %q", r.code, r.body)
	}

	// The origin's 503 and the edge's own wait: 503 to the viewer, never cached, the origin still up.
	for _, msn := range []string{"10", "12"} {
		for range 2 {
			f("?_HLS_msn="+msn, 503, "did not appear in time")
		}
		// The origin counts a request when it reads it, which for one the edge gave up on may come after.
		uri := "/play/a001/index.m3u8?_HLS_msn=" + msn
		eventually(t, "both requests for "+uri+" at the origin", func() bool { return o.count(uri) >= 2 })
		if n := o.count(uri); n != 2 {
			t.Fatalf("_HLS_msn=%s asked %d times of the origin: a 503 must not be cached", msn, n)
		}
	}
	for _, h := range srv.up.Health() {
		if !h.Up {
			t.Fatalf("a hold that ran out marked the origin down: %+v", h)
		}
	}
	wantMetrics(t, srv, `hlsedge_ll_hold_timeouts_total 4`)

	// EXT-X-ENDLIST: directives ignored, even malformed ones, and never sent to the origin.
	ended := base + "/play/ended/index.m3u8"
	if code, _, _ := get(t, ended); code != 200 {
		t.Fatalf("ended playlist: %d", code)
	}
	for _, q := range []string{"?_HLS_msn=99", "?_HLS_part=3", "?_HLS_msn=11&_HLS_part=0&token=x"} {
		if code, _, body := get(t, ended+q); code != 200 || !strings.HasSuffix(string(body), "#EXT-X-ENDLIST\n") {
			t.Fatalf("%s on an ended playlist: %d %q", q, code, body)
		}
	}
	for _, u := range o.allURIs() {
		if strings.HasPrefix(u, "/play/ended/") && strings.Contains(u, "_HLS_") {
			t.Fatalf("origin asked for %q: directives of an ended playlist must be ignored", u)
		}
	}
}

func TestHoldWaitFollowsTheTargetDuration(t *testing.T) {
	l := &llState{seed: maphash.MakeSeed()}
	l.cfg.Store(&llConfig{maxHold: 30 * time.Second})
	l.playlists.max, l.parts.max = 4, 4
	isToken := func(k []byte) bool { return string(k) == "token" }
	f := func(body string, want time.Duration) {
		t.Helper()
		l.observe([]byte("/play/a001/index.m3u8?_HLS_msn=1"), []byte(body), isToken)
		if got := l.holdWait([]byte("/play/a001/index.m3u8")); got != want {
			t.Fatalf("hold wait %v, want %v", got, want)
		}
	}
	if got := l.holdWait([]byte("/play/a001/index.m3u8")); got != 30*time.Second {
		t.Fatalf("unseen playlist: %v, want upstream.max_hold", got)
	}
	f(llTestPlaylist, 4*time.Second)
	f(strings.Replace(llTestPlaylist, "TARGETDURATION:1", "TARGETDURATION:6", 1), 19*time.Second)
	f(strings.Replace(llTestPlaylist, "TARGETDURATION:1", "TARGETDURATION:60", 1), 30*time.Second)
	f(strings.Replace(llTestPlaylist, "TARGETDURATION:1", "TARGETDURATION:99999999999999999", 1), 30*time.Second)
	// A master playlist teaches nothing.
	f("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n", 30*time.Second)
}

func TestObserveFindsPartsWhereViewersWillAsk(t *testing.T) {
	l := &llState{seed: maphash.MakeSeed()}
	l.cfg.Store(&llConfig{maxHold: time.Second, hosts: []string{"origin:8000"}})
	l.playlists.max, l.parts.max = 64, 64
	isToken := func(k []byte) bool { return string(k) == "token" }
	l.observe([]byte("/play/a001/v/index.m3u8?_HLS_msn=3"), []byte("#EXTM3U\n#EXT-X-TARGETDURATION:2\n"+
		"#EXT-X-PART:DURATION=0.5,URI=\"rel.0.m4s\"\n"+
		"#EXT-X-PART:URI=\"/abs/p.1.m4s?token=t&x=a%20b\",DURATION=0.5\n"+
		" #EXT-X-PART:DURATION=0.5, URI=\"HTTP://ORIGIN:8000/play/a001/v/up.2.m4s#frag\"\n"+
		"#EXT-X-PART:DURATION=0.5,URI=\"http://elsewhere/play/a001/v/foreign.m4s\"\n"+
		"#EXT-X-PART:DURATION=0.5,URI=\"../climb.m4s\"\n"+
		"#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"hint.3.m4s\"\n"+
		"#EXT-X-PART:DURATION=0.5,URI=\"ranged.m4s\",BYTERANGE=\"1000@0\"\n"+
		"#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"ranged.m4s\",BYTERANGE-START=1000\n"+
		"#EXT-X-PRELOAD-HINT:TYPE=MAP,URI=\"init.mp4\"\n"+
		"#EXT-X-RENDITION-REPORT:URI=\"other.m3u8\",LAST-MSN=3\n"+
		"#EXTINF:2,\nseg.m4s\n"), isToken)
	f := func(key string, want bool) {
		t.Helper()
		if got := l.isPart([]byte(key)); got != want {
			t.Fatalf("isPart(%q) = %v, want %v", key, got, want)
		}
	}
	f("/play/a001/v/rel.0.m4s", true)
	f("/abs/p.1.m4s?x=a%20b", true)
	f("/play/a001/v/up.2.m4s", true)
	f("/play/a001/v/hint.3.m4s", true)
	f("/play/a001/v/foreign.m4s", false)
	f("/play/a001/climb.m4s", false)
	f("/play/a001/v/init.mp4", false)
	f("/play/a001/v/seg.m4s", false)
	f("/play/a001/v/ranged.m4s", false) // byte-range parts are ranges of a segment
	f("/play/a001/v/other.m3u8", false)
}

func TestGenerationsStayBounded(t *testing.T) {
	var g generations[int, int]
	g.max = 3
	for i := range 10 {
		g.put(i, i)
	}
	if len(g.cur)+len(g.prev) > 2*g.max {
		t.Fatalf("%d entries, bound %d", len(g.cur)+len(g.prev), 2*g.max)
	}
	for i := 7; i < 10; i++ {
		if _, ok := g.get(i); !ok {
			t.Fatalf("recent entry %d lost", i)
		}
	}
	if _, ok := g.get(0); ok {
		t.Fatal("the oldest entry was kept")
	}
}

// Cached playlists carry their Age: the origin's, if it gave one, plus their time in the edge's cache.
func TestPlaylistAgeHeader(t *testing.T) {
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "aged") {
			w.Header().Set("Age", "5")
		}
		w.Write([]byte(testPlaylist))
	})
	clock := newTestClock()
	base, _ := startEdgeAt(t, clock, func(c *Config) { ttl := 10 * time.Second; c.Cache.PlaylistTTL = &ttl }, o.url)
	f := func(path, want string) {
		t.Helper()
		code, h, _ := get(t, base+path, "Origin", "https://tv.example.com")
		if code != 200 || h.Get("Age") != want {
			t.Fatalf("%s: %d Age %q, want %q", path, code, h.Get("Age"), want)
		}
		if !strings.Contains(h.Get("Access-Control-Expose-Headers"), "Age") {
			t.Fatalf("Age not exposed to cross-origin players: %q", h.Get("Access-Control-Expose-Headers"))
		}
	}
	f("/play/a001/index.m3u8", "")
	f("/play/a001/aged.m3u8", "5")
	clock.Add(3*time.Second + 900*time.Millisecond)
	f("/play/a001/index.m3u8", "3")
	f("/play/a001/aged.m3u8", "8")
	if o.total() != 2 {
		t.Fatalf("origin asked %d times, want 2", o.total())
	}
}

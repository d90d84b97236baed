package authz

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hlsedge/hlsedge/authz/token"
	"github.com/hlsedge/hlsedge/playlist"
)

var (
	liveTiming   = playlist.Timing{Media: true, Live: true, Target: 3 * time.Second, Duration: 12 * time.Second}
	vodTiming    = playlist.Timing{Media: true, Target: 10 * time.Second, Duration: 2 * time.Hour}
	masterTiming = playlist.Timing{}
)

// mediaChild is the token a playlist with timing pl carries on its segment URIs.
func mediaChild(t *testing.T, a *Authorizer, r *Request, d *Decision, now time.Time, pl playlist.Timing) string {
	t.Helper()
	q := string(a.AppendMediaQuery(nil, r, d, now, pl))
	if !strings.HasPrefix(q, "token=") {
		t.Fatalf("media query %q", q)
	}
	return strings.TrimPrefix(q, "token=")
}

func edgeExpiry(t *testing.T, tok string) int64 {
	t.Helper()
	et, err := token.VerifyEdgeToken([]byte(edgeSecret), tok, "a001", clientIP, time.Unix(0, 0))
	if err != nil {
		t.Fatalf("%q: %v", tok, err)
	}
	return et.Expires
}

// The segments of a live media playlist carry a token that lives a few target durations and is minted again
// on every reload; the viewer's token, and the children on the media-playlist URIs of a master, live on.
func TestLiveSegmentTokensLiveAWindow(t *testing.T) {
	a := newTestAuthz(t, sessionConfig(0, false), nil) // defaults: 3 target durations, at least 10 s
	parent := mintHS(t, []string{"a001"}, time.Hour)
	r := viewer("a001", clientIP, "TV")
	d := a.Authorize(r, q(parent), testNow)
	if !d.Allowed() {
		t.Fatal(d.Reason)
	}
	long := childOf(t, a, r, &d)
	if got := string(a.AppendMediaQuery(nil, r, &d, testNow, masterTiming)); got != "token="+long {
		t.Fatalf("a master playlist's URIs keep the viewer's lifetime: %q, want the child %q", got, long)
	}
	if exp := edgeExpiry(t, long); exp != testNow.Add(time.Hour).Unix() {
		t.Fatalf("master child expires at +%ds, want the parent's +3600s", exp-testNow.Unix())
	}

	// The player reloads the media playlist with the long child; its segments get a 10 s window (3 x 3 s is
	// less than segment_ttl_min), rounded up to the 5 s grid.
	md := a.Authorize(r, q(long), testNow)
	seg := mediaChild(t, a, r, &md, testNow, liveTiming)
	if exp := edgeExpiry(t, seg); exp != testNow.Unix()+10 {
		t.Fatalf("segment token expires at +%ds, want +10s", exp-testNow.Unix())
	}
	f := func(name, tok string, at time.Duration, status int) Decision {
		t.Helper()
		sd := a.Authorize(viewer("a001", clientIP, "TV"), q(tok), testNow.Add(at))
		if sd.Status != status {
			t.Fatalf("%s at +%v: %d %q, want %d", name, at, sd.Status, sd.Reason, status)
		}
		return sd
	}
	sd := f("segment in its window", seg, 9*time.Second, http.StatusOK)
	if sd.UserID != d.UserID || sd.SessionID != d.SessionID || sd.Owner != d.Owner || sd.fp != d.fp {
		t.Fatalf("a segment token is the same viewer: %+v, parent %+v", sd, d)
	}
	f("segment URL copied out of the playlist, after its window", seg, 10*time.Second, http.StatusGone)

	// Reloads within one cell of the grid (half the window) carry the same URLs; the next cell, a new token
	// with a new window.
	reload := mediaChild(t, a, r, &md, testNow.Add(time.Second), liveTiming)
	if again := mediaChild(t, a, r, &md, testNow.Add(5*time.Second), liveTiming); again != reload {
		t.Error("reloads within one grid cell must carry the same token")
	}
	if exp := edgeExpiry(t, reload); exp != testNow.Unix()+15 {
		t.Fatalf("reloaded segment token expires at +%ds, want +15s", exp-testNow.Unix())
	}
	next := mediaChild(t, a, r, &md, testNow.Add(6*time.Second), liveTiming)
	if exp := edgeExpiry(t, next); exp != testNow.Unix()+20 {
		t.Fatalf("reloaded segment token expires at +%ds, want +20s", exp-testNow.Unix())
	}
	f("re-minted segment token", next, 19*time.Second, http.StatusOK)
	f("the playlist URL itself", long, 59*time.Minute, http.StatusOK)

	// A longer target duration stretches the window, which lasts between 1 and 1.5 times its length.
	slow := playlist.Timing{Media: true, Live: true, Target: 10 * time.Second}
	if exp := edgeExpiry(t, mediaChild(t, a, r, &md, testNow, slow)) - testNow.Unix(); exp < 30 || exp > 45 {
		t.Errorf("3 x 10 s target: +%ds, want 30 to 45 s", exp)
	}
	// VOD: the presentation plus vod_ttl_margin (1h).
	if exp := edgeExpiry(t, mediaChild(t, a, r, &d, testNow, vodTiming)); exp != testNow.Add(time.Hour).Unix() {
		t.Errorf("VOD segment token bounded by the parent: +%ds, want +3600s", exp-testNow.Unix())
	}
	long3 := mintHS(t, []string{"a001"}, 4*time.Hour)
	d3 := a.Authorize(viewer("a001", clientIP, "TV"), q(long3), testNow)
	if exp := edgeExpiry(t, mediaChild(t, a, r, &d3, testNow, vodTiming)); exp != testNow.Add(3*time.Hour).Unix() {
		t.Errorf("VOD segment token: +%ds, want 2h of presentation + 1h", exp-testNow.Unix())
	}

	// Never past the viewer's own expiry.
	short := mintHS(t, []string{"a001"}, 4*time.Second)
	ds := a.Authorize(viewer("a001", clientIP, "TV"), q(short), testNow)
	if exp := edgeExpiry(t, mediaChild(t, a, r, &ds, testNow, liveTiming)); exp != testNow.Unix()+4 {
		t.Errorf("segment token outlives its parent: +%ds, want +4s", exp-testNow.Unix())
	}

	// A ban of the viewer's token reaches the segment tokens too.
	if _, err := a.Ban(BanRequest{Token: parent}, testNow.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	f("segment token of a banned viewer", next, 2*time.Second, http.StatusForbidden)
}

func TestSegmentWindowsOffAndSameMode(t *testing.T) {
	cfg := hsConfig()
	zero := 0
	cfg.Edge.SegmentTTLTargets = &zero
	a := newAuthz(t, cfg)
	r := req("a001", clientIP)
	d := a.Authorize(r, q(mintHS(t, []string{"a001"}, time.Hour)), testNow)
	if got, want := string(a.AppendMediaQuery(nil, r, &d, testNow, liveTiming)), string(a.AppendChildQuery(nil, r, &d, testNow)); got != want {
		t.Errorf("segment_ttl_targets 0: %q, want the playlist child %q", got, want)
	}

	cfg = hsConfig()
	cfg.Groups = []GroupConfig{{Name: "flussonic", ChildToken: ChildSame}}
	b := newAuthz(t, cfg)
	st := mintST(stSecret, "a001")
	d = b.Authorize(r, q(st), testNow)
	if got := string(b.AppendMediaQuery(nil, r, &d, testNow, liveTiming)); got != "token="+st {
		t.Errorf("child_token same passes the token unchanged: %q", got)
	}
	denied := Decision{Status: http.StatusForbidden}
	if got := b.AppendMediaQuery([]byte("k"), r, &denied, testNow, liveTiming); string(got) != "k" {
		t.Errorf("a refused request gets no query: %q", got)
	}
}

// Minting on every playlist request allocates nothing.
func TestAppendMediaQueryAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	a := newAuthz(t, hsConfig())
	r := req("a001", clientIP)
	d := a.Authorize(r, q(mintHS(t, []string{"a001"}, time.Hour)), testNow)
	buf := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(200, func() {
		buf = a.AppendMediaQuery(buf[:0], r, &d, testNow, liveTiming)
	}); n != 0 {
		t.Fatalf("AppendMediaQuery allocates %v times", n)
	}
}

func TestSegmentWindowConfig(t *testing.T) {
	f := func(mut func(*EdgeConfig), field string) {
		t.Helper()
		cfg := hsConfig()
		mut(&cfg.Edge)
		err := cfg.Validate()
		if field == "" && err != nil || field != "" && (err == nil || !strings.Contains(err.Error(), field)) {
			t.Errorf("want %q, got %v", field, err)
		}
	}
	n := func(v int) *int { return &v }
	f(func(e *EdgeConfig) {}, "")
	f(func(e *EdgeConfig) { e.SegmentTTLTargets = n(0) }, "")
	f(func(e *EdgeConfig) { e.SegmentTTLTargets = n(-1) }, "'auth.edge.segment_ttl_targets'")
	f(func(e *EdgeConfig) { e.SegmentTTLMin = time.Millisecond }, "'auth.edge.segment_ttl_min'")
	f(func(e *EdgeConfig) { e.SegmentTTLMin = 48 * time.Hour }, "'auth.edge.segment_ttl_min'")
	f(func(e *EdgeConfig) { e.VODTTLMargin = -time.Second }, "'auth.edge.vod_ttl_margin'")
}

// A viewer's reloads within one grid cell reuse the child minted for the first of them (childMemo). Whatever the
// memo answers must be what minting would: across cells, for another session of the same token, after a
// viewer-expiry cap, and after a reload that rotates the edge key.
func TestMemoizedChildrenAreWhatMintingGives(t *testing.T) {
	cfg := hsConfig()
	r := newReloader(t, cfg)
	parent := mintHS(t, []string{"a001"}, time.Hour)
	check := func(a *Authorizer, rq *Request, at time.Time) string {
		t.Helper()
		d := a.Authorize(rq, q(parent), at)
		if !d.Allowed() || d.entry == nil {
			t.Fatalf("at +%v: %d %q (cached entry %v)", at.Sub(testNow), d.Status, d.Reason, d.entry != nil)
		}
		a.cache.c.Wait()
		got := string(a.AppendMediaQuery(nil, rq, &d, at, liveTiming))
		d.entry.child.Store(nil)
		if want := string(a.AppendMediaQuery(nil, rq, &d, at, liveTiming)); got != want {
			t.Fatalf("at +%v: memoized %q, minted %q", at.Sub(testNow), got, want)
		}
		return got
	}
	tv, phone := viewer("a001", clientIP, "TV"), viewer("a001", clientIP, "Phone")
	var cells []string
	for at := time.Duration(0); at < 30*time.Second; at += 700 * time.Millisecond {
		c := check(r.cur, tv, testNow.Add(at))
		check(r.cur, phone, testNow.Add(at))
		if len(cells) == 0 || cells[len(cells)-1] != c {
			cells = append(cells, c)
		}
	}
	if len(cells) < 5 {
		t.Fatalf("30 s of 5 s cells minted %d distinct children", len(cells))
	}

	rotated := cfg
	rotated.Edge = EdgeConfig{Secrets: []token.SecretConfig{{KeyID: "new", Secret: strings.Repeat("n", 32)}, {KeyID: "old", Secret: edgeSecret}}}
	before := check(r.cur, tv, testNow)
	r.reload(rotated)
	if after := check(r.cur, tv, testNow); after == before {
		t.Fatal("after the edge key rotated, the memo still hands out the old key's child")
	}
}

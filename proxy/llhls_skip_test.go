package proxy

import (
	"fmt"
	"hash/maphash"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hlsedge/hlsedge/bench/synthorigin"
)

// segmentLines returns a media playlist's URI lines with their query cut off, in order.
func segmentLines(body string) []string {
	var segs []string
	for _, l := range strings.Split(body, "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			u, _, _ := strings.Cut(l, "?")
			segs = append(segs, u)
		}
	}
	return segs
}

// A delta update (rfc8216bis 6.2.5.1) passes through the edge like any playlist: asked with _HLS_skip alone or
// with a blocking reload, it keeps its EXT-X-SKIP and media sequence, and every URI it still has carries a child
// token that opens it; the origin sees the directives and never a token.
func TestLLDeltaUpdateThroughTheEdge(t *testing.T) {
	clk, o, base, tok := llAuthEdge(t)
	variant := "/play/a001/" + o.VariantPlaylist("a001", 0)
	code, _, full := get(t, base+variant+"?token="+tok)
	seq := regexp.MustCompile(`(?m)^#EXT-X-MEDIA-SEQUENCE:\d+$`).FindString(string(full))
	if code != 200 || seq == "" || strings.Contains(string(full), "#EXT-X-SKIP") ||
		!strings.Contains(string(full), ",CAN-SKIP-UNTIL=18.000,") {
		t.Fatalf("full playlist: %d\n%s", code, full)
	}
	fullSegs := segmentLines(string(full))

	// check asserts that body is a delta of the full playlist: the same media sequence, the four oldest of its
	// ten segments replaced by EXT-X-SKIP, a child token on every URI left, and that those tokens play.
	check := func(body, version, skip string) {
		t.Helper()
		if !strings.Contains(body, "\n"+seq+"\n#EXT-X-SKIP:"+skip+"\n") ||
			!strings.Contains(body, "\n#EXT-X-VERSION:"+version+"\n") {
			t.Fatalf("no %s after %s, or not version %s:\n%s", skip, seq, version, body)
		}
		if segs := segmentLines(body); len(fullSegs) != 10 || strings.Join(segs, " ") != strings.Join(fullSegs[4:], " ") {
			t.Fatalf("delta segments %v, want the last 6 of %v", segs, fullSegs)
		}
		tags, child := childTokens(t, body, tok)
		for _, tag := range []string{"#EXT-X-MAP", "#EXT-X-PART", "#EXT-X-PRELOAD-HINT", "#EXT-X-RENDITION-REPORT", "segment"} {
			if tags[tag] == 0 {
				t.Fatalf("no %s URI in the delta (%v):\n%s", tag, tags, body)
			}
		}
		for _, l := range strings.Split(body, "\n") {
			if u, ok := strings.CutPrefix(l, "#EXT-X-RENDITION-REPORT:URI=\""); ok {
				u, _, _ = strings.Cut(u, "\"")
				if code, _, b := get(t, base+u+"&_HLS_skip=YES"); code != 200 || !strings.Contains(string(b), "#EXT-X-SKIP:") {
					t.Fatalf("delta of the reported rendition with its child token: %d\n%s", code, b)
				}
			}
		}
		if code, _, _ := get(t, base+fullSegs[9]+"?token="+child); code != 200 {
			t.Fatalf("a segment of the delta with its token: %d", code)
		}
	}

	code, _, delta := get(t, base+variant+"?_HLS_skip=YES&token="+tok)
	if code != 200 {
		t.Fatalf("_HLS_skip=YES: %d %s", code, delta)
	}
	check(string(delta), "9", "SKIPPED-SEGMENTS=4")
	code, _, delta = get(t, base+variant+"?token="+tok+"&_HLS_skip=v2")
	if code != 200 {
		t.Fatalf("_HLS_skip=v2: %d %s", code, delta)
	}
	check(string(delta), "10", `SKIPPED-SEGMENTS=4,RECENTLY-REMOVED-DATERANGES=""`)

	// With a blocking reload: held until the part exists, then the delta of that version.
	held := asyncGet(base + variant + fmt.Sprintf("?_HLS_skip=YES&_HLS_part=2&token=%s&_HLS_msn=%d", tok, llSeq))
	waitHeld(t, o, 1)
	clk.AdvanceTo(o.PartAvailable(llSeq, 2))
	r := <-held
	if r.err != nil || r.code != 200 || !strings.Contains(lastPart(r.body), o.PartName("a001", 0, llSeq, 2)) {
		t.Fatalf("blocking delta: %v %d, last part %q", r.err, r.code, lastPart(r.body))
	}
	check(r.body, "9", "SKIPPED-SEGMENTS=4")

	st := o.Stats()
	key := fmt.Sprintf("/play/a001/%s?_HLS_msn=%d&_HLS_part=2&_HLS_skip=YES", o.VariantPlaylist("a001", 0), llSeq)
	if st.Blocking[key] != 1 || st.DeltaUpdates == 0 || st.SkipRequests != st.DeltaUpdates {
		t.Fatalf("origin: blocking %v, %d skip requests, %d delta updates", st.Blocking, st.SkipRequests, st.DeltaUpdates)
	}
	for uri := range st.URIs {
		if strings.Contains(uri, "token") {
			t.Fatalf("origin saw %q", uri)
		}
	}
	// A bad _HLS_skip is the edge's 400, before any origin work.
	if code, _, body := get(t, base+variant+"?_HLS_skip=yes&token="+tok); code != 400 ||
		string(body) != "bad request: _HLS_skip must be YES or v2\n" || o.Stats().Requests != st.Requests {
		t.Fatalf("_HLS_skip=yes: %d %q", code, body)
	}
}

// A thousand viewers asking for the same delta version cost the origin one blocking request, whatever order they
// wrote the directives in; the full playlist of that version is another entry, and neither is served for the
// other.
func TestLLDeltaUpdateOneOriginRequestPerVersion(t *testing.T) {
	clk := newLLClock()
	originURL, o := startLLOrigin(t, clk, synthorigin.Config{URIs: synthorigin.URIsPath})
	base, srv := startEdgeOn(t, clk, nil, originURL)
	pl := base + "/play/a001/index.m3u8"
	if code, _, _ := get(t, pl+"?token=first"); code != 200 {
		t.Fatalf("plain playlist: %d", code)
	}
	const viewers = 1000
	key := fmt.Sprintf("/play/a001/index.m3u8?_HLS_msn=%d&_HLS_part=2&_HLS_skip=YES", llSeq)
	first := herdOneVersion(t, clk, o, srv, pl, key, viewers, "\n#EXT-X-SKIP:SKIPPED-SEGMENTS=4\n", []string{
		"?_HLS_msn=%d&_HLS_part=2&_HLS_skip=YES&token=v%d",
		"?_HLS_skip=YES&token=v%[2]d&_HLS_part=2&_HLS_msn=%[1]d",
		"?_HLS_part=02&_HLS_skip=YES&_HLS_msn=0%d&token=v%d",
	})
	if st := o.Stats(); st.BlockingRequests != 1 || st.Blocking[key] != 1 || st.DeltaUpdates != 1 {
		t.Fatalf("%d viewers cost %d blocking requests at the origin (%v), %d delta updates; want 1 for %s", viewers,
			st.BlockingRequests, st.Blocking, st.DeltaUpdates, key)
	}
	// The same version without _HLS_skip is the whole playlist, from the origin: the delta is not served for it.
	code, _, whole := get(t, pl+fmt.Sprintf("?_HLS_msn=%d&_HLS_part=2", llSeq))
	if code != 200 || strings.Contains(string(whole), "#EXT-X-SKIP") || len(segmentLines(string(whole))) != 10 ||
		o.Stats().BlockingRequests != 2 {
		t.Fatalf("full playlist of the version: %d, %d blocking requests at the origin:\n%s", code,
			o.Stats().BlockingRequests, whole)
	}
	// And the delta, asked again, is the cached one.
	if code, _, again := get(t, pl+fmt.Sprintf("?_HLS_skip=YES&_HLS_msn=%d&_HLS_part=2", llSeq)); code != 200 ||
		string(again) != first || o.Stats().BlockingRequests != 2 {
		t.Fatalf("delta again: %d, same %v, %d blocking requests", code, string(again) == first, o.Stats().BlockingRequests)
	}
	wantMetrics(t, srv, `hlsedge_ll_blocking_requests_total 1002`)
}

// What the edge learns from a delta update is what it learns from the whole playlist: the target duration that
// sets the hold, and the parts and hinted part, which EXT-X-SKIP never replaces.
func TestObserveLearnsFromADeltaUpdate(t *testing.T) {
	l := &llState{seed: maphash.MakeSeed()}
	l.cfg.Store(&llConfig{maxHold: 30 * time.Second})
	l.playlists.max, l.parts.max = 8, 8
	isToken := func(k []byte) bool { return string(k) == "token" }
	delta := strings.Replace(llTestPlaylist, "#EXT-X-MEDIA-SEQUENCE:10\n",
		"#EXT-X-MEDIA-SEQUENCE:4\n#EXT-X-SKIP:SKIPPED-SEGMENTS=6\n", 1)
	delta = strings.Replace(delta, "TARGETDURATION:1", "TARGETDURATION:2", 1)
	l.observe([]byte("/play/a001/index.m3u8?_HLS_msn=11&_HLS_skip=YES"), []byte(delta), isToken)
	p, ok := l.playlist([]byte("/play/a001/index.m3u8"))
	if !ok || p.target != 2*time.Second || p.ended || l.holdWait([]byte("/play/a001/index.m3u8")) != 7*time.Second {
		t.Fatalf("learned %+v (%v) from a delta", p, ok)
	}
	if !l.isPart([]byte("/play/a001/10.0.m4s")) || !l.isPart([]byte("/play/a001/11.0.m4s")) {
		t.Fatal("the parts of a delta are not known")
	}
}

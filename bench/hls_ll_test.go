package bench

import (
	"bytes"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hlsedge/hlsedge/bench/synthorigin"
	"github.com/hlsedge/hlsedge/internal/clocks"
)

// llT0 is 1.2 s into segment 566666667 (which starts at 1_700_000_001 s), on a part boundary: with 0.6 s parts,
// parts 0 and 1 are complete and part 2 is hinted. Steps of 0.1 s land on every part's completion.
var llT0 = time.Unix(1_700_000_002, 200_000_000)

const llS = 566666667

// TestViewerLL runs two LL viewers against the real synthetic origin on a shared manual clock: they join
// PART-HOLD-BACK behind the live edge, catch up on listed parts, then at the live edge ask for every part with
// a blocking reload and a hinted-part request sent as soon as the hint names it, and get it the instant the
// origin completes it.
func TestViewerLL(t *testing.T) {
	clk := clocks.NewManual(llT0)
	ro := startRecordingOrigin(t, synthorigin.Config{Channels: []string{"a001"}, LL: true, URIs: synthorigin.URIsPath,
		Now: clk.Now, SleepUntil: clk.SleepUntil}, nil)
	const viewers = 2
	// 3.1 s: the run ends at 4.3 s into segment S, between two parts (4.2 and 4.8).
	var progress bytes.Buffer
	rep := runOnClock(t, clk, HLSConfig{URL: ro.base + "/play/a001/index.m3u8", Viewers: viewers, Duration: 3100 * time.Millisecond,
		LL: true, OriginStats: ro.base + "/stats", Interval: time.Second}, &progress, 2*viewers+1, 100*time.Millisecond)
	reqs := ro.requests()
	part := func(seq int64, k int) string { return "/play/a001/" + ro.PartName("a001", 0, seq, k) }
	at := func(seq int64, k int) time.Duration { return ro.PartAvailable(seq, k).Sub(llT0) }

	t.Run("joins PART-HOLD-BACK behind the edge and catches up", func(t *testing.T) {
		// 1.8 s of hold back from the end of (S,1): the last independent part that far back is (S-1,0).
		var first []string
		for _, r := range reqs {
			if r.at.Equal(llT0) && strings.HasSuffix(r.uri, ".m4s") {
				first = append(first, r.uri)
			}
		}
		// ... and the hinted (S,2) at once.
		want := []string{part(llS-1, 0), part(llS-1, 1), part(llS-1, 2), part(llS-1, 3), part(llS-1, 4), part(llS, 0), part(llS, 1), part(llS, 2)}
		n := map[string]int{}
		for _, u := range first {
			n[u]++
		}
		for _, u := range want {
			if n[u] != viewers {
				t.Fatalf("parts asked for on joining: %v, want each of %v once per viewer", first, want)
			}
		}
		if len(first) != viewers*len(want) {
			t.Fatalf("parts asked for on joining: %v, want only %v", first, want)
		}
	})

	t.Run("asks for each live part as soon as it is hinted", func(t *testing.T) {
		// At the live edge every request is sent the instant the previous part completes: the hinted part and the
		// blocking reload for it, once per viewer.
		type key struct {
			uri string
			at  time.Duration
		}
		got := map[key]int{}
		for _, r := range reqs {
			got[key{r.uri, r.at.Sub(llT0)}]++
		}
		live := []struct {
			seq int64
			k   int
		}{{llS, 2}, {llS, 3}, {llS, 4}, {llS + 1, 0}, {llS + 1, 1}, {llS + 1, 2}}
		for i, p := range live {
			asked := time.Duration(0) // the first hint is asked for on joining
			if i > 0 {
				asked = at(live[i-1].seq, live[i-1].k)
			}
			reload := fmt.Sprintf("/play/a001/index.m3u8?_HLS_msn=%d&_HLS_part=%d", p.seq, p.k)
			if got[key{part(p.seq, p.k), asked}] != viewers || got[key{reload, asked}] != viewers {
				t.Fatalf("part %d.%d: %d part and %d reload requests at %v, want %d each; requests %v",
					p.seq, p.k, got[key{part(p.seq, p.k), asked}], got[key{reload, asked}], asked, viewers, reqs)
			}
		}
	})

	t.Run("times delivery from the origin's completion", func(t *testing.T) {
		// Five parts complete before the end (1.8 to 4.2 s); each arrived the instant the origin finished it.
		if d := rep.PartDelivery; d.Count != 5*viewers || d.MaxMs != 0 {
			t.Fatalf("part delivery %+v, want %d parts at 0 ms", d, 5*viewers)
		}
		if rep.Stalls != 0 || rep.Errors != 0 || rep.Startup.Count != viewers || rep.ViewersDenied != 0 {
			t.Fatalf("stalls %d errors %d startups %d denied %d; statuses %v", rep.Stalls, rep.Errors, rep.Startup.Count, rep.ViewersDenied, rep.Statuses)
		}
		// Per viewer: 7 catch-up parts and 5 live ones; 5 blocking reloads answered, the sixth cut by the end.
		if rep.PartRequests != 12*viewers || rep.BlockingRequests != 5*viewers || rep.SegmentRequests != viewers || !rep.LL {
			t.Fatalf("parts %d blocking %d segments (init) %d", rep.PartRequests, rep.BlockingRequests, rep.SegmentRequests)
		}
	})

	t.Run("reports the origin's cost per part and per playlist version", func(t *testing.T) {
		o := rep.Origin
		// Without an edge in between, each viewer's request reaches the origin: the cost is the viewer count. The
		// sixth hinted part and reload were asked for too, and counted when they arrived.
		if o == nil || o.DistinctParts != 13 || o.FetchesPerPart != viewers || o.PlaylistVersions != 6 || o.FetchesPerPlaylistVersion != viewers {
			t.Fatalf("origin %+v", o)
		}
		var sum bytes.Buffer
		if err := rep.WriteSummary(&sum); err != nil || !strings.Contains(sum.String(), "part delivery") ||
			!strings.Contains(sum.String(), "2.00 per part") || !strings.Contains(sum.String(), "2.00 per version") {
			t.Fatalf("summary:\n%s", sum.String())
		}
		if !strings.Contains(progress.String(), "part delivery") {
			t.Fatalf("progress %q", progress.String())
		}
		checkReportHTML(t, []byte(rep.HTML()))
	})
}

// TestViewerLLFallsBackOnPlainHLS: --ll against an origin without LL plays it the regular way.
func TestViewerLLFallsBackOnPlainHLS(t *testing.T) {
	clk := clocks.NewManual(time.Unix(1_700_000_000, 250_000_000))
	ro := startRecordingOrigin(t, synthorigin.Config{Channels: []string{"a001"}, SegmentDuration: time.Second, Now: clk.Now}, nil)
	rep := runOnClock(t, clk, HLSConfig{URL: ro.base + "/play/a001/index.m3u8", Viewers: 1, Duration: 2500 * time.Millisecond, LL: true},
		nil, 1+1, 250*time.Millisecond)
	if rep.SegmentRequests < 3 || rep.PartRequests != 0 || rep.BlockingRequests != 0 || rep.Errors != 0 {
		t.Fatalf("segments %d parts %d blocking %d errors %d", rep.SegmentRequests, rep.PartRequests, rep.BlockingRequests, rep.Errors)
	}
}

// TestHLSSeveralEdges spreads viewers over two servers round robin, as over two edges, and checks that each saw
// exactly its viewers and that the report's per-edge counts are what the servers saw.
func TestHLSSeveralEdges(t *testing.T) {
	clk := clocks.NewManual(time.Unix(1_700_000_000, 250_000_000))
	cfg := synthorigin.Config{Channels: []string{"a001"}, URIs: synthorigin.URIsPath, SegmentDuration: time.Second, Now: clk.Now}
	a := startRecordingOrigin(t, cfg, nil)
	b := startRecordingOrigin(t, cfg, nil)
	const viewers = 5
	rep := runOnClock(t, clk, HLSConfig{URL: "http://127.0.0.1:1/play/a001/index.m3u8?x=1", Edges: []string{a.base, b.base + "/"},
		Viewers: viewers, Duration: 2500 * time.Millisecond}, nil, viewers+1, 250*time.Millisecond)
	if len(rep.Edges) != 2 {
		t.Fatalf("edges %+v", rep.Edges)
	}
	for i, ro := range []*recordingOrigin{a, b} {
		reqs := ro.requests()
		opens := 0
		for _, r := range reqs {
			if r.uri == "/play/a001/index.m3u8?x=1" && r.at.Equal(time.Unix(1_700_000_000, 250_000_000)) {
				opens++
			}
		}
		want := []int{3, 2}[i] // viewers 0, 2, 4 and 1, 3
		e := rep.Edges[i]
		// A viewer loads the entry URL to open it, then again as its media playlist's first poll.
		if opens != 2*want || e.Viewers != int64(want) || e.Requests != uint64(len(reqs)) || e.Errors != 0 || e.Bytes == 0 {
			t.Fatalf("edge %d: %d viewers opened there, %d requests seen; report %+v, want %d viewers", i, opens, len(reqs), e, want)
		}
	}
	if rep.Edges[0].Requests+rep.Edges[1].Requests != rep.Requests {
		t.Fatalf("edges' requests do not add up to %d: %+v", rep.Requests, rep.Edges)
	}
	var sum bytes.Buffer
	if err := rep.WriteSummary(&sum); err != nil || !strings.Contains(sum.String(), "edge "+a.base+": 3 viewers") {
		t.Fatalf("summary:\n%s", sum.String())
	}
}

func TestOnEdgeAndValidateEdges(t *testing.T) {
	f := func(u, edge, want string) {
		t.Helper()
		if got := onEdge(u, edge); got != want {
			t.Fatalf("onEdge(%q, %q) = %q, want %q", u, edge, got, want)
		}
	}
	f("http://127.0.0.1:8080/play/a001/index.m3u8?token=t", "http://10.0.0.2:80", "http://10.0.0.2:80/play/a001/index.m3u8?token=t")
	f("http://h/x", "https://e/", "https://e/x")
	f("ws://h:1/ws", "wss://e:2", "wss://e:2/ws")
	f("http://h?q", "http://e", "http://e?q")
	f("http://h", "http://e", "http://e")

	g := func(edges []string, bad string) {
		t.Helper()
		err := validateEdges(edges, "http", "https")
		if bad == "" && err != nil || bad != "" && (err == nil || !strings.Contains(err.Error(), "'"+bad+"'")) {
			t.Fatalf("validateEdges(%q) = %v, want %q", edges, err, bad)
		}
	}
	g([]string{"http://a:1", "https://b/"}, "")
	g([]string{"http://a:1", "ftp://b"}, "edges[1]")
	g([]string{"http://a:1/play"}, "edges[0]")
	g([]string{"http://a:1?x=1"}, "edges[0]")
	g([]string{"http://u:p@a:1"}, "edges[0]")
	g([]string{"a:1"}, "edges[0]")
	c := HLSConfig{URL: "http://127.0.0.1/play/a/index.m3u8", Viewers: 1, Duration: time.Second, Edges: []string{"ws://x"}}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "'edges[0]'") {
		t.Fatalf("HLSConfig.Validate with a ws edge: %v", err)
	}
	if got := SplitList("a, b", "", "c,,"); strings.Join(got, "|") != "a|b|c" {
		t.Fatalf("SplitList: %q", got)
	}
}

func TestParseLLPlaylist(t *testing.T) {
	var p mediaPlaylist
	pl := `#EXTM3U
#EXT-X-VERSION:6
#EXT-X-TARGETDURATION:3
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.800
#EXT-X-PART-INF:PART-TARGET=0.600
#EXT-X-MEDIA-SEQUENCE:10
#EXT-X-MAP:URI="init_0.mp4"
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:30.000Z
#EXTINF:3.000,
10_aa.m4s
#EXT-X-PART:DURATION=0.600,URI="11_bb.0.m4s",INDEPENDENT=YES
#EXT-X-PART:DURATION=2.400,URI="11_bb.1.m4s"
#EXTINF:3.000,
11_bb.m4s
#EXT-X-PART:DURATION=0.600,URI="a,b.m4s",INDEPENDENT=YES
#EXT-X-PRELOAD-HINT:TYPE=PART,URI="12_cc.1.m4s"
#EXT-X-RENDITION-REPORT:URI="other.m3u8",LAST-MSN=12,LAST-PART=0
`
	if !parseMedia([]byte(pl), &p) {
		t.Fatal("not parsed")
	}
	t0 := time.Date(2023, 11, 14, 22, 13, 30, 0, time.UTC)
	if !p.canBlock || p.partTarget != 0.6 || p.partHoldBack != 1.8 || string(p.mapURI) != "init_0.mp4" || len(p.segments) != 2 || len(p.parts) != 3 {
		t.Fatalf("%+v", p)
	}
	f := func(i int, msn int64, index int, uri string, indep bool, avail time.Duration) {
		t.Helper()
		q := p.parts[i]
		if q.msn != msn || q.index != index || string(q.uri) != uri || q.independent != indep || !q.avail.Equal(t0.Add(avail)) {
			t.Fatalf("part %d: %+v (avail %v)", i, q, q.avail.Sub(t0))
		}
	}
	f(0, 11, 0, "11_bb.0.m4s", true, 3600*time.Millisecond)
	f(1, 11, 1, "11_bb.1.m4s", false, 6*time.Second)
	f(2, 12, 0, "a,b.m4s", true, 6600*time.Millisecond)
	if h := p.hint; h.msn != 12 || h.index != 1 || string(h.uri) != "12_cc.1.m4s" {
		t.Fatalf("hint %+v", h)
	}
	if j := p.joinAt(); j != (partPos{11, 0}) {
		t.Fatalf("joinAt %+v", j) // (12,0) is only 0.6 s from the end
	}
	if l := p.livePos(); l != (partPos{12, 1}) {
		t.Fatalf("livePos %+v", l)
	}
	for _, c := range []struct {
		path string
		part bool
	}{{"/play/a/1_ab.2.m4s", true}, {"/play/a/1_ab.m4s", false}, {"/play/a/1_ab.x.m4s", false}, {"/p/1.ts", false}, {"/p/.m4s", false}} {
		if isPartPath(c.path) != c.part {
			t.Fatalf("isPartPath(%q) = %v", c.path, !c.part)
		}
	}
}

// TestViewerLLTimesOnlyPartsAskedForEarly: a viewer that reaches the live edge late (here the clock jumps while
// it catches up, as a slow join would) finds its first hinted part already complete; that part is catch-up, not
// delivery, and only the parts it asked for before they existed are timed.
func TestViewerLLTimesOnlyPartsAskedForEarly(t *testing.T) {
	clk := clocks.NewManual(llT0)
	var ro *recordingOrigin
	var jumped atomic.Bool
	ro = startRecordingOrigin(t, synthorigin.Config{Channels: []string{"a001"}, LL: true, URIs: synthorigin.URIsPath,
		Now: clk.Now, SleepUntil: clk.SleepUntil}, func(uri string, _ int) int {
		if uri == "/play/a001/"+ro.PartName("a001", 0, llS-1, 0) && jumped.CompareAndSwap(false, true) {
			clk.Advance(700 * time.Millisecond) // to 1.9 s: the hinted (S,2) completes meanwhile, at 1.8 s
		}
		return 0
	})
	rep := runOnClock(t, clk, HLSConfig{URL: ro.base + "/play/a001/index.m3u8", Viewers: 1, Duration: 3100 * time.Millisecond, LL: true},
		nil, 2+1, 100*time.Millisecond)
	// Asked for before they existed: (S,3) at 2.4 s, (S,4) at 3.0, (S+1,0) at 3.6 and (S+1,1) at 4.2; not (S,2).
	if d := rep.PartDelivery; !jumped.Load() || d.Count != 4 || d.MaxMs != 0 {
		t.Fatalf("part delivery %+v", d)
	}
}

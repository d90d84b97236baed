package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/valyala/fasthttp"

	"github.com/hlsedge/hlsedge/authz/token"
	"github.com/hlsedge/hlsedge/bench/synthorigin"
	"github.com/hlsedge/hlsedge/internal/clocks"
)

// recordedReq is one request the test origin saw, at the time of the origin's clock.
type recordedReq struct {
	at  time.Time
	uri string
}

// recordingOrigin serves a real synthetic origin through a wrapper that records every request and can answer
// some itself.
type recordingOrigin struct {
	*synthorigin.Origin
	base     string
	mu       sync.Mutex
	reqs     []recordedReq
	override func(uri string, n int) int // status to answer instead of the origin (0: let the origin answer)
}

func startRecordingOrigin(t *testing.T, cfg synthorigin.Config, override func(uri string, n int) int) *recordingOrigin {
	t.Helper()
	o, err := synthorigin.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	ro := &recordingOrigin{Origin: o, override: override}
	h := o.Handler()
	srv := &fasthttp.Server{ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second, Handler: func(ctx *fasthttp.RequestCtx) {
		uri := string(ctx.RequestURI())
		ro.mu.Lock()
		ro.reqs = append(ro.reqs, recordedReq{now(), uri})
		n := len(ro.reqs)
		ro.mu.Unlock()
		if ro.override != nil {
			if st := ro.override(uri, n); st != 0 {
				ctx.Error("refused\n", st)
				return
			}
		}
		h(ctx)
	}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln) //nolint:errcheck // ends at Shutdown
	t.Cleanup(func() { o.Shutdown(); _ = srv.Shutdown() })
	ro.base = "http://" + ln.Addr().String()
	return ro
}

func (ro *recordingOrigin) requests() []recordedReq {
	ro.mu.Lock()
	defer ro.mu.Unlock()
	return append([]recordedReq(nil), ro.reqs...)
}

// TestViewerLive runs two viewers for a few live segments against the real origin and checks what a player does.
// Viewers and origin share a manual clock that moves in quarters of the target duration, and only while every
// viewer waits: the cadence is asserted exactly, whatever the machine's load.
func TestViewerLive(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 250_000_000) // a quarter into a segment period: polls never meet a boundary
	clk := clocks.NewManual(t0)
	ro := startRecordingOrigin(t, synthorigin.Config{Channels: []string{"a001"}, Variants: 2, URIs: synthorigin.URIsPath,
		SegmentDuration: time.Second, Now: clk.Now}, nil)
	const viewers, runFor = 2, 3500 * time.Millisecond
	rep := runOnClock(t, clk, HLSConfig{URL: ro.base + "/play/a001/index.m3u8", Viewers: viewers, Duration: runFor,
		Variant: VariantHighest}, nil, viewers+1, 250*time.Millisecond)
	reqs := ro.requests()
	high := "/play/a001/" + ro.VariantPlaylist("a001", 1)

	t.Run("picks the variant", func(t *testing.T) {
		for _, r := range reqs {
			if strings.HasSuffix(r.uri, ".m3u8") && r.uri != "/play/a001/index.m3u8" && r.uri != high {
				t.Fatalf("viewer asked for %s, want only the highest variant %s", r.uri, high)
			}
		}
	})
	t.Run("polls at target-duration cadence", func(t *testing.T) {
		// Each viewer polls on opening and then once per 1 s target duration, never in between: the clock also
		// stopped at every quarter, where a viewer polling early would have shown.
		polls := map[time.Duration]int{}
		for _, r := range reqs {
			if r.uri == high {
				polls[r.at.Sub(t0)]++
			}
		}
		want := map[time.Duration]int{0: viewers, time.Second: viewers, 2 * time.Second: viewers, 3 * time.Second: viewers}
		if !maps.Equal(polls, want) {
			t.Fatalf("media playlist polls by %d viewers at a 1 s target, by time since the start: %v, want %v", viewers, polls, want)
		}
	})
	t.Run("fetches each segment once", func(t *testing.T) {
		seen := map[string]int{}
		for _, r := range reqs {
			if strings.HasSuffix(r.uri, ".ts") {
				seen[r.uri]++
			}
		}
		// Three from the live edge on opening, then the one new segment at each of the three later polls.
		if len(seen) != 6 {
			t.Fatalf("%d distinct segments fetched, want 6", len(seen))
		}
		var seqs []int64
		for u, n := range seen {
			if n != 2 { // once per viewer
				t.Fatalf("segment %s fetched %d times by 2 viewers, want 2", u, n)
			}
			digits, _, _ := strings.Cut(u[strings.LastIndexByte(u, '/')+1:], "_")
			seq, err := strconv.ParseInt(digits, 10, 64)
			if err != nil {
				t.Fatalf("bad segment uri %s", u)
			}
			seqs = append(seqs, seq)
		}
		lo, hi := seqs[0], seqs[0]
		for _, s := range seqs {
			lo, hi = min(lo, s), max(hi, s)
		}
		if hi-lo+1 != int64(len(seqs)) {
			t.Fatalf("segments %d..%d fetched with gaps: %d distinct", lo, hi, len(seqs))
		}
		if rep.SegmentRequests != uint64(2*len(seen)) {
			t.Fatalf("report counts %d segment requests, origin saw %d", rep.SegmentRequests, 2*len(seen))
		}
	})
	t.Run("no stalls when segments arrive in time", func(t *testing.T) {
		if rep.Stalls != 0 || rep.SkippedSegments != 0 || rep.Errors != 0 || rep.Startup.Count != 2 {
			t.Fatalf("stalls %d skipped %d errors %d startups %d", rep.Stalls, rep.SkippedSegments, rep.Errors, rep.Startup.Count)
		}
		if rep.Statuses["200"] != rep.Requests || rep.ViewersPeak != 2 {
			t.Fatalf("statuses %v requests %d peak %d", rep.Statuses, rep.Requests, rep.ViewersPeak)
		}
	})
}

func TestViewerSlowSegmentIsStall(t *testing.T) {
	// Each segment lasts 1 s but takes 1.5 s to arrive (the origin moves the clock on while it answers): from the
	// second one on, every one is late. A window of 10 keeps the late ones listed.
	clk := clocks.NewManual(time.Unix(1_700_000_000, 250_000_000))
	ro := startRecordingOrigin(t, synthorigin.Config{Channels: []string{"a001"}, SegmentDuration: time.Second, WindowSize: 10, Now: clk.Now},
		func(uri string, _ int) int {
			if strings.HasSuffix(uri, ".ts") {
				clk.Advance(1500 * time.Millisecond)
			}
			return 0
		})
	rep := runOnClock(t, clk, HLSConfig{URL: ro.base + "/play/a001/index.m3u8", Viewers: 1, Duration: 4 * time.Second}, nil, 1+1, 250*time.Millisecond)
	if rep.Stalls < 1 || rep.ViewersStalled != 1 || rep.StallSec <= 0 {
		t.Fatalf("stalls %d, stalled viewers %d, %.2fs; want a stall", rep.Stalls, rep.ViewersStalled, rep.StallSec)
	}
	if rep.Startup.Count != 1 || rep.Startup.P50Ms < 1400 {
		t.Fatalf("startup %+v, want one startup after the 1.5 s delay", rep.Startup)
	}
}

// TestRunHLSOnTheWallClock is `bench hls` as it runs, on the wall clock: it ends at its duration, never sooner.
func TestRunHLSOnTheWallClock(t *testing.T) {
	ro := startRecordingOrigin(t, synthorigin.Config{Channels: []string{"a001"}, SegmentDuration: time.Second}, nil)
	const runFor = 300 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a safety net, not a measure
	defer cancel()
	began := time.Now()
	rep, err := RunHLS(ctx, HLSConfig{URL: ro.base + "/play/a001/index.m3u8", Viewers: 2, Duration: runFor, Interval: 100 * time.Millisecond}, nil)
	if err != nil {
		t.Fatalf("RunHLS: %v", err)
	}
	if took := time.Since(began); took < runFor || rep.DurationSec < runFor.Seconds() {
		t.Fatalf("the run took %v and reports %.3fs, want at least its %v duration", took, rep.DurationSec, runFor)
	}
	// How far the viewers got in that time is the machine's business; that they got no error is not.
	if rep.Statuses["200"] != rep.Requests || rep.Errors != 0 {
		t.Fatalf("statuses %v of %d requests, errors %d", rep.Statuses, rep.Requests, rep.Errors)
	}
}

func TestViewerDeniedStops(t *testing.T) {
	f := func(name string, status int, deny func(uri string, n int) bool) {
		t.Run(name, func(t *testing.T) {
			var deniedAt int
			var mu sync.Mutex
			clk := clocks.NewManual(time.Unix(1_700_000_000, 250_000_000))
			ro := startRecordingOrigin(t, synthorigin.Config{Channels: []string{"a001"}, SegmentDuration: time.Second, Now: clk.Now}, func(uri string, n int) int {
				mu.Lock()
				defer mu.Unlock()
				if deniedAt == 0 && deny(uri, n) {
					deniedAt = n
				}
				if deniedAt != 0 {
					return status
				}
				return 0
			})
			rep := runOnClock(t, clk, HLSConfig{URL: ro.base + "/play/a001/index.m3u8", Viewers: 1, Duration: 2500 * time.Millisecond},
				nil, 1+1, 250*time.Millisecond)
			reqs := ro.requests()
			if deniedAt == 0 {
				t.Fatalf("the refusal never happened (%d requests)", len(reqs))
			}
			if len(reqs) != deniedAt {
				t.Fatalf("viewer made %d requests after the %d", len(reqs)-deniedAt, status)
			}
			if rep.ViewersDenied != 1 || rep.Statuses[itoa(status)] != 1 || rep.Errors != 1 {
				t.Fatalf("denied %d, statuses %v, errors %d", rep.ViewersDenied, rep.Statuses, rep.Errors)
			}
		})
	}
	f("403 on the third segment", 403, func(uri string, n int) bool { return strings.HasSuffix(uri, ".ts") && n >= 4 })
	f("401 on the first playlist", 401, func(string, int) bool { return true })
	f("410 on a later playlist", 410, func(uri string, n int) bool { return strings.HasSuffix(uri, ".m3u8") && n > 1 })
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// TestHLSProgressAndReport runs a short bench with minted tokens and origin stats, then checks the progress
// lines, the JSON, and that the HTML report is one well-formed, self-contained document with its charts.
func TestHLSProgressAndReport(t *testing.T) {
	clk := clocks.NewManual(time.Unix(1_700_000_000, 250_000_000))
	ro := startRecordingOrigin(t, synthorigin.Config{Channels: []string{"a001", "a002"}, Variants: 2, SegmentDuration: time.Second, Now: clk.Now}, nil)
	base := ro.base
	secret := "report-test-secret-report-test-secret"
	var progress bytes.Buffer
	const viewers = 6
	rep := runOnClock(t, clk, HLSConfig{
		URL: base + "/play/{channel}/index.m3u8", Viewers: viewers, Duration: 1500 * time.Millisecond, Variant: VariantRandom,
		Interval: 100 * time.Millisecond, OriginStats: base + "/stats",
		Mint: &MintConfig{Kind: "jwt", Secret: secret, Channels: []string{"a001", "a002"}},
	}, &progress, viewers+1, 100*time.Millisecond)
	// One line per 100 ms interval of the 1.5 s run, the last one at its end.
	lines := strings.Split(strings.TrimSpace(progress.String()), "\n")
	if len(lines) != 15 {
		t.Fatalf("%d progress lines in 1.5 s at 100 ms, want 15:\n%s", len(lines), progress.String())
	}
	for _, l := range lines {
		for _, w := range []string{"viewers ", "req/s ", "MB/s ", "errors ", "p99 ", "stalls "} {
			if !strings.Contains(l, w) {
				t.Fatalf("progress line %q lacks %q", l, w)
			}
		}
	}
	if rep.Origin == nil || rep.Origin.SegmentFetches != rep.SegmentRequests || rep.Origin.DistinctSegments == 0 {
		t.Fatalf("origin offload %+v for %d viewer segment requests", rep.Origin, rep.SegmentRequests)
	}
	if rep.Mint != "jwt" || rep.ViewersStarted != viewers || rep.Statuses["200"] == 0 || len(rep.Series) != len(lines) {
		t.Fatalf("report %+v", rep)
	}
	var sum bytes.Buffer
	if err := rep.WriteSummary(&sum); err != nil || !strings.Contains(sum.String(), "segment") || !strings.Contains(sum.String(), "per segment") {
		t.Fatalf("summary (%v):\n%s", err, sum.String())
	}

	dir := t.TempDir()
	jp, hp := filepath.Join(dir, "r.json"), filepath.Join(dir, "r.html")
	if err := rep.WriteJSON(jp); err != nil {
		t.Fatal(err)
	}
	if err := rep.WriteHTML(hp); err != nil {
		t.Fatal(err)
	}
	jb, _ := os.ReadFile(jp)
	var back HLSReport
	if err := json.Unmarshal(jb, &back); err != nil || back.Requests != rep.Requests || len(back.Series) != len(rep.Series) {
		t.Fatalf("json round trip: %v", err)
	}
	hb, _ := os.ReadFile(hp)
	for _, b := range [][]byte{jb, hb, sum.Bytes(), progress.Bytes()} {
		if bytes.Contains(b, []byte("token=ey")) || bytes.Contains(b, []byte("eyJ")) {
			t.Fatalf("a token leaked into the output")
		}
	}
	checkReportHTML(t, hb)
}

// checkReportHTML parses the page strictly as XML and checks its structure: html/head/body, at least five SVG
// charts with polylines or bars, and nothing that needs the network.
func checkReportHTML(t *testing.T, page []byte) {
	t.Helper()
	if !bytes.HasPrefix(page, []byte("<!DOCTYPE html>")) {
		t.Fatalf("no doctype")
	}
	d := xml.NewDecoder(bytes.NewReader(page))
	d.Strict = true
	var stack []string
	counts := map[string]int{}
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("report is not well-formed: %v", err)
		}
		switch el := tok.(type) {
		case xml.StartElement:
			stack = append(stack, el.Name.Local)
			counts[el.Name.Local]++
			for _, a := range el.Attr {
				if a.Name.Local == "src" || a.Name.Local == "href" {
					t.Fatalf("report references %s=%q", a.Name.Local, a.Value)
				}
			}
			if el.Name.Local == "svg" && (len(stack) < 2 || stack[len(stack)-2] != "body") {
				t.Fatalf("svg inside %v", stack)
			}
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		}
	}
	if len(stack) != 0 || counts["html"] != 1 || counts["head"] != 1 || counts["body"] != 1 || counts["script"] != 0 {
		t.Fatalf("structure %v, open %v", counts, stack)
	}
	if counts["svg"] < 5 || counts["polyline"] < 6 || counts["table"] < 2 {
		t.Fatalf("charts: %d svg, %d polylines, %d tables", counts["svg"], counts["polyline"], counts["table"])
	}
}

func TestViewerURLMint(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	secret := "mint-test-secret-mint-test-secret!!"
	f := func(kind string, check func(ch, tok string)) {
		t.Helper()
		cfg := HLSConfig{URL: "http://127.0.0.1:1/play/{channel}/index.m3u8?x=1", Viewers: 3, Duration: time.Minute,
			Mint: &MintConfig{Kind: kind, Secret: secret, Channels: []string{"a001", "a002"}, IP: "127.0.0.1"}}
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		cfg = cfg.withDefaults()
		for i, ch := range []string{"a001", "a002", "a001"} {
			u, err := viewerURL(&cfg, i, now)
			if err != nil {
				t.Fatal(err)
			}
			prefix := "http://127.0.0.1:1/play/" + ch + "/index.m3u8?x=1&token="
			if !strings.HasPrefix(u, prefix) {
				t.Fatalf("%s viewer %d: %s", kind, i, u)
			}
			check(ch, u[len(prefix):])
		}
	}
	f("jwt", func(ch, tok string) {
		c := jwt.MapClaims{}
		if _, err := jwt.ParseWithClaims(tok, c, func(*jwt.Token) (any, error) { return []byte(secret), nil },
			jwt.WithValidMethods([]string{"HS256"}), jwt.WithTimeFunc(func() time.Time { return now })); err != nil {
			t.Fatalf("jwt: %v", err)
		}
		if s, _ := c["streams"].([]any); len(s) != 1 || s[0] != ch {
			t.Fatalf("jwt streams %v, want [%s]", c["streams"], ch)
		}
	})
	f("securetoken", func(ch, tok string) {
		parts := strings.Split(tok, "-")
		if len(parts) != 4 {
			t.Fatalf("securetoken %q", tok)
		}
		var start, end int64
		_ = json.Unmarshal([]byte(parts[3]), &start)
		_ = json.Unmarshal([]byte(parts[2]), &end)
		if want := token.MintSecureToken(secret, ch, "127.0.0.1", start, end, parts[1]); want != tok || start != now.Unix()-300 {
			t.Fatalf("securetoken %q, recomputed %q", tok, want)
		}
	})
	f("edge", func(ch, tok string) {
		if _, err := token.VerifyEdgeToken([]byte(secret), tok, ch, mustAddr("127.0.0.1"), now); err != nil {
			t.Fatalf("edge token: %v", err)
		}
	})
	if got := redactURL("http://h/p/index.m3u8?token=abc"); strings.Contains(got, "abc") {
		t.Fatalf("redactURL kept the token: %s", got)
	}
}

func TestHLSConfigValidate(t *testing.T) {
	f := func(c HLSConfig, field string) {
		t.Helper()
		err := c.Validate()
		if field == "" {
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			return
		}
		if err == nil || !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "'"+field+"'") {
			t.Fatalf("Validate(%+v) = %v, want an error naming '%s'", c, err, field)
		}
	}
	ok := HLSConfig{URL: "http://127.0.0.1/play/a/index.m3u8", Viewers: 1, Duration: time.Second}
	f(ok, "")
	c := ok
	c.URL = ""
	f(c, "url")
	c = ok
	c.URL = "ftp://x"
	f(c, "url")
	c = ok
	c.Viewers = 0
	f(c, "viewers")
	c = ok
	c.Duration = 0
	f(c, "duration")
	c = ok
	c.Ramp = 2 * time.Second
	f(c, "ramp")
	c = ok
	c.Variant = "best"
	f(c, "variant")
	c = ok
	c.Mint = &MintConfig{Kind: "md5", Secret: "s", Channels: []string{"a"}}
	f(c, "mint.kind")
	c.Mint = &MintConfig{Kind: "jwt", Channels: []string{"a"}}
	f(c, "mint.secret")
	c.Mint = &MintConfig{Kind: "edge", Secret: "short", Channels: []string{"a"}}
	f(c, "mint.secret")
	c.Mint = &MintConfig{Kind: "jwt", Secret: "s"}
	f(c, "mint.channels")
	c.Mint = &MintConfig{Kind: "jwt", Secret: "s", Channels: []string{"a", "b"}}
	f(c, "url")
	c.Mint = &MintConfig{Kind: "jwt", Secret: "s", Channels: []string{"a"}, IP: "nope"}
	f(c, "mint.ip")
	c.Mint = &MintConfig{Kind: "jwt", Secret: "s", Channels: []string{"a"}, Alg: "RS256"}
	f(c, "mint.alg")
}

func TestResolveURI(t *testing.T) {
	f := func(base, ref, want string) {
		t.Helper()
		if got := resolveURI(base, []byte(ref)); got != want {
			t.Fatalf("resolveURI(%q, %q) = %q, want %q", base, ref, got, want)
		}
	}
	f("http://h:1/play/a/index.m3u8?token=t", "1_ab.ts", "http://h:1/play/a/1_ab.ts")
	f("http://h:1/play/a/index.m3u8?token=t", "/play/a/1.ts?token=u", "http://h:1/play/a/1.ts?token=u")
	f("http://h:1/play/a/index.m3u8", "http://o/play/a/1.ts", "http://o/play/a/1.ts")
	f("https://h/x.m3u8", "//cdn/y.ts", "https://cdn/y.ts")
	f("http://h", "y.ts", "http://h/y.ts")
}

func TestParsePlaylists(t *testing.T) {
	var p mediaPlaylist
	if !parseMedia([]byte("#EXTM3U\r\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:7\n#EXTINF:3.5,title\na.ts\n#EXT-X-DISCONTINUITY\n#EXTINF:2,\nb.ts?x=1\n#EXT-X-ENDLIST\n"), &p) {
		t.Fatal("not parsed")
	}
	if p.target != 4 || p.seq != 7 || !p.ended || len(p.segments) != 2 || p.segments[1].seq != 8 ||
		string(p.segments[1].uri) != "b.ts?x=1" || p.segments[0].duration != 3.5 {
		t.Fatalf("%+v", p)
	}
	vs := parseMaster([]byte("#EXTM3U\n#EXT-X-STREAM-INF:RESOLUTION=1x1,BANDWIDTH=900,CODECS=\"a,b\"\nhi.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=100\nlo.m3u8\n"))
	if len(vs) != 2 || vs[0].bandwidth != 900 || vs[1].uri != "lo.m3u8" {
		t.Fatalf("%+v", vs)
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

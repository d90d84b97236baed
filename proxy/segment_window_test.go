package proxy

import (
	"bufio"
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"os/exec"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/hlsedge/hlsedge/authz"
	"github.com/hlsedge/hlsedge/authz/token"
	"github.com/hlsedge/hlsedge/bench/synthorigin"
)

// segmentWindows configures short segment windows: targets target durations, at least min.
func segmentWindows(targets int, min time.Duration) func(*authz.EdgeConfig) {
	return func(e *authz.EdgeConfig) { e.SegmentTTLTargets, e.SegmentTTLMin = &targets, min }
}

// tokenOf returns the token parameter of a URI in a rewritten playlist.
func tokenOf(t *testing.T, uri string) string {
	t.Helper()
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatal(err)
	}
	tok := u.Query().Get("token")
	if tok == "" {
		t.Fatalf("%q carries no token", uri)
	}
	return tok
}

// childExpiry is the expiry of an edge token of channel a001, however old.
func childExpiry(t *testing.T, tok string) time.Time {
	t.Helper()
	et, err := token.VerifyEdgeToken([]byte(testEdgeSecret), tok, "a001", netip.MustParseAddr("127.0.0.1"), time.Unix(0, 0))
	if err != nil {
		t.Fatalf("%q: %v", tok, err)
	}
	return time.Unix(et.Expires, 0)
}

var uriLine = regexp.MustCompile(`(?m)^[^#\s][^\s]*$`)

// A segment URL copied out of a live playlist is refused with 410 once its window is over, while the player
// reloading the playlist gets fresh ones; the variant URLs of the master, which the player keeps reloading,
// live as long as the viewer's token, and VOD segments as long as the presentation plus the margin.
func TestLeakedSegmentURLIsRefusedAfterItsWindow(t *testing.T) {
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/index.m3u8"):
			w.Write([]byte("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000\nlive.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=400000\nvod.m3u8\n"))
		case strings.HasSuffix(r.URL.Path, "/live.m3u8"):
			w.Write([]byte(testPlaylist + "#EXT-X-KEY:METHOD=AES-128,URI=\"k.bin\"\n#EXTINF:3.000,\nseg9.ts\n"))
		case strings.HasSuffix(r.URL.Path, "/vod.m3u8"):
			w.Write([]byte(testPlaylist + "#EXT-X-ENDLIST\n"))
		default:
			w.Write([]byte("segment"))
		}
	})
	var clock atomic.Int64
	start := time.Now().Truncate(time.Second)
	clock.Store(start.UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	at := func(d time.Duration) { clock.Store(start.Add(d).UnixNano()) }
	logs := &syncBuffer{}
	cfg := &Config{Origins: []OriginConfig{{URL: o.url}}}
	cfg.Upstream.Timeout, cfg.Upstream.ConnectTimeout = 10*time.Second, 5*time.Second
	withAuth(cfg)
	segmentWindows(3, 10*time.Second)(&cfg.Auth.Edge)
	srv := buildEdge(t, cfg, Options{Log: slog.New(slog.NewJSONHandler(logs, nil)), Now: now})
	base := "http://" + serveEdge(t, srv).Addr().String()

	// Minted on the edge's clock: a token minted on the wall clock a second boundary after start would expire a
	// second after start+1h, and the variants' expiry checked below would be a second off.
	jwt, err := token.MintJWT(token.JWTMint{Alg: "HS256", Key: []byte(testJWTSecret), Streams: []string{"a001"},
		Subject: "alice", TTL: time.Hour, Now: start})
	if err != nil {
		t.Fatal(err)
	}
	fetch := func(uri string) []string {
		t.Helper()
		code, _, body := get(t, base+uri)
		if code != 200 {
			t.Fatalf("%s: %d %s", uri, code, body)
		}
		// Resolved as the player does, to paths on the edge.
		ref, _ := url.Parse(uri)
		var out []string
		for _, u := range uriLine.FindAllString(string(body), -1) {
			r, err := url.Parse(u)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, ref.ResolveReference(r).String())
		}
		for _, m := range regexp.MustCompile(`URI="([^"]+)"`).FindAllStringSubmatch(string(body), -1) {
			r, _ := url.Parse(m[1])
			out = append(out, ref.ResolveReference(r).String())
		}
		return out
	}
	status := func(uri string) (int, string) {
		code, _, body := get(t, base+uri)
		return code, strings.TrimSpace(string(body))
	}
	variants := fetch("/play/a001/index.m3u8?token=" + jwt)
	if len(variants) != 2 {
		t.Fatalf("master: %q", variants)
	}
	for _, v := range variants {
		if exp := childExpiry(t, tokenOf(t, v)); !exp.Equal(start.Add(time.Hour)) {
			t.Fatalf("variant %s expires at %v, want the viewer's token's expiry %v", v, exp, start.Add(time.Hour))
		}
	}
	live, vod := variants[0], variants[1]

	segs := fetch(live)
	if len(segs) != 4 {
		t.Fatalf("live playlist: want three segments and a key, got %q", segs)
	}
	leaked := segs[0]
	exp := childExpiry(t, tokenOf(t, leaked))
	if key := segs[3]; !strings.Contains(key, "k.bin") || !childExpiry(t, tokenOf(t, key)).Equal(exp) {
		t.Fatalf("the key %s must carry the segments' window", key)
	}
	if w := exp.Sub(start); w < 10*time.Second || w > 15*time.Second {
		t.Fatalf("segment window %v, want 10 s rounded up to its 5 s grid", w)
	}
	if code, body := status(leaked); code != 200 || body != "segment" {
		t.Fatalf("segment in its window: %d %q", code, body)
	}
	at(exp.Sub(start) - time.Second)
	if code, _ := status(leaked); code != 200 {
		t.Fatalf("segment a second before its window ends: %d", code)
	}
	at(exp.Sub(start))
	if code, body := status(leaked); code != http.StatusGone || body != "edge: token expired" {
		t.Fatalf("segment URL copied out of the playlist, after its window: %d %q, want 410", code, body)
	}
	// The player reloading the playlist (with the variant URL it got from the master) gets fresh ones.
	reloaded := fetch(live)
	if tokenOf(t, reloaded[0]) == tokenOf(t, leaked) {
		t.Fatal("the reload must mint new segment tokens")
	}
	for _, s := range reloaded {
		if code, _ := status(s); code != 200 {
			t.Fatalf("segment (or key) of the reloaded playlist: %d", code)
		}
	}
	// Half an hour later the variant URL still plays, with segment tokens of that moment.
	at(30 * time.Minute)
	for _, s := range fetch(live) {
		if code, _ := status(s); code != 200 {
			t.Fatalf("after 30 min of reloads: %d", code)
		}
	}
	// VOD: the presentation (6 s) plus vod_ttl_margin (1h), bounded by the viewer's token.
	at(0)
	vsegs := fetch(vod)
	if exp := childExpiry(t, tokenOf(t, vsegs[0])); !exp.Equal(start.Add(time.Hour)) {
		t.Fatalf("VOD segment token expires at +%v, want the viewer's +1h", exp.Sub(start))
	}
	if !strings.Contains(logs.String(), `"status":410`) {
		t.Fatalf("the refusal must be logged:\n%s", logs.String())
	}
}

// deniedLines returns the edge's "request denied" log lines.
func deniedLines(log string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "request denied") {
			out = append(out, l)
		}
	}
	return out
}

// ffprobe plays a live two-variant channel through the edge with 6 s segment windows, for 14 media sequence
// numbers (more than 33 s of live, five windows and more): it keeps reloading the playlists, so it never meets
// a refusal, though the reloads carry new segment tokens.
func TestFFprobePlaysThroughShortSegmentWindows(t *testing.T) {
	if _, err := exec.LookPath("ffprobe"); err != nil {
		t.Fatal("ffprobe is missing: `make test` installs ffmpeg (apt-get install ffmpeg)")
	}
	originURL, _ := startDemoOrigin(t, synthorigin.Config{Channels: []string{"a001"}, URIs: synthorigin.URIsAbsolute, Variants: 2})
	logs := &syncBuffer{}
	cfg := &Config{Origins: []OriginConfig{{URL: originURL}}}
	cfg.Upstream.Timeout, cfg.Upstream.ConnectTimeout = 10*time.Second, 5*time.Second
	withAuth(cfg)
	segmentWindows(2, time.Second)(&cfg.Auth.Edge) // 2 x 3 s
	srv := buildEdge(t, cfg, Options{Log: slog.New(slog.NewJSONHandler(logs, nil))})
	base := "http://" + serveEdge(t, srv).Addr().String()
	master := base + "/play/a001/index.m3u8?token=" + mintJWT(t, time.Hour, "a001")

	// The windows are as configured: a media playlist's segments expire 6 to 9 s after the edge took it, which
	// is between before and after, however long that took.
	_, _, body := get(t, master)
	variant := uriLine.FindString(string(body))
	before := time.Now()
	_, _, body = get(t, base+variant)
	after := time.Now()
	seg := uriLine.FindString(string(body))
	exp := childExpiry(t, tokenOf(t, seg))
	if exp.Before(before.Add(6*time.Second)) || !exp.Before(after.Add(9*time.Second)) {
		t.Fatalf("segment window ends %v after the request and %v after its answer, want 6 s rounded up to its 3 s grid",
			exp.Sub(before), exp.Sub(after))
	}

	// ffprobe reads packets for as long as it runs; the test stops it at the 14th sequence number, which the
	// origin publishes one per 3 s. The committed media loop their timestamps, so a media-time limit
	// (-read_intervals) would never be reached.
	const segments = 14
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ffprobe", "-v", "verbose", "-rw_timeout", "10000000", "-show_entries", "packet=pts_time", "-of", "csv=p=0", master)
	cmd.WaitDelay = 5 * time.Second
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Astra's names: /play/a001/{sequence}_{hash}.ts, one hash per variant.
	request := regexp.MustCompile(`HLS request for url '[^']*/([0-9]+)_[0-9a-f]+\.ts(\?[^']+)'`)
	seen, tokens := map[string]bool{}, map[string]bool{}
	var tail []string
	sc := bufio.NewScanner(stderr)
	for sc.Scan() && len(seen) < segments {
		line := sc.Text()
		tail = append(tail[max(0, len(tail)-20):], line)
		if m := request.FindStringSubmatch(line); m != nil {
			seen[m[1]] = true
			tokens[tokenOf(t, m[2])] = true
		}
	}
	cancel()
	_ = cmd.Wait()
	if len(seen) < segments {
		t.Fatalf("ffprobe stopped after %d sequence numbers:\n%s\nedge log:\n%s", len(seen), strings.Join(tail, "\n"), logs.String())
	}
	if len(tokens) < 5 {
		t.Fatalf("%d sequence numbers came with %d tokens: the reloads must have minted new ones", len(seen), len(tokens))
	}
	if d := deniedLines(logs.String()); len(d) > 0 {
		t.Fatalf("a player that keeps reloading met %d refusals:\n%s", len(d), strings.Join(d, "\n"))
	}
}

// playlistPaced is an edge clock that stands still between playlist requests and catches up with the wall clock
// at each one. A player slowed down by a loaded machine fetches its segments late, but it reloads its playlists
// late too: on this clock, whether a segment token has run out depends on what the player did (how many reloads
// ago it took the URL), not on how fast the machine was.
type playlistPaced struct{ at atomic.Int64 }

func (p *playlistPaced) Now() time.Time { return time.Unix(0, p.at.Load()) }

// pace makes srv's clock p's, moved on by every playlist request before the edge handles it.
func (p *playlistPaced) pace(srv *Server) {
	p.at.Store(time.Now().UnixNano())
	next := srv.public.Handler
	srv.public.Handler = func(ctx *fasthttp.RequestCtx) {
		if bytes.HasSuffix(ctx.Path(), []byte(".m3u8")) {
			p.at.Store(time.Now().UnixNano())
		}
		next(ctx)
	}
	srv.clock = p.Now
}

// hls.js in Chromium plays a live two-variant channel for a minute with segment windows of about 10 s: it
// keeps reloading the playlists and takes each segment's URL from the latest, so no request is refused and
// playback keeps moving. The edge's clock follows the player's playlist reloads (playlistPaced): a player that
// kept the URLs of its first playlists would still be refused within a few reloads.
func TestHLSJSPlaysThroughShortSegmentWindows(t *testing.T) {
	// A long window keeps the segment a player starts from listed while a loaded machine is slow to fetch it.
	originURL, _ := startDemoOrigin(t, synthorigin.Config{Channels: []string{"a001"}, Variants: 2, WindowSize: 8})
	windows := func(c *Config) {
		withSecureToken(c)
		segmentWindows(3, time.Second)(&c.Auth.Edge) // 3 x 3 s
		c.Server.ReadTimeout = 10 * time.Second
	}
	var clock playlistPaced
	e := startPlayerEdgeWith(t, PlayerConfig{}, windows, clock.pace, originURL)
	tok := secureToken("a001", "127.0.0.1", time.Hour)

	// The windows are as configured.
	_, _, body := get(t, e.base+"/a001/index.m3u8?token="+tok)
	variants := uriLine.FindAllString(string(body), -1)
	if len(variants) != 2 {
		t.Fatalf("want a master with two variants:\n%s", body)
	}
	// The edge's clock is the wall clock's at the playlist request, between before and after.
	before := time.Now()
	_, _, body = get(t, e.base+variants[0])
	after := time.Now()
	seg := uriLine.FindString(string(body))
	et, err := token.VerifyEdgeToken([]byte("player-edge-secret-0123456789abcdef01"), tokenOf(t, seg), "a001",
		netip.MustParseAddr("127.0.0.1"), time.Unix(0, 0))
	if exp := time.Unix(et.Expires, 0); err != nil || exp.Before(before.Add(9*time.Second)) ||
		!exp.Before(after.Add(13*time.Second)) {
		t.Fatalf("segment window ends %v after the request and %v after its answer (%v), want 9 s rounded up to its 4 s grid",
			exp.Sub(before), exp.Sub(after), err)
	}

	const playFor = 60 // seconds of playback: six windows
	res := runBrowser(t, []browserCase{{Name: "short-windows", URL: e.base + "/a001/embed.html?engine=hlsjs&token=" + tok,
		Wait: "play", MinTime: playFor, TimeoutMS: (playFor + 60) * 1000}})
	r := res["short-windows"]
	if !r.Waited || r.State != "playing" || r.Engine != "hlsjs" || r.CurrentTime-r.StartTime < playFor {
		t.Errorf("hls.js did not play %d s: from %.1f to %.1f, state %q, engine %q, message %q %q, error %q",
			playFor, r.StartTime, r.CurrentTime, r.State, r.Engine, r.Message, r.Detail, r.Error)
	}
	for _, f := range r.FailedRequests {
		// A 404 is the origin's: hls.js may ask for a segment just past either end of the live window.
		if !strings.HasPrefix(f, "404 ") {
			t.Errorf("the page saw a refused request: %q", f)
		}
	}
	code, _, metrics := get(t, e.admin+"/metrics")
	if code != 200 {
		t.Fatalf("metrics: %d", code)
	}
	refused := regexp.MustCompile(`(?m)^hlsedge_requests_total\{route="[^"]*",status="(?:401|403|410)"\} ([0-9]+)$`)
	for _, m := range refused.FindAllStringSubmatch(string(metrics), -1) {
		if m[1] != "0" {
			t.Errorf("the edge refused requests while hls.js played: %s", m[0])
		}
	}
	if len(refused.FindAllString(string(metrics), -1)) == 0 {
		t.Fatalf("no refusal counters in /metrics; the check above would pass blindly:\n%s", metrics)
	}
}

package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/hlsedge/hlsedge/authz"
	"github.com/hlsedge/hlsedge/authz/token"
	"github.com/hlsedge/hlsedge/bench/synthorigin"
	"github.com/hlsedge/hlsedge/internal/testkit"
	"github.com/hlsedge/hlsedge/proxy/web"
)

const playerSTSecret = "player-securetoken-secret"

// playerEdge is an edge with its player, and its admin listener, started like startEdge.
type playerEdge struct {
	base, admin string
	srv         *Server
	player      *player
}

// startPlayerEdge mirrors startEdge with both URL layouts routed and the player configured by pcfg.
func startPlayerEdge(t *testing.T, pcfg PlayerConfig, mutate func(*Config), origins ...string) *playerEdge {
	t.Helper()
	return startPlayerEdgeWith(t, pcfg, mutate, nil, origins...)
}

// startPlayerEdgeWith is startPlayerEdge with prepare run on the edge before it serves.
func startPlayerEdgeWith(t *testing.T, pcfg PlayerConfig, mutate func(*Config), prepare func(*Server), origins ...string) *playerEdge {
	t.Helper()
	cfg := &Config{}
	for _, o := range origins {
		cfg.Origins = append(cfg.Origins, OriginConfig{URL: o})
	}
	// Long enough for any answering origin on a loaded machine; nothing here waits for an upstream timeout.
	cfg.Upstream.Timeout = 10 * time.Second
	cfg.Upstream.ConnectTimeout = 5 * time.Second
	cfg.Routes = []RouteConfig{{Prefix: "/play/"}, {Prefix: "/", OriginPrefix: "/play/"}}
	// Open channels through a public group rather than auth.disabled, so the rewriter is built as in production.
	cfg.Auth = authz.Config{Groups: []authz.GroupConfig{{Name: "open", Channels: []string{"*"}, Public: true}}}
	cfg.Player = pcfg
	if mutate != nil {
		mutate(cfg)
	}
	logs := &lockedBuffer{}
	srv := buildEdge(t, cfg, Options{Log: slog.New(slog.NewTextHandler(logs, nil))})
	t.Cleanup(func() {
		// The edge never logs tokens, so its log can go into the test output when something went wrong.
		if t.Failed() || os.Getenv("HLSEDGE_TEST_EDGE_LOG") != "" {
			t.Logf("edge log:\n%s", logs.String())
		}
	})
	if prepare != nil {
		prepare(srv)
	}
	ln := serveEdge(t, srv)
	return &playerEdge{base: "http://" + ln.Addr().String(), admin: adminURL(srv), srv: srv, player: srv.player}
}

// lockedBuffer collects the edge's log from its goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// withSecureToken protects every channel with Flussonic securetoken, the token the embed links of the seed carry.
func withSecureToken(c *Config) {
	c.Auth = authz.Config{
		SecureToken: &token.SecureTokenConfig{Secret: playerSTSecret},
		// Segment windows of two minutes: these tests are about the player page, and a Chromium slowed by a loaded
		// machine can fetch a segment long after the playlist that listed it. The short windows are tested, with
		// hls.js too, in segment_window_test.go, which sets its own.
		Edge: authz.EdgeConfig{Secret: "player-edge-secret-0123456789abcdef01", SegmentTTLMin: 2 * time.Minute},
	}
}

// secureToken mints a token as the seed's PHP does: starttime = now - 300, endtime = starttime + lifetime.
func secureToken(stream, ip string, lifetime time.Duration) string {
	start := time.Now().Unix() - 300
	return token.MintSecureToken(playerSTSecret, stream, ip, start, start+int64(lifetime/time.Second), token.NewSalt())
}

// startBenchOrigin runs the demo origin (Astra-like live window over real H.264/AAC segments) on loopback.
func startBenchOrigin(t *testing.T, channels ...string) string {
	t.Helper()
	// A long window keeps the segment a player starts from listed (and served) for a while, so a loaded machine
	// that is slow to fetch it does not meet the origin's 404 for segments that left the window.
	o, err := synthorigin.New(synthorigin.Config{Channels: channels, WindowSize: 8})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go o.Serve(ln)
	t.Cleanup(o.Shutdown)
	return "http://" + ln.Addr().String()
}

func TestPlayerConfigValidate(t *testing.T) {
	f := func(want string, list ...string) {
		t.Helper()
		c := PlayerConfig{FrameAncestors: list}
		err := c.Validate()
		if want == "" {
			if err != nil {
				t.Fatalf("%q: %v", list, err)
			}
			return
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("%q: got %v, want an error with %q", list, err, want)
		}
	}
	f("", "*")
	f("", "'self'")
	f("", "'none'")
	f("", "https://tv.example.com", "https://*.example.com", "http://10.0.0.5:8000", "'self'")
	f("'player.frame_ancestors'", []string{}...)
	f("'player.frame_ancestors[1]' \"*\" must be the only entry", "https://a.example", "*")
	f("'player.frame_ancestors[0]' \"'none'\" must be the only entry", "'none'", "'self'")
	f("'player.frame_ancestors[0]'", "tv.example.com")
	f("'player.frame_ancestors[0]'", "https://tv.example.com/path")
	f("'player.frame_ancestors[0]'", "https://tv.example.com; script-src *")
	f("'player.frame_ancestors[0]'", "https://tv.example.com 'unsafe-inline'")
	f("'player.frame_ancestors[0]'", "https://a.*.example.com")
	f("'player.frame_ancestors[0]'", "https://tv.example.com:")
	f("'player.frame_ancestors[0]'", "https://tv.example.com:80a")
	f("'player.frame_ancestors[0]'", "javascript://x")
	f("'player.frame_ancestors[0]'", "'unsafe-inline'")

	var c PlayerConfig
	c.SetDefaults([]string{"https://tv.example.com"})
	if len(c.FrameAncestors) != 1 || c.FrameAncestors[0] != "https://tv.example.com" {
		t.Fatalf("frame_ancestors must default to the CORS allow-list, got %q", c.FrameAncestors)
	}
	c = PlayerConfig{}
	c.SetDefaults(nil)
	if len(c.FrameAncestors) != 1 || c.FrameAncestors[0] != "*" {
		t.Fatalf("frame_ancestors without CORS origins must default to *, got %q", c.FrameAncestors)
	}
	if err := (&PlayerConfig{Disabled: true}).Validate(); err != nil {
		t.Fatalf("a disabled player needs no frame ancestors: %v", err)
	}
}

// TestPlayerEmbedsHLSJS fails when the build skipped the copy of hls.js, which `make build` and `make test` do.
func TestPlayerEmbedsHLSJS(t *testing.T) {
	p, err := newPlayer(&PlayerConfig{FrameAncestors: []string{"*"}}, []RouteConfig{{Prefix: "/", OriginPrefix: "/play/"}}, web.FS())
	if err != nil {
		t.Fatal(err)
	}
	if !p.HasHLSJS() {
		t.Fatalf("proxy/web/assets/%s is missing: run `make build` (npm ci, then the copy from node_modules/hls.js/dist) before go test", web.HLSJS)
	}
	a := p.assets[playerAssetPrefix+web.HLSJS]
	lock, err := os.ReadFile("../package-lock.json")
	if err != nil {
		t.Fatal(err)
	}
	var lk struct {
		Packages map[string]struct{ Version string } `json:"packages"`
	}
	if err := json.Unmarshal(lock, &lk); err != nil {
		t.Fatal(err)
	}
	want := lk.Packages["node_modules/hls.js"].Version
	if want == "" || !strings.Contains(string(a.body[:min(len(a.body), 1<<20)]), `"`+want+`"`) {
		t.Fatalf("embedded hls.js is not the version pinned in package-lock.json (%q): run `make build` again", want)
	}
}

func TestEmbedPageAndAssets(t *testing.T) {
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(testPlaylist))
	})
	e := startPlayerEdge(t, PlayerConfig{FrameAncestors: []string{"https://tv.example.com", "https://*.example.org"}}, nil, o.url)

	xss := `"><img src=x onerror=alert(1)><script>alert(2)</script>`
	code, h, body := get(t, e.base+"/a001/embed.html?token="+strings.ReplaceAll(xss, " ", "%20"))
	if code != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
		t.Fatalf("embed page: %d %q", code, h.Get("Content-Type"))
	}
	page := string(body)
	for _, bad := range []string{"<img", "alert(", "a001"} {
		if strings.Contains(page, bad) {
			t.Fatalf("the page reflects request input (%q); it must be the same static page for every stream:\n%s", bad, page)
		}
	}
	csp := h.Get("Content-Security-Policy")
	for _, want := range []string{"frame-ancestors https://tv.example.com https://*.example.org", "script-src 'self'", "default-src 'none'"} {
		if !strings.Contains(csp, want) {
			t.Fatalf("CSP %q lacks %q", csp, want)
		}
	}
	if h.Get("Referrer-Policy") != "no-referrer" || h.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("embed page headers: %v", h)
	}
	if cc := h.Get("Cache-Control"); !strings.Contains(cc, "private") {
		t.Fatalf("the page URL carries a token; shared caches must not keep it (Cache-Control %q)", cc)
	}
	if o.total() != 0 {
		t.Fatalf("the embed page went to the origin: %v", o.allURIs())
	}

	// Every asset the page names is served, versioned, immutable and revalidates by ETag.
	var refs []string
	for _, attr := range []string{`href="`, `src="`, `data-hlsjs="`} {
		for rest := page; ; {
			i := strings.Index(rest, attr)
			if i < 0 {
				break
			}
			rest = rest[i+len(attr):]
			if ref := rest[:strings.IndexByte(rest, '"')]; ref != "data:," { // the empty favicon saves a request
				refs = append(refs, ref)
			}
		}
	}
	if len(refs) != 3 {
		t.Fatalf("want the css, the player script and hls.js in the page, got %q", refs)
	}
	for _, ref := range refs {
		if !strings.HasPrefix(ref, playerAssetPrefix) || !strings.Contains(ref, "?v=") {
			t.Fatalf("asset %q is not a versioned edge path (no CDN)", ref)
		}
		code, h, body := get(t, e.base+ref)
		if code != 200 || len(body) == 0 || !strings.Contains(h.Get("Cache-Control"), "immutable") || h.Get("ETag") == "" {
			t.Fatalf("%s: %d, %d bytes, %v", ref, code, len(body), h)
		}
		if code, _, _ := get(t, e.base+ref, "If-None-Match", h.Get("ETag")); code != 304 {
			t.Fatalf("%s with its ETag: %d, want 304", ref, code)
		}
	}

	f := func(method, path string, want int) {
		t.Helper()
		req, _ := http.NewRequest(method, e.base+path, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("%s %s: %d, want %d", method, path, resp.StatusCode, want)
		}
	}
	f("GET", "/play/a001/embed.html", 200)     // the Astra layout has a page too
	f("HEAD", "/a001/embed.html?token=x", 200) // link checkers
	f("POST", "/a001/embed.html", 405)
	f("GET", "/_hlsedge/missing.js", 404)
	f("GET", "/embed.html", 404)
	if code, _ := rawGet(t, e.base, "/a%3Cb/embed.html"); code != 400 {
		t.Fatalf("encoded stream name: %d, want 400", code)
	}
	if code, _ := rawGet(t, e.base, "/a<b>/embed.html"); code != 400 {
		t.Fatalf("stream name with markup: %d, want 400", code)
	}
	if code, _ := rawGet(t, e.base, "/../embed.html"); code != 400 {
		t.Fatalf("traversal: %d, want 400", code)
	}
	// Deeper paths are not a stream's page: they route to the origin like any other file.
	before := o.total()
	get(t, e.base+"/a001/sub/embed.html")
	if o.total() != before+1 {
		t.Fatal("/a001/sub/embed.html must go to the origin, not be the player page")
	}

	// Framing keywords also set X-Frame-Options for browsers without CSP.
	e2 := startPlayerEdge(t, PlayerConfig{FrameAncestors: []string{"'self'"}}, nil, o.url)
	if _, h, _ := get(t, e2.base+"/a001/embed.html"); h.Get("X-Frame-Options") != "SAMEORIGIN" ||
		!strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors 'self'") {
		t.Fatalf("'self': %v", h)
	}
}

// browserCase and browserResult are the contract with scripts/browser/embed.mjs.
type browserCase struct {
	Name       string `json:"name"`
	URL        string `json:"url"`
	Wait       string `json:"wait"`
	MinTime    int    `json:"minTime,omitempty"`
	TimeoutMS  int    `json:"timeoutMs"`
	Screenshot string `json:"screenshot,omitempty"`
	// OnPlayed, with Wait "play-then-error", is POSTed once the page plays, before the wait for its error.
	OnPlayed string `json:"onPlayed,omitempty"`
}

type browserResult struct {
	Name           string   `json:"name"`
	Waited         bool     `json:"waited"`
	Error          string   `json:"error"`
	State          string   `json:"state"`
	Status         string   `json:"status"`
	Engine         string   `json:"engine"`
	Played         bool     `json:"played"`
	Message        string   `json:"message"`
	Detail         string   `json:"detail"`
	StartTime      float64  `json:"startTime"`
	CurrentTime    float64  `json:"currentTime"`
	VideoWidth     int      `json:"videoWidth"`
	NativeHLS      string   `json:"nativeHLS"`
	MSE            bool     `json:"mse"`
	Pwned          bool     `json:"pwned"`
	ConsoleErrors  []string `json:"consoleErrors"`
	FailedRequests []string `json:"failedRequests"`
}

const chromiumPath = "/usr/bin/chromium"

// runBrowser runs the cases in one headless Chromium, with args added to its command line, and returns the results
// by name. Missing tools fail the test with the command that installs them: make test installs them, so their
// absence is a broken set-up.
func runBrowser(t *testing.T, cases []browserCase, args ...string) map[string]browserResult {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("%s is missing: run `make test` (it installs Debian's chromium and chromium-driver) or apt-get install chromium", chromiumPath)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is missing: install Debian's nodejs and npm, then run `make test`")
	}
	if _, err := os.Stat("../node_modules/playwright-core/package.json"); err != nil {
		t.Fatal("node_modules/playwright-core is missing: run `npm ci` in the repository root (make test does)")
	}
	dir := t.TempDir()
	spec, _ := json.Marshal(map[string]any{"chromium": chromiumPath, "userDataDir": filepath.Join(dir, "profile"), "cases": cases, "args": args})
	specPath := filepath.Join(dir, "cases.json")
	if err := os.WriteFile(specPath, spec, 0o600); err != nil {
		t.Fatal(err)
	}
	total := 30 * time.Second
	for _, c := range cases {
		total += time.Duration(c.TimeoutMS)*time.Millisecond + 20*time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), total)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "scripts/browser/embed.mjs", specPath)
	cmd.Dir = ".."
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("browser script: %v (deadline %v)\nstderr:\n%s\nstdout:\n%s", err, total, stderr.String(), out)
	}
	var res []browserResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("browser script output: %v\n%s", err, out)
	}
	byName := make(map[string]browserResult, len(res))
	for _, r := range res {
		byName[r.Name] = r
		t.Logf("%s: waited=%v state=%s status=%s engine=%s played=%v t=%.1f->%.1f width=%d nativeHLS=%q mse=%v msg=%q detail=%q err=%q console=%q failed=%q",
			r.Name, r.Waited, r.State, r.Status, r.Engine, r.Played, r.StartTime, r.CurrentTime, r.VideoWidth, r.NativeHLS, r.MSE, r.Message, r.Detail,
			r.Error, r.ConsoleErrors, r.FailedRequests)
	}
	return byName
}

// artifactDir keeps screenshots after the test: $HLSEDGE_TEST_ARTIFACTS, or one fixed directory under the system
// temp dir that each run overwrites.
func artifactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("HLSEDGE_TEST_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "hlsedge-test-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestEmbedPlaysInHeadlessChromium(t *testing.T) {
	origin := startBenchOrigin(t, "a001")
	// Chromium opens spare connections and parks them; a short read timeout makes the edge answer some of them
	// (408, which Chromium retries on a fresh connection) while the test runs, as a loaded machine does with 10 s.
	patient := func(c *Config) { withSecureToken(c); c.Server.ReadTimeout = 2 * time.Second }
	e := startPlayerEdge(t, PlayerConfig{}, patient, origin)
	// An edge whose origin is gone: the page must say so instead of spinning.
	down := startPlayerEdge(t, PlayerConfig{}, patient, "http://"+testkit.RefusingAddr(t))

	good := secureToken("a001", "127.0.0.1", time.Hour)
	forged := token.MintSecureToken("not-the-secret", "a001", "127.0.0.1", time.Now().Unix()-300, time.Now().Unix()+3600, token.NewSalt())
	expiredStart := time.Now().Unix() - 7200
	expired := token.MintSecureToken(playerSTSecret, "a001", "127.0.0.1", expiredStart, expiredStart+3600, token.NewSalt())
	// Expires while the viewer watches: once the page plays, the harness tells the test, which moves the edge's
	// clock past the token's end (10 min, while the other cases' tokens last an hour), so the next playlist
	// refresh is refused and the page must say why. On the edge's clock, not the wall clock: a loaded machine
	// can take longer than any short token lifetime to start Chromium playing.
	short := token.MintSecureToken(playerSTSecret, "a001", "127.0.0.1", time.Now().Unix()-300, time.Now().Unix()+600, token.NewSalt())
	// Its own edge: a clock moved on changes every time the edge tells (cache freshness, Age), not only tokens.
	ex := startPlayerEdge(t, PlayerConfig{}, patient, origin)
	var skew atomic.Int64
	ex.srv.clock = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	expire := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		skew.Store(int64(20 * time.Minute))
	}))
	defer expire.Close()
	xss := `%22%3E%3Cimg%20src=x%20onerror=%22window.__pwned=1%22%3E`
	art := artifactDir(t)
	shot := func(name string) string { return filepath.Join(art, "embed-"+name+".png") }

	cases := []browserCase{
		{Name: "expires-while-playing", URL: ex.base + "/a001/embed.html?engine=hlsjs&token=" + short, Wait: "play-then-error", OnPlayed: expire.URL, TimeoutMS: 60000, Screenshot: shot("expired-while-playing")},
		{Name: "play", URL: e.base + "/a001/embed.html?token=" + good, Wait: "play", MinTime: 4, TimeoutMS: 40000, Screenshot: shot("play")},
		{Name: "play-hlsjs", URL: e.base + "/a001/embed.html?engine=hlsjs&token=" + good, Wait: "play", MinTime: 4, TimeoutMS: 40000, Screenshot: shot("play-hlsjs")},
		{Name: "denied", URL: e.base + "/a001/embed.html?token=" + forged, Wait: "error", TimeoutMS: 15000, Screenshot: shot("denied")},
		{Name: "no-token", URL: e.base + "/a001/embed.html", Wait: "error", TimeoutMS: 15000},
		{Name: "expired", URL: e.base + "/a001/embed.html?token=" + expired, Wait: "error", TimeoutMS: 15000},
		{Name: "xss", URL: e.base + "/a001/embed.html?token=" + xss, Wait: "error", TimeoutMS: 15000},
		{Name: "origin-down", URL: down.base + "/a001/embed.html?token=" + good, Wait: "error", TimeoutMS: 20000, Screenshot: shot("origin-down")},
	}
	res := runBrowser(t, cases)
	t.Logf("screenshots in %s", art)

	for _, name := range []string{"play", "play-hlsjs"} {
		r := res[name]
		// A live stream starts a few segments behind the edge, so currentTime starts wherever the window is; what
		// counts is that it moves on by more than a 3 s segment, across a segment boundary.
		if !r.Waited || r.CurrentTime-r.StartTime <= 4 || r.State != "playing" || r.VideoWidth == 0 {
			t.Errorf("%s: video did not advance 4 s: from %.2f to %.2f, state %q, engine %q, width %d, message %q %q, error %q, failed requests %q",
				name, r.StartTime, r.CurrentTime, r.State, r.Engine, r.VideoWidth, r.Message, r.Detail, r.Error, r.FailedRequests)
		}
	}
	if r := res["play-hlsjs"]; r.Engine != "hlsjs" {
		t.Errorf("engine=hlsjs played with %q", r.Engine)
	}
	if r := res["play"]; r.NativeHLS == "" && r.Engine != "hlsjs" || r.NativeHLS != "" && r.Engine != "native" {
		t.Errorf("auto engine: canPlayType(mpegurl)=%q but played with %q", r.NativeHLS, r.Engine)
	}
	f := func(name, status, text string) {
		t.Helper()
		r := res[name]
		if !r.Waited || r.State != "error" || r.Status != status || !strings.Contains(r.Message, text) {
			t.Errorf("%s: want the %s message %q, got state %q status %q message %q detail %q (error %q)",
				name, status, text, r.State, r.Status, r.Message, r.Detail, r.Error)
		}
		if r.Pwned {
			t.Errorf("%s: markup from the URL ran in the page", name)
		}
	}
	f("denied", "403", "Access denied")
	f("no-token", "401", "needs an access link")
	f("expired", "410", "expired")
	f("xss", "403", "Access denied")
	f("expires-while-playing", "410", "expired")
	if r := res["expires-while-playing"]; r.Engine != "hlsjs" || !r.Played {
		t.Errorf("expires-while-playing: the token should have played before it expired (engine %q, played %v)", r.Engine, r.Played)
	}
	f("origin-down", "502", "not available right now")
	if d := res["origin-down"].Detail; !strings.Contains(d, "retrying") {
		t.Errorf("origin-down: the page should say it retries, detail %q", d)
	}

	// The viewers the browser made show on the status page: one session for the good token, and one for the token
	// that expired mid-play while it is less than 30 s idle.
	code, _, body := get(t, e.admin+"/")
	if code != 200 || !regexp.MustCompile(`<td>a001</td><td>[12]</td>`).Match(body) {
		t.Errorf("status page after playback: %d\n%s", code, body)
	}
}

func TestFlussonicLayoutFFprobeSecureToken(t *testing.T) {
	if _, err := exec.LookPath("ffprobe"); err != nil {
		t.Fatal("ffprobe is missing: run `make test` (it installs Debian's ffmpeg)")
	}
	origin := startBenchOrigin(t, "a001")
	e := startPlayerEdge(t, PlayerConfig{}, withSecureToken, origin)
	probe := func(url string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-rw_timeout", "10000000",
			"-show_entries", "stream=codec_type,codec_name", "-of", "compact", url)
		cmd.WaitDelay = 5 * time.Second
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := probe(e.base + "/a001/index.m3u8?token=" + secureToken("a001", "127.0.0.1", time.Hour))
	if err != nil {
		t.Fatalf("ffprobe through /a001/index.m3u8 with a securetoken: %v\n%s", err, out)
	}
	if !strings.Contains(out, "codec_name=h264|codec_type=video") || !strings.Contains(out, "codec_name=aac|codec_type=audio") {
		t.Fatalf("ffprobe did not see H.264 video and AAC audio:\n%s", out)
	}
	// A token minted for another stream does not open this one (the stream name is part of the hash).
	out, err = probe(e.base + "/a001/index.m3u8?token=" + secureToken("a002", "127.0.0.1", time.Hour))
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || !strings.Contains(out, "403") {
		t.Fatalf("ffprobe with another stream's token: err %v, want a 403 failure:\n%s", err, out)
	}
}

// BenchmarkPlayerServeMiss is what the player hook costs every segment and playlist request that is not its own.
func BenchmarkPlayerServeMiss(b *testing.B) {
	p, err := newPlayer(&PlayerConfig{FrameAncestors: []string{"*"}}, []RouteConfig{{Prefix: "/", OriginPrefix: "/play/"}}, web.FS())
	if err != nil {
		b.Fatal(err)
	}
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI("/a001/598445963_5860.ts?token=e1.AQFrAruLuej8sEW9YUx_AAABBGEwMDEA")
	ctx.Request.URI().PathOriginal() // parse once, as the server has by the time the hook runs
	b.ReportAllocs()
	for b.Loop() {
		if p.serve(&ctx) {
			b.Fatal("a segment was taken for a player path")
		}
	}
}

// TestParkedConnectionGets408NotA400: fasthttp hands a connection that sent nothing before the read timeout to the
// ErrorHandler, and whatever it writes is read by the browser as the answer to its next request on that socket.
func TestParkedConnectionGets408NotA400(t *testing.T) {
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(testPlaylist)) })
	e := startPlayerEdge(t, PlayerConfig{}, func(c *Config) { c.Server.ReadTimeout = 300 * time.Millisecond }, o.url)
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(e.base, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	b, _ := io.ReadAll(c)
	if len(b) > 0 && !strings.HasPrefix(string(b), "HTTP/1.1 408") {
		t.Fatalf("a connection that sent nothing got %q; browsers read that as the answer to their next request", b)
	}
}

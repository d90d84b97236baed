package proxy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/hlsedge/hlsedge/authz"
	"github.com/hlsedge/hlsedge/internal/testkit"
	"github.com/hlsedge/hlsedge/proxy/admin"
	"github.com/hlsedge/hlsedge/signaling"
)

// testOrigin is a real HTTP origin on loopback whose behaviour each test sets, and which counts what it is asked.
type testOrigin struct {
	uriCounter
	url     string
	srv     *http.Server
	headers []http.Header // under mu
	handler http.HandlerFunc
}

// uriCounter counts what a test origin is asked, by request URI.
type uriCounter struct {
	mu   sync.Mutex
	uris map[string]int
}

func (o *uriCounter) count(uri string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.uris[uri]
}

func (o *uriCounter) total() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, c := range o.uris {
		n += c
	}
	return n
}

func startOrigin(t testing.TB, h http.HandlerFunc) *testOrigin {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &testOrigin{uriCounter: uriCounter{uris: map[string]int{}}, url: "http://" + ln.Addr().String(), handler: h}
	o.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		o.uris[r.RequestURI]++
		o.headers = append(o.headers, r.Header.Clone())
		o.mu.Unlock()
		o.handler(w, r)
	}), ReadHeaderTimeout: 5 * time.Second}
	go o.srv.Serve(ln)
	t.Cleanup(func() { o.srv.Close() })
	return o
}

func (o *testOrigin) allURIs() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []string
	for u := range o.uris {
		out = append(out, u)
	}
	return out
}

const testPlaylist = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:3\n#EXT-X-MEDIA-SEQUENCE:7\n" +
	"#EXTINF:3.000,\nseg7.ts\n#EXTINF:3.000,\n/play/a001/seg8.ts\n"

// startEdge runs an edge with the given config tweaks in front of origins and returns its base URL.
func startEdge(t testing.TB, mutate func(*Config), origins ...string) (string, *Server) {
	t.Helper()
	srv := newEdge(t, mutate, origins...)
	ln := serveEdge(t, srv)
	return "http://" + ln.Addr().String(), srv
}

// serveEdge serves srv and its admin listener on free loopback ports until the test ends; adminURL(srv) names
// the admin one.
func serveEdge(t testing.TB, srv *Server) (public net.Listener) {
	t.Helper()
	public, adminLn := loopbackListeners(t)
	addr := adminLn.Addr().String()
	srv.cfg.Admin.Listen = &addr
	adm, err := admin.New(srv.cfg.Admin, admin.Options{Log: srv.log, Now: srv.now, Auth: srv.auth, Edge: srv, Signaling: srv.sig})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 2)
	go func() { done <- srv.Serve(public) }()
	go func() { done <- adm.Serve(adminLn) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		adm.Shutdown(ctx)
		<-done
		<-done
	})
	return public
}

// adminURL is the base URL of the admin listener serveEdge started next to srv.
func adminURL(srv *Server) string { return "http://" + srv.cfg.Admin.Addr() }

// loopbackListeners opens the public and admin listeners on free loopback ports.
func loopbackListeners(t testing.TB) (public, admin net.Listener) {
	t.Helper()
	public, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	admin, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return public, admin
}

// newEdge builds the edge startEdge serves: origins, upstream timeouts no answering origin runs into,
// authorization off unless mutate turns it on.
func newEdge(t testing.TB, mutate func(*Config), origins ...string) *Server {
	t.Helper()
	cfg := &Config{}
	for _, o := range origins {
		cfg.Origins = append(cfg.Origins, OriginConfig{URL: o})
	}
	// Long enough for any answering origin on a loaded machine; the tests of timeouts set their own.
	cfg.Upstream.Timeout = 10 * time.Second
	cfg.Upstream.ConnectTimeout = 5 * time.Second
	// The foundation tests run without authorization; auth_test.go switches it on.
	cfg.Auth.Disabled = true
	if mutate != nil {
		mutate(cfg)
	}
	return buildEdge(t, cfg, Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
}

// buildEdge completes cfg and wires an edge as cmd/hlsedge does: the authorizer and, when configured, signaling
// sharing the edge's metrics set, all closed when the test ends. opts gives the log and the clock.
func buildEdge(t testing.TB, cfg *Config, opts Options) *Server {
	t.Helper()
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := opts.Log
	auth, err := authz.New(cfg.Auth, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(auth.Close)
	ms := metrics.NewSet()
	var sig *signaling.Server
	if cfg.Signaling != nil {
		if sig, err = signaling.New(*cfg.Signaling, log, ms); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(sig.Close)
	}
	opts.Auth, opts.Signaling, opts.Metrics = auth, sig, ms
	srv, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

var client = &http.Client{Timeout: 20 * time.Second}

// get sends a GET; hdr is name, value pairs.
func get(t *testing.T, url string, hdr ...string) (int, http.Header, []byte) {
	t.Helper()
	return testkit.Do(t, client, http.MethodGet, url, "", hdr...)
}

// rawGet sends the request line exactly as given, so that paths reach the edge without any client clean-up.
func rawGet(t *testing.T, base, rawPath string) (int, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: edge\r\nConnection: close\r\n\r\n", rawPath)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestCoalescingOneOriginFetchFor200Viewers(t *testing.T) {
	seg := bytes.Repeat([]byte("0123456789abcdef"), 20000) // 320 KB
	release := make(chan struct{})
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		<-release // hold the fetch open until every viewer is waiting on it
		w.Header().Set("Content-Type", "video/MP2T")
		w.Write(seg)
	})
	// The origin is held until all viewers queue, which on a loaded machine can take longer than the default timeout.
	base, srv := startEdge(t, func(c *Config) { c.Upstream.Timeout = 15 * time.Second }, o.url)

	const viewers = 200
	var wg sync.WaitGroup
	bodies := make([][]byte, viewers)
	codes := make([]int, viewers)
	for i := 0; i < viewers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			resp, err := client.Get(fmt.Sprintf("%s/play/a001/seg42.ts?token=viewer%d", base, i))
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			codes[i] = resp.StatusCode
			bodies[i], _ = io.ReadAll(resp.Body)
		}(i)
	}
	// Wait until the leader is at the origin and the others have queued behind it.
	eventually(t, "the leader at the origin and every other viewer behind it", func() bool {
		return o.total() >= 1 && srv.fetches.Waiters("/play/a001/seg42.ts") == viewers-1
	})
	close(release)
	wg.Wait()
	if got := o.count("/play/a001/seg42.ts"); got != 1 || o.total() != 1 {
		t.Fatalf("origin fetches = %d (total %d, uris %v), want exactly 1", got, o.total(), o.allURIs())
	}
	for i := range bodies {
		if codes[i] != 200 || !bytes.Equal(bodies[i], seg) {
			t.Fatalf("viewer %d: status %d, %d bytes; want 200 and the segment's %d bytes", i, codes[i], len(bodies[i]), len(seg))
		}
	}
	if w := srv.m.coalescedWaiters.Get(); w != viewers-1 {
		t.Fatalf("coalesced waiters = %d, want %d", w, viewers-1)
	}
}

func TestOriginErrorReachesEveryWaiterAndIsNotCached(t *testing.T) {
	var fail atomic.Bool
	fail.Store(true)
	release := make(chan struct{})
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		<-release
		if fail.Load() {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.Write([]byte("segment"))
	})
	base, srv := startEdge(t, func(c *Config) { c.Upstream.Timeout = 15 * time.Second }, o.url)
	var wg sync.WaitGroup
	codes := make([]int, 20)
	for i := range codes {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			resp, err := client.Get(base + "/play/a001/late.ts")
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			codes[i] = resp.StatusCode
		}(i)
	}
	eventually(t, "every viewer but the leader waiting on its fetch", func() bool {
		return srv.fetches.Waiters("/play/a001/late.ts") == len(codes)-1
	})
	close(release)
	wg.Wait()
	for i, c := range codes {
		if c != 404 {
			t.Fatalf("viewer %d got %d, want the origin's 404", i, c)
		}
	}
	fail.Store(false)
	if code, _, body := get(t, base+"/play/a001/late.ts"); code != 200 || string(body) != "segment" {
		t.Fatalf("after the origin recovered: %d %q; the error must not have been cached", code, body)
	}
}

func TestOriginDownIs502Fast(t *testing.T) {
	dead := "http://" + testkit.RefusingAddr(t)
	base, _ := startEdge(t, func(c *Config) { c.Upstream.Timeout = 30 * time.Second }, dead)
	start := time.Now()
	code, _, body := get(t, base+"/play/a001/index.m3u8")
	if code != 502 || !strings.Contains(string(body), "origin refused connection") {
		t.Fatalf("got %d %q, want 502 origin refused connection", code, body)
	}
	// Not a performance bound: a refused connection must not wait out the 30 s request timeout.
	if time.Since(start) > 10*time.Second {
		t.Fatalf("502 took %v; a refused connection must fail at once", time.Since(start))
	}
}

func TestOriginSlowIs504(t *testing.T) {
	// Hangs until the edge gives up: however slow the machine, the origin never answers first.
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	base, _ := startEdge(t, func(c *Config) { c.Upstream.Timeout = 300 * time.Millisecond }, o.url)
	code, _, body := get(t, base+"/play/a001/seg1.ts")
	if code != 504 || !strings.Contains(string(body), "origin timed out") {
		t.Fatalf("got %d %q, want 504 origin timed out", code, body)
	}
}

func TestFailoverToSecondOriginAndPassiveHealth(t *testing.T) {
	bad := startOrigin(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	good := startOrigin(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("from good " + r.URL.Path)) })
	base, srv := startEdge(t, func(c *Config) { c.Upstream.DownFor = time.Minute }, bad.url, good.url)
	for i := 0; i < 3; i++ {
		code, _, body := get(t, fmt.Sprintf("%s/play/a001/s%d.ts", base, i))
		if code != 200 || !strings.HasPrefix(string(body), "from good") {
			t.Fatalf("request %d: %d %q, want the second origin's answer", i, code, body)
		}
	}
	if n := bad.total(); n != 1 {
		t.Fatalf("failing origin asked %d times, want 1: passive health must skip it while down", n)
	}
	h := srv.up.Health()
	if h[0].Up || !h[1].Up {
		t.Fatalf("health = %+v, want first down and second up", h)
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	f := func(yaml, field string) {
		t.Helper()
		if !strings.Contains(yaml, "auth") {
			yaml += "auth: {disabled: true}\n"
		}
		cfg, err := ParseConfig([]byte(yaml))
		if err == nil {
			cfg.SetDefaults()
			err = cfg.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Fatalf("config %q: error %v, want one naming %s", yaml, err, field)
		}
	}
	f("listen: 1.2.3.4:80\n", "'origins'")
	f("origins: [{url: ftp://x}]\n", "'origins[0].url'")
	f("origins: [{url: 'http://o/play/'}]\n", "'origins[0].url'")
	f("origins: [{url: 'http://o'}]\nupstream: {timeout: -1s}\n", "'upstream.timeout'")
	f("origins: [{url: 'http://o'}]\nroutes: [{prefix: play}]\n", "'routes[0].prefix'")
	f("origins: [{url: 'http://o'}]\ntrusted_proxies: [nonsense]\n", "'trusted_proxies[0]'")
	f("origins: [{url: 'http://o'}]\ncache: {max_bytes: 10}\n", "'cache.max_bytes'")
	f("origins: [{url: 'http://o'}]\ncache: {max_bytes: lots}\n", "byte size")
	f("origins: [{url: 'http://o'}]\nlog: {level: loud}\n", "'log.level'")
	f("origins: [{url: 'http://o'}]\nlisten: nowhere\n", "'listen'")
	f("origins: [{url: 'http://o'}]\nlisten_typo: 1\n", "listen_typo")
	f("origins: [{url: 'http://o'}]\nauth: {}\n", "'auth.jwt', 'auth.securetoken' or 'auth.edge.secret'")
	f("origins: [{url: 'http://o'}]\nauth: {jwt: {algorithms: [none], secret: 0123456789abcdef0123456789abcdef}}\n", "'auth.jwt.algorithms")
}

func TestTraversalNeverLeavesTheChannelPrefix(t *testing.T) {
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("x")) })
	base, _ := startEdge(t, nil, o.url)
	for _, p := range []string{
		"/play/a001/../../etc/passwd",
		"/play/../secret/x.ts",
		"/play/a001/%2e%2e/%2e%2e/etc/passwd",
		"/play/a001/..%2fsecret.ts",
		"/play/a001/%252e%252e/x.ts",
		"/play/a001/.%2e/x.ts",
		"/play/a001/..\\x.ts",
		"/play/a001//x.ts",
		"/play/a001/./x.ts",
		"/play/%2e%2e/x.ts",
	} {
		code, body := rawGet(t, base, p)
		if code != 400 && code != 404 {
			t.Errorf("%s: %d %q, want 400", p, code, body)
		}
	}
	if n := o.total(); n != 0 {
		t.Fatalf("origin was asked %v; no traversal attempt may reach it", o.allURIs())
	}
	if code, _ := rawGet(t, base, "/play/a001/ok.ts"); code != 200 {
		t.Fatalf("a clean path got %d", code)
	}
}

func TestOversizedOriginResponses(t *testing.T) {
	big := bytes.Repeat([]byte{0x47}, 3<<20)
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, ".m3u8") {
			w.Write([]byte("#EXTM3U\n"))
			w.Write(bytes.Repeat([]byte("#EXT-X-CUSTOM:padding\n"), 100000))
			return
		}
		w.Write(big)
	})
	base, _ := startEdge(t, func(c *Config) {
		c.Cache.MaxObjectSize = 1 << 20
		c.Cache.MaxPlaylistSize = 64 << 10
	}, o.url)
	code, _, body := get(t, base+"/play/a001/index.m3u8")
	if code != 502 || !strings.Contains(string(body), "origin playlist larger than 65536 bytes") {
		t.Fatalf("oversized playlist: %d %q, want 502 with the reason", code, body)
	}
	for i := 1; i <= 2; i++ {
		code, _, body = get(t, base+"/play/a001/huge.ts")
		if code != 200 || !bytes.Equal(body, big) {
			t.Fatalf("oversized segment: %d, %d bytes; want it streamed whole", code, len(body))
		}
		if n := o.count("/play/a001/huge.ts"); n != i {
			t.Fatalf("after %d requests the origin served the large segment %d times; it must be streamed, not cached", i, n)
		}
	}
}

func TestTokenNeverReachesOriginAndCacheIsShared(t *testing.T) {
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, ".m3u8") {
			w.Write([]byte(testPlaylist))
			return
		}
		w.Write([]byte("seg:" + r.URL.RawQuery))
	})
	base, _ := startEdge(t, nil, o.url)
	for _, tok := range []string{"alice", "bob"} {
		code, _, body := get(t, base+"/play/a001/seg7.ts?token="+tok)
		if code != 200 || string(body) != "seg:" {
			t.Fatalf("%d %q", code, body)
		}
	}
	if n := o.count("/play/a001/seg7.ts"); n != 1 {
		t.Fatalf("two viewers with different tokens cost %d origin fetches, want 1 shared entry", n)
	}
	code, _, body := get(t, base+"/play/a001/index.m3u8?_HLS_msn=9&token=alice")
	if code != 200 {
		t.Fatalf("playlist: %d %q", code, body)
	}
	for _, u := range o.allURIs() {
		if strings.Contains(u, "token") {
			t.Fatalf("origin saw %q: tokens must be stripped", u)
		}
	}
	if o.count("/play/a001/index.m3u8?_HLS_msn=9") != 1 {
		t.Fatalf("origin uris %v: LL-HLS parameters must pass through", o.allURIs())
	}
}

func TestPlaylistMicroCacheAndCoalesceOnly(t *testing.T) {
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(testPlaylist)) })
	base, _ := startEdge(t, nil, o.url)
	get(t, base+"/play/a001/index.m3u8")
	get(t, base+"/play/a001/index.m3u8")
	if n := o.total(); n != 1 {
		t.Fatalf("micro-cache: %d origin fetches for two requests within the TTL, want 1", n)
	}

	o2 := startOrigin(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(testPlaylist)) })
	base2, _ := startEdge(t, func(c *Config) { zero := time.Duration(0); c.Cache.PlaylistTTL = &zero }, o2.url)
	get(t, base2+"/play/a001/index.m3u8")
	get(t, base2+"/play/a001/index.m3u8")
	if n := o2.total(); n != 2 {
		t.Fatalf("playlist_ttl 0: %d origin fetches for two sequential requests, want 2 (coalesce only)", n)
	}
}

func TestNotAPlaylistIs502(t *testing.T) {
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("<html>maintenance</html>")) })
	base, _ := startEdge(t, nil, o.url)
	code, _, body := get(t, base+"/play/a001/index.m3u8")
	if code != 502 || !strings.Contains(string(body), "invalid playlist") {
		t.Fatalf("%d %q, want 502 invalid playlist", code, body)
	}
}

func TestHeadersRangeHeadCORS(t *testing.T) {
	seg := []byte("0123456789")
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, ".m3u8") {
			w.Write([]byte(testPlaylist))
			return
		}
		w.Write(seg)
	})
	base, _ := startEdge(t, nil, o.url)
	code, h, body := get(t, base+"/play/a001/seg.ts", "Range", "bytes=2-5")
	if code != 206 || string(body) != "2345" || h.Get("Content-Range") != "bytes 2-5/10" {
		t.Fatalf("range: %d %q %q", code, body, h.Get("Content-Range"))
	}
	code, _, _ = get(t, base+"/play/a001/seg.ts", "Range", "bytes=20-")
	if code != 416 {
		t.Fatalf("unsatisfiable range: %d, want 416", code)
	}
	code, h, body = get(t, base+"/play/a001/seg.ts", "Origin", "https://tv.example.com")
	if code != 200 || h.Get("Content-Type") != "video/MP2T" || !strings.Contains(h.Get("Cache-Control"), "max-age=120") ||
		h.Get("Access-Control-Allow-Origin") != "*" || string(body) != string(seg) {
		t.Fatalf("segment headers: %d %v", code, h)
	}
	_, h, _ = get(t, base+"/play/a001/index.m3u8")
	if h.Get("Content-Type") != "application/vnd.apple.mpegurl" || !strings.Contains(h.Get("Cache-Control"), "max-age=1") {
		t.Fatalf("playlist headers: %v", h)
	}
	resp, err := client.Head(base + "/play/a001/seg.ts")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ContentLength != int64(len(seg)) {
		t.Fatalf("HEAD: %d length %d", resp.StatusCode, resp.ContentLength)
	}
	req, _ := http.NewRequest(http.MethodOptions, base+"/play/a001/seg.ts", nil)
	req.Header.Set("Origin", "https://tv.example.com")
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 || !strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "GET") {
		t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	req, _ = http.NewRequest(http.MethodPost, base+"/play/a001/seg.ts", strings.NewReader("x"))
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 {
		t.Fatalf("POST: %d, want 405", resp.StatusCode)
	}
}

func TestForwardedForOnlyFromTrustedProxies(t *testing.T) {
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(r.Header.Get("X-Real-IP"))) })
	untrusted, _ := startEdge(t, nil, o.url)
	_, _, body := get(t, untrusted+"/play/a001/a.ts", "X-Forwarded-For", "203.0.113.7")
	if string(body) != "127.0.0.1" {
		t.Fatalf("untrusted peer: origin saw X-Real-IP %q, want the TCP peer 127.0.0.1", body)
	}
	trusted, _ := startEdge(t, func(c *Config) { c.TrustedProxies = []string{"127.0.0.0/8"} }, o.url)
	_, _, body = get(t, trusted+"/play/a001/b.ts", "X-Forwarded-For", "198.51.100.9, 203.0.113.7")
	if string(body) != "203.0.113.7" {
		t.Fatalf("trusted peer: origin saw X-Real-IP %q, want the rightmost untrusted hop 203.0.113.7", body)
	}
	o.mu.Lock()
	last := o.headers[len(o.headers)-1]
	o.mu.Unlock()
	if got := last.Get("X-Forwarded-For"); got != "198.51.100.9, 203.0.113.7, 127.0.0.1" {
		t.Fatalf("X-Forwarded-For to origin = %q", got)
	}
	if last.Get("Connection") == "keep-alive, X-Secret" || last.Get("Authorization") != "" || last.Get("Cookie") != "" {
		t.Fatalf("hop-by-hop or credential headers reached the origin: %v", last)
	}
}

func TestAdminHealthAndMetrics(t *testing.T) {
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("x")) })
	base, srv := startEdge(t, nil, o.url)
	get(t, base+"/play/a001/a.ts")
	get(t, base+"/play/a001/a.ts")
	admin := adminURL(srv)
	if code, _, body := get(t, admin+"/healthz"); code != 200 || string(body) != "ok\n" {
		t.Fatalf("healthz: %d %q", code, body)
	}
	_, _, body := get(t, admin+"/metrics")
	for _, want := range []string{
		`hlsedge_requests_total{route="segment",status="200"} 2`,
		`hlsedge_cache_requests_total{result="hit"} 1`,
		`hlsedge_cache_requests_total{result="miss"} 1`,
		`hlsedge_origin_fetches_total{origin="` + strings.TrimPrefix(o.url, "http://") + `",result="ok"} 1`,
		`hlsedge_request_duration_seconds_bucket{route="segment"`,
		`hlsedge_coalesced_waiters_total 0`,
		`go_memstats_alloc_bytes`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestOversizedSegmentReallyStreams: the viewer gets the first bytes of an object over the buffering limit while
// the origin is still sending it. Reading Response.Body() anywhere after the handler (byte counts, access log)
// would buffer the whole stream and hold the viewer until the origin finished.
func TestOversizedSegmentReallyStreams(t *testing.T) {
	release := make(chan struct{})
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(4<<20))
		w.Write(make([]byte, 2<<20))
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		w.Write(make([]byte, 2<<20))
	})
	base, _ := startEdge(t, func(c *Config) {
		c.Cache.MaxObjectSize = 1 << 20
		c.Log.Access = true
		c.Upstream.Timeout = 20 * time.Second
	}, o.url)
	resp, err := client.Get(base + "/play/a001/huge.ts")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got := make(chan error, 1)
	go func() {
		_, err := io.ReadFull(resp.Body, make([]byte, 1<<20))
		got <- err
	}()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		close(release)
		t.Fatal("the first MiB did not arrive while the origin was still sending: the stream was buffered")
	}
	close(release)
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil || n != 3<<20 {
		t.Fatalf("rest of the stream: %d bytes, %v", n, err)
	}
}

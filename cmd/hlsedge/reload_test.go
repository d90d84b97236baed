package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/hlsedge/hlsedge/authz/token"
	"github.com/hlsedge/hlsedge/bench"
	"github.com/hlsedge/hlsedge/bench/synthorigin"
	"github.com/hlsedge/hlsedge/proxy/admin"
)

// waitBound only keeps a hung edge from hanging the test run; every wait is for an event.
const waitBound = 60 * time.Second

// liveNode is an edge started from a config file as `hlsedge serve` starts it, serving until the test ends.
type liveNode struct {
	t       *testing.T
	path    string
	n       *node
	edge    string // http://host:port
	admin   string
	logs    *lockedBuffer
	results chan admin.ReloadResult
	// token is the admin token the test's admin requests carry.
	token string
}

func startLiveNode(t *testing.T, yaml string) *liveNode {
	t.Helper()
	ln := &liveNode{t: t, path: filepath.Join(t.TempDir(), "edge.yaml"), logs: &lockedBuffer{},
		results: make(chan admin.ReloadResult, 16), token: testAdminToken}
	ln.write(yaml)
	src := &configSource{path: ln.path}
	cfg, err := src.load()
	if err != nil {
		t.Fatal(err)
	}
	log, level := newLevelLogger(cfg, ln.logs)
	n, err := startNode(cfg, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	n.src, n.level = src, level
	n.reloaded = func(r admin.ReloadResult) { ln.results <- r }
	ln.n = n
	ln.edge, ln.admin = "http://"+n.ln.Addr().String(), "http://"+n.adminAddr()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- n.serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(waitBound):
			t.Error("the edge did not stop")
		}
	})
	// An answer means serve is running, so SIGHUP is caught by now: it registers before it serves.
	if code, _ := fetch(t, ln.edge+"/healthz"); code != 200 {
		t.Fatalf("healthz: %d", code)
	}
	return ln
}

// write replaces the config file the way an editor or a deployment tool does: a new file renamed over the old.
func (ln *liveNode) write(yaml string) {
	ln.t.Helper()
	tmp := ln.path + ".tmp"
	if err := os.WriteFile(tmp, []byte(yaml), 0o600); err != nil {
		ln.t.Fatal(err)
	}
	if err := os.Rename(tmp, ln.path); err != nil {
		ln.t.Fatal(err)
	}
}

// reload triggers a reload the way an operator does and returns its result: "api" is POST /api/reload,
// "sighup" the signal systemd's ExecReload sends.
func (ln *liveNode) reload(how string) admin.ReloadResult {
	ln.t.Helper()
	switch how {
	case "api":
		req, _ := http.NewRequest(http.MethodPost, ln.admin+"/api/reload", strings.NewReader("{}"))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+ln.token)
		resp, err := httpClient.Do(req)
		if err != nil {
			ln.t.Fatal(err)
		}
		defer resp.Body.Close()
		var res admin.ReloadResult
		if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
			ln.t.Fatalf("/api/reload answered %d without JSON: %v", resp.StatusCode, err)
		}
		if want := map[string]int{"ok": 200, "error": 422}[res.Result]; resp.StatusCode != want {
			ln.t.Fatalf("/api/reload answered %d for %q", resp.StatusCode, res.Result)
		}
		<-ln.results
		return res
	case "sighup":
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			ln.t.Fatal(err)
		}
		select {
		case res := <-ln.results:
			return res
		case <-time.After(waitBound):
			ln.t.Fatal("no reload after SIGHUP")
		}
	}
	ln.t.Fatalf("unknown reload trigger %q", how)
	return admin.ReloadResult{}
}

func (ln *liveNode) adminGet(path string) (int, string) {
	ln.t.Helper()
	return fetch(ln.t, ln.admin+path, "Authorization", "Bearer "+ln.token)
}

const testAdminToken = "reload-test-admin-token-0123456789"

// edgeConfig is an edge config for these tests; every %s-free field is set by the caller's key/value pairs.
type edgeConfig struct {
	Origin, SegmentTTL, PlaylistTTL, MaxTTL, Level string
	JWTKeys, EdgeKeys, SigKeys, Groups, Extra      string
	MaxChat                                        int
}

func (c edgeConfig) yaml() string {
	def := func(v, d string) string {
		if v == "" {
			return d
		}
		return v
	}
	groups := def(c.Groups, "[{name: all, channels: ['*']}]")
	return fmt.Sprintf(`listen: 127.0.0.1:0
admin: {listen: 127.0.0.1:0, token: %s}
origins: [{url: %s}]
cache: {segment_ttl: %s, playlist_ttl: %s}
log: {level: %s}
auth:
  cache: {max_ttl: %s}
  jwt:
    algorithms: [HS256]
    secrets: %s
  edge: {secrets: %s}
  groups: %s
signaling:
  jwt: {secrets: %s}
  max_chat_length: %d
%s`, testAdminToken, c.Origin, def(c.SegmentTTL, "2m"), def(c.PlaylistTTL, "1s"), def(c.Level, "info"), def(c.MaxTTL, "5m"),
		c.JWTKeys, c.EdgeKeys, groups, c.SigKeys, max(c.MaxChat, 100), c.Extra)
}

// synthOrigin is a synthetic live origin that tells the test about every playlist request it gets.
type synthOrigin struct {
	url       string
	playlists atomic.Int64
	hit       chan struct{}
}

func startSynthOrigin(t *testing.T, channels ...string) *synthOrigin {
	t.Helper()
	o, err := synthorigin.New(synthorigin.Config{Channels: channels, SegmentDuration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	so := &synthOrigin{url: "http://" + ln.Addr().String(), hit: make(chan struct{}, 1)}
	h := o.Handler()
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if bytes.HasSuffix(ctx.Path(), []byte(".m3u8")) {
			so.playlists.Add(1)
			select {
			case so.hit <- struct{}{}:
			default:
			}
		}
		h(ctx)
	}, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { _ = srv.Shutdown() })
	return so
}

// waitPlaylists waits until the origin has been asked for n more playlists than `from`: viewers are still
// playing through the edge. It fails at once when abort is closed: the players stopped.
func (o *synthOrigin) waitPlaylists(t *testing.T, from, n int64, abort <-chan struct{}) {
	t.Helper()
	deadline := time.After(waitBound)
	for o.playlists.Load() < from+n {
		select {
		case <-o.hit:
		case <-abort:
			t.Fatalf("the players stopped after %d of %d playlist requests", o.playlists.Load()-from, n)
		case <-deadline:
			t.Fatalf("the origin got %d playlist requests, want %d", o.playlists.Load()-from, n)
		}
	}
}

func keys(ks ...string) string { return "[" + strings.Join(ks, ", ") + "]" }

// TestReloadUnderLoad: 200 HLS viewers and 50 conference participants play through an edge while five reloads
// (API and SIGHUP) add and switch keys, change TTLs and groups and move to another origin. No viewer sees an
// error, no participant is disconnected, and nothing secret reaches the log.
func TestReloadUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("plays 200 viewers and 50 participants through five reloads")
	}
	const (
		k1, k2 = "website-key-one-0123456789abcdef-0123456", "website-key-two-0123456789abcdef-0123456"
		e1, e2 = "edge-key-one-0123456789abcdef-0123456789", "edge-key-two-0123456789abcdef-0123456789"
		s1, s2 = "conference-key-one-0123456789abcdef-01234", "conference-key-two-0123456789abcdef-01234"
	)
	t.Setenv("HLSEDGE_TEST_K2", k2)
	channels := []string{"a001", "a002", "a003", "a004"}
	a, b := startSynthOrigin(t, channels...), startSynthOrigin(t, channels...)
	cfg := edgeConfig{Origin: a.url, JWTKeys: keys("{kid: k1, secret: " + k1 + "}"), EdgeKeys: keys("{kid: e1, secret: " + e1 + "}"),
		SigKeys: keys("{secret: " + s1 + "}")}
	node := startLiveNode(t, cfg.yaml())
	host := strings.TrimPrefix(node.edge, "http://")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type hlsOut struct {
		rep *bench.HLSReport
		err error
	}
	// ended closes when a run stops on its own, which only happens when its players were all refused.
	ended := make(chan struct{})
	var endOnce sync.Once
	end := func() { endOnce.Do(func() { close(ended) }) }
	hlsDone := make(chan hlsOut, 1)
	go func() {
		defer end()
		rep, err := bench.RunHLS(ctx, bench.HLSConfig{URL: node.edge + "/play/{channel}/index.m3u8", Viewers: 200,
			Duration: time.Hour, Timeout: 20 * time.Second,
			Mint: &bench.MintConfig{Kind: "jwt", Secret: k1, Channels: channels, TTL: time.Hour}}, nil)
		hlsDone <- hlsOut{rep, err}
	}()
	wsProgress := &lockedBuffer{}
	type wsOut struct {
		rep *bench.WSReport
		err error
	}
	wsDone := make(chan wsOut, 1)
	go func() {
		defer end()
		rep, err := bench.RunWS(ctx, bench.WSConfig{URL: "ws://" + host + "/ws", Secret: s1, Participants: 50, Rooms: 5,
			Duration: time.Hour, ChatRate: 2, Interval: 20 * time.Millisecond, Timeout: 30 * time.Second}, wsProgress)
		wsDone <- wsOut{rep, err}
	}()
	wsExited := make(chan int)
	go func() {
		<-ended
		close(wsExited)
	}()
	wsProgress.waitFor(t, regexp.MustCompile(`admitted 50 `), wsExited)
	a.waitPlaylists(t, 0, 8, ended)

	steps := []struct {
		how, what string
		cfg       func(*edgeConfig)
		origin    *synthOrigin
	}{
		{"api", "keys added", func(c *edgeConfig) {
			c.JWTKeys = keys("{kid: k1, secret: "+k1+"}", "{kid: k2, secret_env: HLSEDGE_TEST_K2}")
			c.EdgeKeys = keys("{kid: e1, secret: "+e1+"}", "{kid: e2, secret: "+e2+"}")
			c.SigKeys = keys("{secret: "+s1+"}", "{kid: s2, secret: "+s2+"}")
		}, a},
		{"sighup", "TTLs", func(c *edgeConfig) { c.SegmentTTL, c.PlaylistTTL, c.MaxTTL, c.Level = "1m", "500ms", "1m", "debug" }, a},
		{"api", "groups", func(c *edgeConfig) {
			c.Groups = "[{name: sports, channels: [a001, a002]}, {name: rest, channels: ['*']}]"
		}, a},
		{"sighup", "origin", func(c *edgeConfig) { c.Origin = b.url }, b},
		{"api", "edge minting key switched", func(c *edgeConfig) {
			c.EdgeKeys = keys("{kid: e2, secret: "+e2+"}", "{kid: e1, secret: "+e1+"}")
			c.MaxChat, c.Level = 50, "info"
		}, b},
	}
	for _, st := range steps {
		st.cfg(&cfg)
		node.write(cfg.yaml())
		before := st.origin.playlists.Load()
		if res := node.reload(st.how); res.Result != "ok" {
			t.Fatalf("reload %q: %+v", st.what, res)
		}
		// Viewers keep asking, now through the new config.
		st.origin.waitPlaylists(t, before, 8, ended)
	}
	if n := b.playlists.Load(); n == 0 {
		t.Fatal("the edge never asked the new origin")
	}
	// The keys added by the reloads work for new viewers and participants.
	tok, err := token.MintJWT(token.JWTMint{Alg: "HS256", Key: []byte(k2), KeyID: "k2", Streams: []string{"a003"}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if code, body := fetch(t, node.edge+"/play/a003/index.m3u8?token="+tok); code != 200 || !strings.Contains(body, "token=e1.") {
		t.Fatalf("a token of the added key: %d %q", code, body)
	}

	cancel()
	hls, ws := <-hlsDone, <-wsDone
	if hls.rep == nil || ws.rep == nil {
		t.Fatalf("bench runs: %v / %v", hls.err, ws.err)
	}
	h := hls.rep
	if h.Errors != 0 || h.ViewersDenied != 0 || h.ViewersStarted != 200 || h.SegmentRequests < 200 {
		t.Fatalf("HLS viewers: %d errors, %d denied, %d started, %d segments; statuses %v", h.Errors, h.ViewersDenied,
			h.ViewersStarted, h.SegmentRequests, h.Statuses)
	}
	w := ws.rep
	if len(w.Dropped) != 0 || len(w.ConnectErrors) != 0 || w.Connected != 55 || w.Admitted != 50 || w.ChatDelivered == 0 {
		t.Fatalf("participants: dropped %v, connect errors %v, %d connected, %d admitted, %d chat delivered", w.Dropped,
			w.ConnectErrors, w.Connected, w.Admitted, w.ChatDelivered)
	}
	_, metrics := node.adminGet("/metrics")
	if !strings.Contains(metrics, `hlsedge_reloads_total{result="ok"} 5`) || !strings.Contains(metrics, `hlsedge_reloads_total{result="error"} 0`) {
		t.Fatalf("/metrics lacks the reload counts:\n%s", grepLines(metrics, "reload"))
	}
	logs := node.logs.String()
	if !strings.Contains(logs, `"msg":"config reloaded"`) {
		t.Fatal("reloads are not logged")
	}
	for _, s := range []string{k1, k2, e1, e2, s1, s2, testAdminToken} {
		if strings.Contains(logs, s) {
			t.Fatalf("a secret reached the log: %s", s[:12])
		}
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestBrokenReloadsKeepTheRunningConfig: a config with an error, then one whose key file cannot be read. Each
// time the edge keeps serving on the config it had, and the error, naming the field, is in the answer of
// /api/reload, in the log, in /metrics and on the status page; a good config afterwards goes through.
func TestBrokenReloadsKeepTheRunningConfig(t *testing.T) {
	o := startSynthOrigin(t, "a001")
	good := edgeConfig{Origin: o.url, JWTKeys: keys("{kid: k1, secret: " + testJWTSecret + "}"),
		EdgeKeys: keys("{secret: cmd-edge-secret-0123456789abcdef0123}"), SigKeys: keys("{secret: cmd-signaling-secret-0123456789abcdef}")}
	node := startLiveNode(t, good.yaml())
	tok, err := token.MintJWT(token.JWTMint{Alg: "HS256", Key: []byte(testJWTSecret), Streams: []string{"a001"}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	plays := func(step string) {
		t.Helper()
		if code, body := fetch(t, node.edge+"/play/a001/index.m3u8?token="+tok); code != 200 {
			t.Fatalf("%s: the edge stopped serving: %d %s", step, code, body)
		}
	}
	plays("start")
	loadedAt := node.n.LastReload().LoadedAt

	f := func(step, yaml, how, wantErr string) {
		t.Helper()
		node.write(yaml)
		res := node.reload(how)
		if res.Result != "error" || !strings.Contains(res.Error, wantErr) || !res.LoadedAt.Equal(loadedAt) {
			t.Fatalf("%s: %+v, want an error with %q and the old load time", step, res, wantErr)
		}
		plays(step)
		if !strings.Contains(node.logs.String(), "config reload failed") {
			t.Fatalf("%s: the failure is not logged", step)
		}
		_, page := node.adminGet("/")
		if !strings.Contains(page, "the previous config stays in force") || !strings.Contains(page, htmlEscape(wantErr)) {
			t.Fatalf("%s: the status page does not show the failure:\n%s", step, page)
		}
	}
	bad := good
	bad.SegmentTTL = "-1s"
	f("a field with an error", bad.yaml(), "api", "'cache.segment_ttl' must be greater than zero")
	unreadable := good
	unreadable.JWTKeys = keys("{kid: k1, secret_file: " + t.TempDir() + "}") // a directory: it cannot be read as a key
	f("an unreadable key file", unreadable.yaml(), "sighup", "'auth.jwt.secrets[0].secret_file' must be readable")
	f("not YAML", "listen: [", "api", "parsing config")

	_, metrics := node.adminGet("/metrics")
	if !strings.Contains(metrics, `hlsedge_reloads_total{result="error"} 3`) {
		t.Fatalf("/metrics lacks the failed reloads:\n%s", grepLines(metrics, "reload"))
	}
	node.write(good.yaml())
	if res := node.reload("api"); res.Result != "ok" || !res.LoadedAt.After(loadedAt) {
		t.Fatalf("a good config after the broken ones: %+v", res)
	}
	plays("fixed")
	if _, page := node.adminGet("/"); !strings.Contains(page, `<span class="up">ok</span>`) {
		t.Fatalf("the status page does not show the good reload:\n%s", page)
	}
}

func htmlEscape(s string) string { return strings.ReplaceAll(s, "'", "&#39;") }

// TestReloadRebindsAChangedListenAddress: only a changed address rebinds. The new address serves, a keep-alive
// connection to the old one keeps being answered, and the old address takes no new connection.
func TestReloadRebindsAChangedListenAddress(t *testing.T) {
	o := startSynthOrigin(t, "a001")
	cfg := edgeConfig{Origin: o.url, JWTKeys: keys("{secret: " + testJWTSecret + "}"),
		EdgeKeys: keys("{secret: cmd-edge-secret-0123456789abcdef0123}"), SigKeys: keys("{secret: cmd-signaling-secret-0123456789abcdef}")}
	node := startLiveNode(t, cfg.yaml())
	old := strings.TrimPrefix(node.edge, "http://")
	conn, err := net.DialTimeout("tcp", old, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	healthz := func() int {
		t.Helper()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: edge\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("keep-alive connection: %v", err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if healthz() != 200 {
		t.Fatal("healthz before the reload")
	}
	if res := node.reload("api"); res.Result != "ok" || len(res.Rebound) != 0 {
		t.Fatalf("an unchanged config rebinds nothing: %+v", res)
	}
	node.write(strings.Replace(cfg.yaml(), "listen: 127.0.0.1:0", "listen: 127.0.0.2:0", 1))
	res := node.reload("api")
	if res.Result != "ok" || len(res.Rebound) != 1 || !strings.HasPrefix(res.Rebound[0], "listen "+old+" -> 127.0.0.2:") {
		t.Fatalf("a changed listen address: %+v", res)
	}
	moved := node.n.ln.Addr().String()
	if code, _ := fetch(t, "http://"+moved+"/healthz"); code != 200 {
		t.Fatalf("the new address: %d", code)
	}
	if healthz() != 200 {
		t.Fatal("the keep-alive connection to the old address after the rebind")
	}
	if c, err := net.DialTimeout("tcp", old, time.Second); err == nil {
		c.Close()
		t.Fatalf("the old address %s still accepts", old)
	}
}

// TestSecretsFromTheEnvironment: every secret of a config can come from an environment variable; the edge plays
// with them, and neither `hlsedge check` nor the log shows one. A variable that is not set is an error naming
// the field, not the variable.
func TestSecretsFromTheEnvironment(t *testing.T) {
	const jwtKey, edgeKey, sigKey, adminTok = "env-jwt-key-0123456789abcdef-0123456789", "env-edge-key-0123456789abcdef-012345678",
		"env-signaling-key-0123456789abcdef-01234", "env-admin-token-0123456789"
	t.Setenv("HLSEDGE_TEST_JWT", jwtKey)
	t.Setenv("HLSEDGE_TEST_EDGE", edgeKey)
	t.Setenv("HLSEDGE_TEST_SIG", sigKey)
	t.Setenv("HLSEDGE_TEST_ADMIN", adminTok)
	o := startSynthOrigin(t, "a001")
	yaml := fmt.Sprintf(`listen: 127.0.0.1:0
admin: {listen: 127.0.0.1:0, token_env: HLSEDGE_TEST_ADMIN}
origins: [{url: %s}]
auth:
  jwt: {algorithms: [HS256], secret_env: HLSEDGE_TEST_JWT}
  edge: {secret_env: HLSEDGE_TEST_EDGE}
signaling:
  jwt: {secret_env: HLSEDGE_TEST_SIG}
`, o.url)
	node := startLiveNode(t, yaml)
	node.token = adminTok
	tok, err := token.MintJWT(token.JWTMint{Alg: "HS256", Key: []byte(jwtKey), Streams: []string{"a001"}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	code, body := fetch(t, node.edge+"/play/a001/index.m3u8?token="+tok)
	m := regexp.MustCompile(`token=(e1\.[A-Za-z0-9_-]+)`).FindStringSubmatch(body)
	if code != 200 || m == nil {
		t.Fatalf("a token of the key from the environment: %d %q", code, body)
	}
	if _, err := token.VerifyEdgeToken([]byte(edgeKey), m[1], "a001", netip.MustParseAddr("127.0.0.1"), time.Now()); err != nil {
		t.Fatalf("the child token is not signed with the edge key from the environment: %v", err)
	}
	if code, _ := fetch(t, node.admin+"/api/bans", "Authorization", "Bearer "+adminTok); code != 200 {
		t.Fatalf("the admin token from the environment: %d", code)
	}
	var out, errOut lockedBuffer
	if code := run(context.Background(), []string{"check", "--config", node.path}, &out, &errOut); code != 0 {
		t.Fatalf("check: %d %s", code, errOut.String())
	}
	for _, s := range []string{jwtKey, edgeKey, sigKey, adminTok} {
		if strings.Contains(out.String()+errOut.String()+node.logs.String(), s) {
			t.Fatalf("a secret from the environment was printed: %s…", s[:10])
		}
	}
	if !strings.Contains(out.String(), "(token set)") {
		t.Fatalf("check does not see the admin token from the environment:\n%s", out.String())
	}

	os.Unsetenv("HLSEDGE_TEST_EDGE")
	res := node.reload("api")
	if res.Result != "error" || !strings.Contains(res.Error, "'auth.edge.secret_env' names an environment variable that is not set") ||
		strings.Contains(res.Error, "HLSEDGE_TEST_EDGE") {
		t.Fatalf("a reload with the variable unset: %+v", res)
	}
}

// TestStopWaitsForAReloadAndRefusesLaterOnes: a node that is stopping does not swap parts under its own
// shutdown; a reload asked for then says so.
func TestStopRefusesReloads(t *testing.T) {
	o := startSynthOrigin(t, "a001")
	cfg := edgeConfig{Origin: o.url, JWTKeys: keys("{secret: " + testJWTSecret + "}"),
		EdgeKeys: keys("{secret: cmd-edge-secret-0123456789abcdef0123}"), SigKeys: keys("{secret: cmd-signaling-secret-0123456789abcdef}")}
	path := filepath.Join(t.TempDir(), "edge.yaml")
	if err := os.WriteFile(path, []byte(cfg.yaml()), 0o600); err != nil {
		t.Fatal(err)
	}
	src := &configSource{path: path}
	c, err := src.load()
	if err != nil {
		t.Fatal(err)
	}
	n, err := startNode(c, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	n.src = src
	if err := n.stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if res := n.Reload(); res.Result != "error" || !strings.Contains(res.Error, "stopping") {
		t.Fatalf("a reload after stop: %+v", res)
	}
}

package admin_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/hlsedge/hlsedge/authz"
	"github.com/hlsedge/hlsedge/authz/token"
	"github.com/hlsedge/hlsedge/internal/testkit"
	"github.com/hlsedge/hlsedge/proxy"
	"github.com/hlsedge/hlsedge/proxy/admin"
	"github.com/hlsedge/hlsedge/signaling"
)

const (
	testToken     = "sekrit"
	testJWTSecret = "jwt-secret-0123456789abcdef0123456789"
)

// startAdmin serves the admin listener of a real edge (authorizer, signaling, the viewer listener's figures) on
// loopback and returns its base URL. The viewer listener itself is not served: these tests are about the
// operators' side.
func startAdmin(t *testing.T, mutate func(*proxy.Config)) string {
	t.Helper()
	cfg := &proxy.Config{Origins: []proxy.OriginConfig{{URL: "http://127.0.0.1:9"}}}
	cfg.Auth = authz.Config{JWT: &authz.JWTConfig{JWTConfig: token.JWTConfig{Algorithms: []string{"HS256"}, Secret: testJWTSecret}},
		Edge: authz.EdgeConfig{Secret: "edge-secret-0123456789abcdef012345678"}}
	cfg.Signaling = &signaling.Config{JWT: token.JWTConfig{Secret: "signaling-secret-0123456789abcdef0123"}}
	if mutate != nil {
		mutate(cfg)
	}
	base, _, _ := serveAdmin(t, cfg, nil)
	return base
}

// serveAdmin builds a real edge from cfg (with signaling when cfg has it) and serves its admin listener, with rl
// as its Reloader, on loopback until the test ends.
func serveAdmin(t *testing.T, cfg *proxy.Config, rl admin.Reloader) (string, *admin.Server, *authz.Authorizer) {
	t.Helper()
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	// Signaling and the edge share one metrics set, as cmd/hlsedge wires them, so that /metrics carries both.
	ms := metrics.NewSet()
	var sig *signaling.Server
	if cfg.Signaling != nil {
		s, err := signaling.New(*cfg.Signaling, log, ms)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		sig = s
	}
	auth, err := authz.New(cfg.Auth, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(auth.Close)
	edge, err := proxy.New(cfg, proxy.Options{Log: log, Auth: auth, Signaling: sig, Metrics: ms})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := admin.New(cfg.Admin, admin.Options{Log: log, Auth: auth, Edge: edge, Signaling: sig, Reloader: rl})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String(), srv, auth
}

var client = &http.Client{Timeout: 20 * time.Second}

// do sends one request; hdr is name, value pairs.
func do(t *testing.T, method, url, body string, hdr ...string) (int, http.Header, string) {
	t.Helper()
	code, h, b := testkit.Do(t, client, method, url, body, hdr...)
	return code, h, string(b)
}

func withToken(c *proxy.Config) { c.Admin.Token = testToken }

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

func TestTokenGuardsAllButHealthAndAstraAuth(t *testing.T) {
	base := startAdmin(t, withToken)
	f := func(path, authorization string, wantCode int, wantBody string) {
		t.Helper()
		var hdr []string
		if authorization != "" {
			hdr = []string{"Authorization", authorization}
		}
		code, h, body := do(t, "GET", base+path, "", hdr...)
		if code != wantCode || !strings.Contains(body, wantBody) {
			t.Fatalf("%s with %q: %d %.80q, want %d containing %q", path, authorization, code, body, wantCode, wantBody)
		}
		if code == 401 && !strings.Contains(strings.Join(h.Values("WWW-Authenticate"), ","), "Basic") {
			t.Fatalf("%s: a 401 without a Basic challenge leaves a browser with nothing to ask", path)
		}
	}
	for _, p := range []string{"/", "/metrics", "/debug/pprof/", "/debug/pprof/cmdline", "/api/stats", "/api/sessions",
		"/api/bans", "/api/conferences", "/nonexistent"} {
		f(p, "", 401, "admin token required")
		f(p, "Bearer wrong", 401, "admin token required")
		f(p, basic("ops", "wrong"), 401, "admin token required")
		f(p, "Bearer sekri", 401, "admin token required")
	}
	f("/", basic("ops", testToken), 200, "<html")
	f("/metrics", "Bearer "+testToken, 200, "hlsedge_")
	f("/debug/pprof/", "Bearer "+testToken, 200, "goroutine")
	f("/debug/pprof/goroutine?debug=1", "Bearer "+testToken, 200, "goroutine")
	f("/api/stats", basic("", testToken), 200, "{")
	f("/api/conferences", "Bearer "+testToken, 200, `"conferences"`)
	f("/nonexistent", "Bearer "+testToken, 404, "not found")
	f("/healthz", "", 200, "ok")
	// Astra's own question, without the admin token: refused for want of a viewer path, not of the admin token.
	f("/auth/astra", "", 403, "no channel")
}

// TestRefusalsAreOneLineText: 404, 405 (with Allow, from the method patterns) and 401 all come out of one helper.
func TestRefusalsAreOneLineText(t *testing.T) {
	base := startAdmin(t, nil)
	f := func(method, path string, wantCode int, wantAllow string) {
		t.Helper()
		code, h, body := do(t, method, base+path, "")
		if code != wantCode || h.Get("Allow") != wantAllow || !strings.HasPrefix(h.Get("Content-Type"), "text/plain") ||
			strings.Count(body, "\n") != 1 {
			t.Fatalf("%s %s: %d Allow %q %q %q, want %d Allow %q and one line of text", method, path, code,
				h.Get("Allow"), h.Get("Content-Type"), body, wantCode, wantAllow)
		}
	}
	f("POST", "/api/sessions", 405, "GET, HEAD")
	f("PUT", "/api/bans", 405, "GET, HEAD, POST")
	f("GET", "/api/bans/x", 405, "DELETE")
	f("POST", "/", 405, "GET, HEAD")
	f("POST", "/healthz", 405, "GET, HEAD")
	f("PUT", "/api/conferences", 405, "GET, HEAD, POST, DELETE")
	f("GET", "/api/nothing", 404, "")
	f("DELETE", "/api/sessions/0123456789abcdef", 404, "")
	f("DELETE", "/api/bans/nope", 404, "")
}

// TestStateChangesRefuseCrossSiteRequests is the CSRF case: the operator's browser holds the admin credentials
// (HTTP Basic), and another site's page makes it send a ban, as an HTML form (text/plain or urlencoded) or a
// fetch. Only JSON from the same origin, or from a non-browser client, changes anything.
func TestStateChangesRefuseCrossSiteRequests(t *testing.T) {
	base := startAdmin(t, withToken)
	host := strings.TrimPrefix(base, "http://")
	auth := basic("ops", testToken)
	ban := `{"ip":"203.0.113.7","reason":"csrf"}`
	f := func(method, path, body string, want int, reason string, hdr ...string) {
		t.Helper()
		code, _, got := do(t, method, base+path, body, append([]string{"Authorization", auth}, hdr...)...)
		if code != want || !strings.Contains(got, reason) {
			t.Fatalf("%s %s %v: %d %q, want %d with %q", method, path, hdr, code, got, want, reason)
		}
	}
	// What a cross-site HTML form can send: no preflight, the browser attaches the Basic credentials.
	f("POST", "/api/bans", ban, 415, "Content-Type: application/json", "Content-Type", "text/plain")
	f("POST", "/api/bans", "ip=203.0.113.7", 415, "application/json", "Content-Type", "application/x-www-form-urlencoded")
	f("POST", "/api/bans", ban, 415, "application/json")
	f("POST", "/api/conferences", `{"room":"r","content_id":"1"}`, 415, "application/json", "Content-Type", "text/plain")
	// A fetch from another site, JSON or not.
	f("POST", "/api/bans", ban, 403, "cross-site", "Content-Type", "application/json", "Origin", "https://evil.example")
	f("POST", "/api/bans", ban, 403, "cross-site", "Content-Type", "application/json", "Sec-Fetch-Site", "cross-site")
	f("POST", "/api/bans", ban, 403, "cross-site", "Content-Type", "application/json", "Sec-Fetch-Site", "same-site")
	f("DELETE", "/api/bans/x", "", 403, "cross-site", "Origin", "https://evil.example")
	f("DELETE", "/api/conferences?room=r", "", 403, "cross-site", "Sec-Fetch-Site", "cross-site")
	// A DELETE without a body needs no Content-Type, but one that names another is refused.
	f("DELETE", "/api/bans/x", "", 415, "application/json", "Content-Type", "text/plain")
	if _, _, got := do(t, "GET", base+"/api/bans", "", "Authorization", auth); got != "[]\n" {
		t.Fatalf("a refused request changed state: bans %s", got)
	}

	// The operator's own page (same origin), and scripts (no Origin at all), go through.
	f("POST", "/api/bans", ban, 201, `"ip":"203.0.113.7"`, "Content-Type", "application/json; charset=utf-8",
		"Origin", "http://"+host, "Sec-Fetch-Site", "same-origin")
	code, _, got := do(t, "POST", base+"/api/bans", `{"user":"mallory"}`, "Authorization", auth, "Content-Type", "application/json")
	var b authz.Ban
	if err := json.Unmarshal([]byte(got), &b); code != 201 || err != nil {
		t.Fatalf("ban from a script: %d %s", code, got)
	}
	f("DELETE", "/api/bans/"+b.ID, "", 204, "")
	// Reading is not a state change: a cross-site GET is harmless (the browser does not let the page read it).
	f("GET", "/api/bans", "", 200, "203.0.113.7", "Sec-Fetch-Site", "cross-site")
}

// TestCatchAllBanNeedsForce: one request must not ban every viewer by mistake. Prefixes shorter than the
// configured minimum, and /0 always, take "force": true.
func TestCatchAllBanNeedsForce(t *testing.T) {
	f := func(base, body string, want int, reason string) {
		t.Helper()
		code, _, got := do(t, "POST", base+"/api/bans", body, "Content-Type", "application/json")
		if code != want || !strings.Contains(got, reason) {
			t.Fatalf("ban %s: %d %q, want %d with %q", body, code, got, want, reason)
		}
	}
	base := startAdmin(t, nil)
	f(base, `{"ip":"0.0.0.0/0"}`, 400, `bans every viewer; send "force": true`)
	f(base, `{"ip":"::/0"}`, 400, `"force": true`)
	f(base, `{"ip":"::ffff:0.0.0.0/96"}`, 400, `"force": true`)
	f(base, `{"ip":"10.0.0.0/8","force":false}`, 400, `wider than /16 ('admin.min_ban_prefix_v4')`)
	f(base, `{"ip":"2001:db8::/32"}`, 400, `wider than /48 ('admin.min_ban_prefix_v6')`)
	f(base, `{"ip":"10.1.0.0/16"}`, 201, `"ip":"10.1.0.0/16"`)
	f(base, `{"ip":"2001:db8::/48"}`, 201, `"ip":"2001:db8::/48"`)
	f(base, `{"ip":"0.0.0.0"}`, 201, `"ip":"0.0.0.0"`)
	f(base, `{"ip":"0.0.0.0/0","force":true,"reason":"maintenance"}`, 201, `"ip":"0.0.0.0/0"`)
	f(base, `{"ip":"nope/0"}`, 400, "ip must be an address or CIDR")

	wide := startAdmin(t, func(c *proxy.Config) { c.Admin.MinBanPrefixV4 = 8 })
	f(wide, `{"ip":"10.0.0.0/8"}`, 201, `"ip":"10.0.0.0/8"`)
	f(wide, `{"ip":"10.0.0.0/7"}`, 400, `wider than /8`)
}

func TestConfig(t *testing.T) {
	str := func(s string) *string { return &s }
	f := func(c admin.Config, wantAddr, wantErr string) {
		t.Helper()
		c.SetDefaults()
		err := c.Validate()
		if c.Addr() != wantAddr || c.Enabled() != (wantAddr != "") ||
			(err == nil) != (wantErr == "") || err != nil && !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("%+v: addr %q enabled %v err %v, want %q and %q", c, c.Addr(), c.Enabled(), err, wantAddr, wantErr)
		}
	}
	f(admin.Config{}, admin.DefaultListen, "")
	// An explicit empty address turns the listener off; a default must not turn it back on.
	f(admin.Config{Listen: str("")}, "", "")
	f(admin.Config{Listen: str("10.0.0.5:9000")}, "10.0.0.5:9000", "")
	f(admin.Config{Listen: str("localhost:8090")}, "localhost:8090", "'admin.listen' must be host:port with an IP address")
	f(admin.Config{MinBanPrefixV4: 33}, admin.DefaultListen, "'admin.min_ban_prefix_v4' must be between 1 and 32")
	f(admin.Config{MinBanPrefixV6: -1}, admin.DefaultListen, "'admin.min_ban_prefix_v6' must be between 1 and 128")
}

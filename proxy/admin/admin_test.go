package admin_test

import (
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/hlsedge/hlsedge/authz"
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
	cfg.Auth = authz.Config{JWT: &authz.JWTConfig{Algorithms: []string{"HS256"}, Secret: testJWTSecret},
		Edge: authz.EdgeConfig{Secret: "edge-secret-0123456789abcdef012345678"}}
	cfg.Signaling = &signaling.Config{JWT: signaling.JWTConfig{Secret: "signaling-secret-0123456789abcdef0123"}}
	if mutate != nil {
		mutate(cfg)
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	auth, err := authz.New(cfg.Auth, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(auth.Close)
	ms := metrics.NewSet()
	sig, err := signaling.New(*cfg.Signaling, log, ms)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sig.Close)
	edge, err := proxy.New(cfg, proxy.Options{Log: log, Auth: auth, Signaling: sig, Metrics: ms})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := admin.New(cfg.Admin, admin.Options{Log: log, Auth: auth, Edge: edge, Signaling: sig})
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
	return "http://" + ln.Addr().String()
}

var client = &http.Client{Timeout: 20 * time.Second}

// do sends one request; hdr is name, value pairs.
func do(t *testing.T, method, url, body string, hdr ...string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
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
}

package signaling

import (
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/hlsedge/hlsedge/authz/token"
)

func TestConfigValidate(t *testing.T) {
	f := func(mut func(*Config), want string) {
		t.Helper()
		c := baseConfig()
		mut(&c)
		c.SetDefaults()
		err := c.Validate()
		if want == "" {
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			return
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("error = %v, want %q", err, want)
		}
	}
	f(func(*Config) {}, "")
	f(func(c *Config) { c.ReadLimit = -1 }, "'signaling.read_limit' must be greater than zero")
	f(func(c *Config) { c.ReadLimit = 100 }, "'signaling.read_limit' must be at least 1024")
	f(func(c *Config) { c.SendQueue = -5 }, "'signaling.send_queue' must be greater than zero")
	f(func(c *Config) { c.MessageRate = -1 }, "'signaling.message_rate' must be greater than zero")
	f(func(c *Config) { c.PingInterval, c.IdleTimeout = time.Minute, time.Second }, "'signaling.idle_timeout' must be greater than 'signaling.ping_interval'")
	f(func(c *Config) { c.Path = "ws" }, "'signaling.path' must start with '/'")
	f(func(c *Config) { c.SocketIOPath = "socket.io" }, "'signaling.socketio_path' must start with '/'")
	f(func(c *Config) { c.SocketIOPath = "/ws" }, "differ from 'signaling.path'")
	f(func(c *Config) { c.SocketIOPath = "off" }, "")
	f(func(c *Config) { c.AllowedOrigins = []string{"meet.example.com"} }, "'signaling.allowed_origins[0]'")
	f(func(c *Config) { c.AllowedOrigins = []string{"https://a.*.com"} }, "'signaling.allowed_origins[0]'")
	f(func(c *Config) { c.AllowedOrigins = []string{"https://x.com/path"} }, "'signaling.allowed_origins[0]'")
	f(func(c *Config) { c.CookiePrefix = "bad name" }, "'signaling.cookie_prefix'")
	f(func(c *Config) { c.JWT.Secret = "short" }, "'signaling.jwt.secret' must be at least 32 bytes")
	f(func(c *Config) { c.JWT.Secret = "" }, "'signaling.jwt.secret' must be set")
	f(func(c *Config) { c.JWT.Algorithms = []string{"none"} }, "'signaling.jwt.algorithms[0]' must be one of")
	f(func(c *Config) { c.JWT.Algorithms = []string{"RS256"} }, "'signaling.jwt.secret' must be empty when no HS* algorithm is allowed")
	f(func(c *Config) { c.JWT.Algorithms, c.JWT.Secret = []string{"RS256"}, "" }, "'signaling.jwt.public_keys', 'signaling.jwt.jwks_file' or 'signaling.jwt.jwks_url' must be set")
	f(func(c *Config) { c.ReadBufferSize = 10 }, "'signaling.read_buffer_size' must be at least")
	f(func(c *Config) { c.NodeID = "edge 1" }, "'signaling.node_id' must be at most 32 letters")
	f(func(c *Config) { c.NodeID = strings.Repeat("a", 33) }, "'signaling.node_id'")
	f(func(c *Config) { c.NodeID = "edge-1_b" }, "")
	f(func(c *Config) { c.MaxPollingSessions = -1 }, "")
}

func TestOriginAllowList(t *testing.T) {
	s, err := New(Config{
		AllowedOrigins: []string{"https://meet.example.com", "https://*.example.org", "http://localhost:8080"},
		JWT:            token.JWTConfig{Secret: testSecret},
	}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := func(origin string, want bool) {
		t.Helper()
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetHost("edge.example.com")
		if origin != "" {
			ctx.Request.Header.Set("Origin", origin)
		}
		if got := s.originAllowed(&ctx); got != want {
			t.Fatalf("origin %q: %v, want %v", origin, got, want)
		}
	}
	f("", true)
	f("https://meet.example.com", true)
	f("HTTPS://MEET.EXAMPLE.COM", true)
	f("http://meet.example.com", false)
	f("https://meet.example.com.evil.net", false)
	f("https://evilmeet.example.com", false)
	f("https://a.example.org", true)
	f("https://a.b.example.org", true)
	f("https://example.org", false)
	f("https://evilexample.org", false)
	f("http://localhost:8080", true)
	f("http://localhost:8081", false)
	f("null", false)
	f("https://meet.example.com/", false)
	f("https://user@meet.example.com", false)

	same, _ := New(Config{JWT: token.JWTConfig{Secret: testSecret}}, nil, nil)
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetHost("edge.example.com")
	ctx.Request.Header.Set("Origin", "https://edge.example.com")
	if !same.originAllowed(&ctx) {
		t.Fatal("same-host origin refused without an allow-list")
	}
	ctx.Request.Header.Set("Origin", "https://other.example.com")
	if same.originAllowed(&ctx) {
		t.Fatal("cross-host origin allowed without an allow-list")
	}

	// require_origin: a browser's same-origin GET (a polling request) carries no Origin, but says what it is.
	strict, _ := New(Config{JWT: token.JWTConfig{Secret: testSecret}, RequireOrigin: true}, nil, nil)
	g := func(secFetchSite string, want bool) {
		t.Helper()
		var ctx fasthttp.RequestCtx
		if secFetchSite != "" {
			ctx.Request.Header.Set("Sec-Fetch-Site", secFetchSite)
		}
		if got := strict.originAllowed(&ctx); got != want {
			t.Fatalf("no Origin, Sec-Fetch-Site %q: %v, want %v", secFetchSite, got, want)
		}
	}
	g("", false)
	g("same-origin", true)
	g("cross-site", false)
	g("same-site", false)
}

package main

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hlsedge/hlsedge/authz"
	"github.com/hlsedge/hlsedge/authz/token"
)

// TestServeRequiresAConfig: the embedded demo config's secrets are published, so serve never falls back on it.
func TestServeRequiresAConfig(t *testing.T) {
	var out, errOut lockedBuffer
	code := run(context.Background(), []string{"serve", "--listen", "127.0.0.1:0"}, &out, &errOut)
	if code != 1 || !strings.Contains(errOut.String(), "--config FILE is required") || !strings.Contains(errOut.String(), "hlsedge demo") {
		t.Fatalf("serve without --config: exit %d, stderr %q", code, errOut.String())
	}
}

func TestServeRefusesABadConfigNamingTheField(t *testing.T) {
	f := func(yaml, want string) { t.Helper(); refusesToServe(t, yaml, want) }
	f("origins: [{url: 'http://127.0.0.1:1'}]\nauth: {disabled: true}\nupstream: {timeout: -1s}\n", "'upstream.timeout' must be greater than zero")
	f("origins: []\nauth: {disabled: true}\n", "'origins' must list at least one origin")
	f("origins: [{url: 'http://127.0.0.1:1'}]\nauth: {jwt: {algorithms: [HS256], secret: short}}\n", "'auth.jwt.secret'")
	f("origins: [{url: 'http://127.0.0.1:1'}]\nauth: {disabled: true}\ncache: {max_byte: 1}\n", "max_byte")
	f("origins: [{url: 'http://127.0.0.1:1'}]\nauth: {disabled: true}\nadmin: {min_ban_prefix_v4: 40}\n", "'admin.min_ban_prefix_v4'")
	f("origins: [{url: 'http://127.0.0.1:1'}]\nauth: {disabled: true}\nadmin: {listen: 'localhost:1'}\n", "'admin.listen'")
	// A route that 'auth.protected' leaves out would be served without a token.
	f("origins: [{url: 'http://127.0.0.1:1'}]\nroutes: [{prefix: /play/}, {prefix: /live/}]\n"+
		"auth: {protected: [/play/], jwt: {algorithms: [HS256], secret: "+testJWTSecret+"}}\n", "'routes[1].prefix' \"/live/\" is outside 'auth.protected'")
	if code := run(context.Background(), []string{"nonsense"}, &lockedBuffer{}, &lockedBuffer{}); code != 2 {
		t.Fatalf("unknown command: exit %d, want 2", code)
	}
}

// TestDemoPrintsAPlayableURL is `make run` in-process: the printed URL plays in the real ffprobe. Every listener
// asks for port 0, and the demo prints the addresses it got.
func TestDemoPrintsAPlayableURL(t *testing.T) {
	if _, err := exec.LookPath("ffprobe"); err != nil {
		t.Fatal("ffprobe is missing: `make test` installs ffmpeg")
	}
	out, done := startDemo(t)
	url := out.waitFor(t, regexp.MustCompile(`play:\s+ffplay '([^']+)'`), done)[1]
	pctx, pcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer pcancel()
	probe, err := exec.CommandContext(pctx, "ffprobe", "-v", "error", "-show_streams", url).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe %s: %v\n%s", url, err, probe)
	}
	if !strings.Contains(string(probe), "codec_name=h264") || !strings.Contains(string(probe), "codec_name=aac") {
		t.Fatalf("ffprobe found no h264 + aac:\n%s", probe)
	}
}

type queryCarrier map[string]string

func (q queryCarrier) QueryArg(name string) []byte { return []byte(q[name]) }
func (q queryCarrier) Cookie(string) []byte        { return nil }
func (q queryCarrier) Header(string) []byte        { return nil }

// TestTokenCommandMintsWhatTheEdgeAccepts runs `hlsedge token` for each kind and has the edge's own authorizer
// decide the result, for the right channel and address and for the wrong ones.
func TestTokenCommandMintsWhatTheEdgeAccepts(t *testing.T) {
	const jwtSecret, stSecret, edgeSecret = testJWTSecret, "cmd-st-secret", "cmd-edge-secret-0123456789abcdef0123"
	a, err := authz.New(authz.Config{
		JWT:         &authz.JWTConfig{JWTConfig: token.JWTConfig{Algorithms: []string{"HS256"}, Secret: jwtSecret}},
		SecureToken: &token.SecureTokenConfig{Secret: stSecret},
		Edge:        authz.EdgeConfig{Secret: edgeSecret},
		Cache:       authz.CacheConfig{Disabled: true},
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	mint := func(args ...string) string {
		t.Helper()
		var out, errOut lockedBuffer
		if code := run(context.Background(), append([]string{"token"}, args...), &out, &errOut); code != 0 {
			t.Fatalf("hlsedge token %v: exit %d: %s", args, code, errOut.String())
		}
		return strings.TrimSpace(out.String())
	}
	decide := func(tok, channel, ip string) int {
		t.Helper()
		req := &authz.Request{Path: []byte("/play/" + channel + "/index.m3u8"), Channel: []byte(channel), ClientIP: netip.MustParseAddr(ip)}
		d := a.Authorize(req, queryCarrier{"token": tok}, time.Now())
		return d.Status
	}
	f := func(tok string) {
		t.Helper()
		if st := decide(tok, "a001", "127.0.0.1"); st != 200 {
			t.Fatalf("minted token refused for its own channel: %d", st)
		}
		if st := decide(tok, "a002", "127.0.0.1"); st != 403 {
			t.Fatalf("minted token accepted for another channel: %d", st)
		}
	}
	f(mint("--kind", "jwt", "--secret", jwtSecret, "--stream", "a001", "--ttl", "1h", "--sub", "bob"))
	f(mint("--kind", "securetoken", "--secret", stSecret, "--stream", "a001", "--ip", "127.0.0.1"))
	f(mint("--kind", "edge", "--secret", edgeSecret, "--stream", "a001", "--ttl", "1h"))
	if st := decide(mint("--kind", "securetoken", "--secret", stSecret, "--stream", "a001", "--ip", "127.0.0.1"), "a001", "10.0.0.1"); st != 403 {
		t.Fatalf("securetoken bound to 127.0.0.1 accepted from 10.0.0.1: %d", st)
	}
	link := mint("--kind", "jwt", "--secret", jwtSecret, "--stream", "a001", "--ttl", "1h", "--url", "http://127.0.0.1:8080")
	if !strings.HasPrefix(link, "http://127.0.0.1:8080/play/a001/index.m3u8?token=ey") {
		t.Fatalf("--url printed %q", link)
	}
}

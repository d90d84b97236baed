package proxy

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hlsedge/hlsedge/authz"
	"github.com/hlsedge/hlsedge/authz/token"
)

// reloadable is an edge with the reload wiring cmd/hlsedge has: one viewer state for every Authorizer, each new
// Authorizer built on the previous one, the previous one closed once the new generation is in force.
type reloadable struct {
	t     *testing.T
	srv   *Server
	state *authz.MemState
	auth  *authz.Authorizer
}

func newReloadable(t *testing.T, cfg *Config, opts Options) *reloadable {
	t.Helper()
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	st, err := authz.NewMemState(cfg.Auth, opts.Log, authz.WithoutJanitor())
	if err != nil {
		t.Fatal(err)
	}
	r := &reloadable{t: t, state: st}
	if r.auth, err = authz.New(cfg.Auth, opts.Log, authz.WithState(st)); err != nil {
		t.Fatal(err)
	}
	opts.Auth = r.auth
	if r.srv, err = New(cfg, opts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.auth.Close(); st.Close() })
	return r
}

// reload builds cfg's generation and puts it in force.
func (r *reloadable) reload(cfg *Config) {
	r.t.Helper()
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		r.t.Fatal(err)
	}
	a, err := authz.New(cfg.Auth, nil, authz.WithState(r.state), authz.WithPrevious(r.auth))
	if err != nil {
		r.t.Fatal(err)
	}
	p, err := r.srv.Prepare(cfg, a)
	if err != nil {
		a.Close()
		r.t.Fatal(err)
	}
	r.srv.Apply(p)
	r.auth.Close()
	r.auth = a
}

// countingListener counts the connections it accepts: a reload must not make clients reconnect.
type countingListener struct {
	net.Listener
	accepted atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return c, err
}

func (r *reloadable) serve() (base string, ln *countingListener) {
	r.t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		r.t.Fatal(err)
	}
	ln = &countingListener{Listener: inner}
	done := make(chan error, 1)
	go func() { done <- r.srv.Serve(ln) }()
	r.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r.srv.Shutdown(ctx)
		<-done
	})
	return "http://" + inner.Addr().String(), ln
}

func originServing(t *testing.T, name string) *testOrigin {
	return startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, ".m3u8") {
			w.Write([]byte("#EXTM3U\n#EXT-X-TARGETDURATION:3\n#EXT-X-MEDIA-SEQUENCE:7\n#EXTINF:3.000,\n" + name + "7.ts\n"))
			return
		}
		w.Write([]byte("segment from " + name))
	})
}

// A reload swaps origins, routes, TTLs and CORS for the next request, on the connections already open; the
// content cache survives it.
func TestReloadSwapsRoutesOriginsAndCORSOnOpenConnections(t *testing.T) {
	a, b := originServing(t, "a"), originServing(t, "b")
	cfg := func(origin string, mutate func(*Config)) *Config {
		c := &Config{Origins: []OriginConfig{{URL: origin}}}
		c.Auth.Disabled = true
		if mutate != nil {
			mutate(c)
		}
		return c
	}
	r := newReloadable(t, cfg(a.url, nil), Options{})
	base, ln := r.serve()
	var dials atomic.Int64
	cl := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		MaxConnsPerHost: 1,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}}
	get := func(path string, hdr ...string) (int, http.Header, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(body)
	}
	if code, _, body := get("/play/a001/seg1.ts"); code != 200 || body != "segment from a" {
		t.Fatalf("before the reload: %d %q", code, body)
	}
	if code, _, body := get("/play/a001/index.m3u8"); code != 200 || !strings.Contains(body, "a7.ts") {
		t.Fatalf("playlist before the reload: %d %q", code, body)
	}
	if _, h, _ := get("/play/a001/seg2.ts", "Origin", "https://tv.example.com"); h.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("CORS before the reload: %q", h.Get("Access-Control-Allow-Origin"))
	}

	zero := time.Duration(0)
	r.reload(cfg(b.url, func(c *Config) {
		c.Routes = []RouteConfig{{Prefix: "/live/", OriginPrefix: "/play/"}, {Prefix: "/play/"}}
		c.Cache.PlaylistTTL = &zero
		c.Cache.MaxBytes, c.Cache.MaxObjectSize = 8<<20, 1<<20
		c.CORS.AllowOrigins = []string{"https://tv.example.com"}
	}))
	if code, _, body := get("/play/a001/seg1.ts"); code != 200 || body != "segment from a" {
		t.Fatalf("a segment cached before the reload: %d %q", code, body)
	}
	// The playlist cached from the old origin (its playlist_ttl has not run out) is not served: it may name the
	// old origin's host.
	if code, _, body := get("/live/a001/index.m3u8"); code != 200 || !strings.Contains(body, "b7.ts") {
		t.Fatalf("the new route to the new origin: %d %q", code, body)
	}
	if code, _, body := get("/play/a001/seg3.ts"); code != 200 || body != "segment from b" {
		t.Fatalf("a miss after the reload: %d %q", code, body)
	}
	_, h, _ := get("/play/a001/seg4.ts", "Origin", "https://tv.example.com")
	if got := h.Get("Access-Control-Allow-Origin"); got != "https://tv.example.com" {
		t.Fatalf("CORS after the reload: %q", got)
	}
	if a.count("/play/a001/seg1.ts") != 1 || b.count("/play/a001/seg1.ts") != 0 || a.count("/play/a001/seg3.ts") != 0 {
		t.Fatalf("origin requests: a %v, b %v", a.allURIs(), b.allURIs())
	}
	if got := r.srv.cache.maxBytes.Load(); got != 8<<20 {
		t.Fatalf("cache.max_bytes after the reload: %d", got)
	}
	if dials.Load() != 1 || ln.accepted.Load() != 1 {
		t.Fatalf("the reload made the client reconnect: %d dials, %d accepted", dials.Load(), ln.accepted.Load())
	}
}

// A key rotation done as the README says never refuses a token that is still valid: add the new keys and reload,
// switch the signing side (the website for JWTs, the edge itself for its child tokens: the new edge key moves
// first), and remove the old keys once the longest token signed with them has expired. At every step every
// viewer token and every child token handed out so far plays while it is valid.
func TestKeyRotationByTheProcedureNeverRefusesAValidToken(t *testing.T) {
	o := originServing(t, "seg")
	clk := newTestClock()
	const ttl = time.Hour
	jwtOld := token.SecretConfig{KeyID: "j1", Secret: "website-key-one-0123456789abcdef-0123456"}
	jwtNew := token.SecretConfig{KeyID: "j2", Secret: "website-key-two-0123456789abcdef-0123456"}
	edgeOld := token.SecretConfig{KeyID: "e1", Secret: "edge-key-one-0123456789abcdef-0123456789"}
	edgeNew := token.SecretConfig{KeyID: "e2", Secret: "edge-key-two-0123456789abcdef-0123456789"}
	noWindows := 0
	cfg := func(jwtKeys []token.SecretConfig, edgeKeys ...token.SecretConfig) *Config {
		zero := time.Duration(0)
		c := &Config{Origins: []OriginConfig{{URL: o.url}}}
		c.Auth = authz.Config{
			JWT: &authz.JWTConfig{JWTConfig: token.JWTConfig{Algorithms: []string{"HS256"}, Secrets: jwtKeys, Leeway: &zero}},
			// Children live as long as their parent here (short segment windows off): this test is about keys.
			Edge: authz.EdgeConfig{Secrets: edgeKeys, MaxTTL: 30 * time.Minute, SegmentTTLTargets: &noWindows},
		}
		return c
	}
	r := newReloadable(t, cfg([]token.SecretConfig{jwtOld}, edgeOld), Options{Now: clk.Now})
	base, _ := r.serve()

	type issued struct {
		tok     string
		expires time.Time
		what    string
	}
	var viewers, children []issued
	mint := func(k token.SecretConfig) {
		t.Helper()
		tok, err := token.MintJWT(token.JWTMint{Alg: "HS256", Key: []byte(k.Secret), KeyID: k.KeyID, Streams: []string{"a001"},
			Subject: "viewer", Now: clk.Now(), TTL: ttl})
		if err != nil {
			t.Fatal(err)
		}
		viewers = append(viewers, issued{tok, clk.Now().Add(ttl), "jwt " + k.KeyID})
	}
	childRE := regexp.MustCompile(`(?m)^seg7\.ts\?token=(\S+)$`)
	check := func(step string) {
		t.Helper()
		now := clk.Now()
		for _, v := range viewers {
			code, _, body := get(t, base+"/play/a001/index.m3u8?token="+v.tok)
			switch valid := now.Before(v.expires); {
			case valid && code != 200:
				t.Fatalf("%s: a valid %s (%v left) refused: %d %s", step, v.what, v.expires.Sub(now), code, body)
			case !valid && code == 200:
				t.Fatalf("%s: an expired %s accepted", step, v.what)
			case valid:
				m := childRE.FindStringSubmatch(string(body))
				if m == nil {
					t.Fatalf("%s: no child token in\n%s", step, body)
				}
				exp := now.Add(30 * time.Minute).Truncate(time.Second)
				if v.expires.Before(exp) {
					exp = v.expires
				}
				children = append(children, issued{m[1], exp, "child of " + v.what + " at " + step})
			}
		}
		for _, c := range children {
			code, _, body := get(t, base+"/play/a001/seg7.ts?token="+c.tok)
			if valid := now.Before(c.expires); valid && code != 200 {
				t.Fatalf("%s: a valid %s (%v left) refused: %d %s", step, c.what, c.expires.Sub(now), code, body)
			} else if !valid && code == 200 {
				t.Fatalf("%s: an expired %s accepted", step, c.what)
			}
		}
	}

	mint(jwtOld)
	check("start")
	// 1. Add the new keys, last, and reload every node. The website still signs with the old key.
	r.reload(cfg([]token.SecretConfig{jwtOld, jwtNew}, edgeOld, edgeNew))
	check("new keys added")
	clk.Add(10 * time.Minute)
	mint(jwtOld)
	check("new keys added, later")
	// 2. Switch the signing side: the website signs with the new key, the edge mints with its new key.
	r.reload(cfg([]token.SecretConfig{jwtOld, jwtNew}, edgeNew, edgeOld))
	mint(jwtNew)
	check("signing switched")
	clk.Add(20 * time.Minute)
	mint(jwtNew)
	check("signing switched, later")
	// 3. After the longest lifetime of a token signed with the old keys (the website's last old token, minted
	// at +10m, lives an hour; edge children live at most as long as their parent), remove the old keys.
	clk.Add(41 * time.Minute)
	check("old tokens expired")
	r.reload(cfg([]token.SecretConfig{jwtNew}, edgeNew))
	check("old keys removed")
	mint(jwtNew)
	check("old keys removed, new viewer")
	if len(children) < 8 {
		t.Fatalf("only %d child tokens were checked", len(children))
	}
}

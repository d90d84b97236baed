package proxy

import (
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hlsedge/hlsedge/authz"
	"github.com/hlsedge/hlsedge/authz/token"
	"github.com/hlsedge/hlsedge/internal/testkit"
)

const (
	testJWTSecret  = "jwt-secret-0123456789abcdef0123456789"
	testEdgeSecret = "edge-secret-0123456789abcdef012345678"
	testSTSecret   = "securetoken-secret"
)

// syncBuffer collects log output from the server's goroutines.
type syncBuffer = testkit.SyncBuffer

func withAuth(c *Config) {
	c.Routes = []RouteConfig{{Prefix: "/play/"}, {Prefix: "/", OriginPrefix: "/play/"}}
	c.Auth = authz.Config{
		JWT:         &authz.JWTConfig{JWTConfig: token.JWTConfig{Algorithms: []string{"HS256"}, Secret: testJWTSecret}},
		SecureToken: &token.SecureTokenConfig{Secret: testSTSecret},
		Edge:        authz.EdgeConfig{Secret: testEdgeSecret},
		Groups: []authz.GroupConfig{
			{Name: "flussonic", Channels: []string{"st*"}, ChildToken: authz.ChildSame},
			{Name: "default", Channels: []string{"*"}},
		},
	}
}

func mintJWT(t *testing.T, ttl time.Duration, streams ...string) string {
	t.Helper()
	tok, err := token.MintJWT(token.JWTMint{Alg: "HS256", Key: []byte(testJWTSecret), Streams: streams, Subject: "alice", TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestAuthStatusesAndChildTokens(t *testing.T) {
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, ".m3u8") {
			w.Write([]byte(testPlaylist))
			return
		}
		w.Write([]byte("segment"))
	})
	logs := &syncBuffer{}
	base, srv := startEdge(t, withAuth, o.url)
	srv.log = slog.New(slog.NewJSONHandler(logs, nil))
	srv.reqLog = newLimitedLogger(srv.log)

	good := mintJWT(t, time.Hour, "a001")
	expired, err := token.MintJWT(token.JWTMint{Alg: "HS256", Key: []byte(testJWTSecret), Streams: []string{"a001"},
		TTL: time.Minute, Now: time.Now().Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	other := mintJWT(t, time.Hour, "a002")
	forged, _ := token.MintJWT(token.JWTMint{Alg: "HS256", Key: []byte("another-secret-0123456789abcdef0123"), Streams: []string{"a001"}, TTL: time.Hour})

	f := func(uri string, want int, reason string) {
		t.Helper()
		code, _, body := get(t, base+uri)
		if code != want || !strings.Contains(string(body), reason) {
			t.Fatalf("%s: %d %q, want %d with %q", uri[:min(len(uri), 40)], code, body, want, reason)
		}
	}
	f("/play/a001/index.m3u8", 401, "")
	f("/play/a001/index.m3u8?token="+forged, 403, "")
	f("/play/a001/index.m3u8?token="+other, 403, "")
	f("/play/a001/index.m3u8?token="+expired, 410, "")
	f("/play/a001/seg7.ts", 401, "")
	if n := o.total(); n != 0 {
		t.Fatalf("refused requests reached the origin %d times; authorization must come before any origin work", n)
	}

	code, _, body := get(t, base+"/play/a001/index.m3u8?token="+good)
	if code != 200 {
		t.Fatalf("valid JWT: %d %q", code, body)
	}
	if strings.Contains(string(body), good) {
		t.Fatalf("the viewer's JWT leaked into child URIs:\n%s", body)
	}
	children := regexp.MustCompile(`(?m)^[^#].*\?token=([A-Za-z0-9_.~%-]+)$`).FindAllStringSubmatch(string(body), -1)
	if len(children) != 2 {
		t.Fatalf("want 2 child URIs with an edge token, got %d:\n%s", len(children), body)
	}
	for _, m := range children {
		f("/play/a001/seg7.ts?token="+m[1], 200, "segment")
		f("/play/a002/seg7.ts?token="+m[1], 403, "")
	}
	f("/play/a001/seg7.ts?token="+good, 200, "segment")

	for _, u := range o.allURIs() {
		if strings.Contains(u, "token") {
			t.Fatalf("origin saw %q", u)
		}
	}
	lg := logs.String()
	if !strings.Contains(lg, "request denied") {
		t.Fatalf("denials must be logged for the operator; log:\n%s", lg)
	}
	for _, secret := range []string{good, expired, other, forged, testJWTSecret, testEdgeSecret, children[0][1]} {
		if strings.Contains(lg, secret) {
			t.Fatalf("a token or secret reached the log:\n%s", lg)
		}
	}
}

func TestSecureTokenSameModeCarriesTheIncomingToken(t *testing.T) {
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, ".m3u8") {
			w.Write([]byte(testPlaylist))
			return
		}
		w.Write([]byte("segment"))
	})
	base, _ := startEdge(t, withAuth, o.url)
	now := time.Now().Unix()
	// The seed's PHP: starttime = now - 300, endtime = starttime + lifetime.
	tok := token.MintSecureToken(testSTSecret, "st1", "127.0.0.1", now-300, now-300+3600, token.NewSalt())
	code, _, body := get(t, base+"/st1/index.m3u8?token="+tok)
	if code != 200 {
		t.Fatalf("securetoken via the Flussonic layout: %d %q", code, body)
	}
	if !strings.Contains(string(body), "seg7.ts?token="+tok) {
		t.Fatalf("same mode: children must carry the incoming securetoken unchanged:\n%s", body)
	}
	wrongIP := token.MintSecureToken(testSTSecret, "st1", "10.1.2.3", now-300, now+3600, token.NewSalt())
	if code, _, _ := get(t, base+"/st1/index.m3u8?token="+wrongIP); code != 403 {
		t.Fatalf("securetoken for another IP: %d, want 403", code)
	}
	if o.count("/play/st1/index.m3u8") != 1 {
		t.Fatalf("origin uris %v: the Flussonic layout must map to /play/{stream}/", o.allURIs())
	}
}

func TestEdgeTokenBoundToIPWhenParentIs(t *testing.T) {
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(testPlaylist)) })
	base, _ := startEdge(t, withAuth, o.url)
	tok, err := token.MintJWT(token.JWTMint{Alg: "HS256", Key: []byte(testJWTSecret), Streams: []string{"a*"},
		IP: netip.MustParseAddr("127.0.0.1"), TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	code, _, body := get(t, base+"/play/a001/index.m3u8?token="+tok)
	if code != 200 {
		t.Fatalf("%d %q", code, body)
	}
	m := regexp.MustCompile(`token=([^\s&]+)`).FindStringSubmatch(string(body))
	et, err := token.VerifyEdgeToken([]byte(testEdgeSecret), mustUnescape(t, m[1]), "a001", netip.MustParseAddr("127.0.0.1"), time.Now())
	if err != nil {
		t.Fatalf("child token does not verify for the viewer: %v", err)
	}
	if !et.IP.IsValid() || et.Expires > time.Now().Add(time.Hour+time.Minute).Unix() {
		t.Fatalf("child token %+v: must keep the IP binding and never outlive the parent", et)
	}
	if _, err := token.VerifyEdgeToken([]byte(testEdgeSecret), mustUnescape(t, m[1]), "a001", netip.MustParseAddr("10.0.0.1"), time.Now()); err == nil {
		t.Fatal("child token verified for another IP")
	}
}

func mustUnescape(t *testing.T, s string) string {
	t.Helper()
	u, err := url.QueryUnescape(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

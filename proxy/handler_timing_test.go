package proxy

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/hlsedge/hlsedge/authz/token"
)

// benchHandler warms the cache through a real origin, then measures the handler alone on the fast path.
func benchHandler(b *testing.B, uri string, mutate ...func(*Config)) {
	o := startOrigin(b, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, ".m3u8") {
			w.Write([]byte(testPlaylist))
			return
		}
		w.Write(make([]byte, 200<<10))
	})
	var m func(*Config)
	if len(mutate) > 0 {
		m = mutate[0]
	}
	_, srv := startEdge(b, m, o.url)
	// fasthttp's server stamps each request's arrival time; a bare RequestCtx has none, so read the clock here,
	// which costs what the server's own read would.
	srv.clock = time.Now
	var ctx fasthttp.RequestCtx
	ctx.Init(&fasthttp.Request{}, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5555}, nil)
	ctx.Request.SetRequestURI(uri)
	srv.serveHTTP(&ctx)
	if ctx.Response.StatusCode() != 200 {
		b.Fatalf("warm-up: %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ctx.Response.Reset()
		srv.serveHTTP(&ctx)
	}
}

func BenchmarkServeCachedSegment(b *testing.B) {
	benchHandler(b, "/play/a001/seg7.ts?token=abcdef0123456789")
}

func BenchmarkServeCachedPlaylistRewrite(b *testing.B) {
	benchHandler(b, "/play/a001/index.m3u8?token=abcdef0123456789")
}

// The authorized variants add the decision cache hit to the paths above; the playlist, a live media playlist,
// also mints its segments' short-lived token (one HMAC, no allocation), while its other children's token is
// part of the cached decision.
func BenchmarkServeAuthorizedCachedSegment(b *testing.B) {
	tok, _ := token.MintJWT(token.JWTMint{Alg: "HS256", Key: []byte(testJWTSecret), Streams: []string{"a001"}, TTL: time.Hour})
	benchHandler(b, "/play/a001/seg7.ts?token="+tok, withAuth)
}

func BenchmarkServeAuthorizedPlaylistRewrite(b *testing.B) {
	tok, _ := token.MintJWT(token.JWTMint{Alg: "HS256", Key: []byte(testJWTSecret), Streams: []string{"a001"}, TTL: time.Hour})
	benchHandler(b, "/play/a001/index.m3u8?token="+tok, withAuth)
}

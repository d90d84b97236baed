package proxy

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/hlsedge/hlsedge/authz/token"
)

// startTimingOrigin is the handler benchmarks' origin: the test playlist, and 200 KiB for any segment.
func startTimingOrigin(b *testing.B) *testOrigin {
	return startOrigin(b, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, ".m3u8") {
			w.Write([]byte(testPlaylist))
			return
		}
		w.Write(make([]byte, 200<<10))
	})
}

// benchHandler warms the cache through a real origin, then measures the handler alone on the fast path.
func benchHandler(b *testing.B, uri string, mutate ...func(*Config)) {
	benchHandlerOn(b, nil, false, false, uri, mutate...)
}

// benchHandlerOn is benchHandler with the request arriving on conn, as the public listener's connections do;
// parallel serves it from every core, on connections of one viewer or, with ownViewers, of one each.
func benchHandlerOn(b *testing.B, conn net.Conn, parallel, ownViewers bool, uri string, mutate ...func(*Config)) {
	o := startTimingOrigin(b)
	var m func(*Config)
	if len(mutate) > 0 {
		m = mutate[0]
	}
	_, srv := startEdge(b, m, o.url)
	// fasthttp's server stamps each request's arrival time; a bare RequestCtx has none, so read the clock here,
	// which costs what the server's own read would.
	srv.clock = time.Now
	var ctx fasthttp.RequestCtx
	if conn != nil {
		ctx.Init2(conn, nil, false)
	} else {
		ctx.Init(&fasthttp.Request{}, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5555}, nil)
	}
	ctx.Request.SetRequestURI(uri)
	srv.serveHTTP(&ctx)
	if ctx.Response.StatusCode() != 200 {
		b.Fatalf("warm-up: %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
	b.ReportAllocs()
	b.ResetTimer()
	if parallel {
		// Every core serves its own connections at once, as under wrk: what they share (the cached object, the
		// viewer's session, the metrics) is written from several cores.
		var conns atomic.Int32
		b.RunParallel(func(pb *testing.PB) {
			var ctx fasthttp.RequestCtx
			peer := byte(1)
			if ownViewers {
				peer = byte(conns.Add(1)) + 1
			}
			ctx.Init2(&timedConn{Conn: addrConn{}, peer: netip.AddrFrom4([4]byte{127, 0, 0, peer})}, nil, false)
			ctx.Request.SetRequestURI(uri)
			for pb.Next() {
				ctx.Response.Reset()
				srv.serveHTTP(&ctx)
			}
		})
		return
	}
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

// The keep-alive variant is the authorized playlist as a player's connection asks for it again and again: the
// connection's memo (authz.Memo in timedConn) answers the decision instead of the cache.
func BenchmarkServeAuthorizedPlaylistRewriteKeepAlive(b *testing.B) {
	tok, _ := token.MintJWT(token.JWTMint{Alg: "HS256", Key: []byte(testJWTSecret), Streams: []string{"a001"}, TTL: time.Hour})
	conn := &timedConn{Conn: addrConn{}, peer: netip.AddrFrom4([4]byte{127, 0, 0, 1})}
	benchHandlerOn(b, conn, false, false, "/play/a001/index.m3u8?token="+tok, withAuth)
}

// The parallel variants serve the keep-alive playlist from every core: one viewer's connections (the shape of
// the side-by-side run, which asks with one token), and one viewer per core.
func BenchmarkServeAuthorizedPlaylistRewriteParallel(b *testing.B) {
	tok, _ := token.MintJWT(token.JWTMint{Alg: "HS256", Key: []byte(testJWTSecret), Streams: []string{"a001"}, TTL: time.Hour})
	benchHandlerOn(b, nil, true, false, "/play/a001/index.m3u8?token="+tok, withAuth)
}

func BenchmarkServeAuthorizedPlaylistRewriteParallelViewers(b *testing.B) {
	tok, _ := token.MintJWT(token.JWTMint{Alg: "HS256", Key: []byte(testJWTSecret), Streams: []string{"a001"}, TTL: time.Hour})
	benchHandlerOn(b, nil, true, true, "/play/a001/index.m3u8?token="+tok, withAuth)
}

// addrConn is a connection that only has addresses: the handler reads no more of it.
type addrConn struct{ net.Conn }

func (addrConn) RemoteAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5555} }
func (addrConn) LocalAddr() net.Addr  { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80} }

package proxy

import (
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/hlsedge/hlsedge/authz/token"
)

// The ServeConn benchmarks run whole requests through fasthttp's server on one keep-alive connection: reading
// and parsing the request, the handler, and the response written out, everything the side-by-side run measures
// except the socket. The ceiling variants are the anchor's limit server (../shared/bench-anchors/limit) in this
// process: its fasthttp settings and a handler that holds the edge's own answer. Edge against ceiling is the
// side-by-side ratio without the system calls both pay alike, and without the run-to-run noise of wrk.

func BenchmarkServeConnAuthorizedPlaylist(b *testing.B) {
	tok, _ := token.MintJWT(token.JWTMint{Alg: "HS256", Key: []byte(testJWTSecret), Streams: []string{"a001"}, TTL: time.Hour})
	uri := "/play/a001/index.m3u8?token=" + tok
	srv := benchConnEdge(b)
	benchServeConn(b, srv.public, uri)
}

// The ceiling asked as the side-by-side run asks it, with a short path, and with the edge's request line, which
// shows how much of the difference is fasthttp reading the longer request.
func BenchmarkServeConnCeilingPlaylist(b *testing.B) {
	benchServeConn(b, ceilingServer(benchConnAnswer(b)), "/playlist")
}

func BenchmarkServeConnCeilingPlaylistTokenURI(b *testing.B) {
	tok, _ := token.MintJWT(token.JWTMint{Alg: "HS256", Key: []byte(testJWTSecret), Streams: []string{"a001"}, TTL: time.Hour})
	benchServeConn(b, ceilingServer(benchConnAnswer(b)), "/play/a001/index.m3u8?token="+tok)
}

// benchConnEdge is an authorized edge whose cache holds the test playlist.
func benchConnEdge(b *testing.B) *Server {
	o := startOrigin(b, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, ".m3u8") {
			w.Write([]byte(testPlaylist))
			return
		}
		w.Write(make([]byte, 200<<10))
	})
	_, srv := startEdge(b, withAuth, o.url)
	return srv
}

// benchConnAnswer is the edge's answer to the authorized playlist, which the ceiling then holds.
func benchConnAnswer(b *testing.B) []byte {
	tok, _ := token.MintJWT(token.JWTMint{Alg: "HS256", Key: []byte(testJWTSecret), Streams: []string{"a001"}, TTL: time.Hour})
	srv := benchConnEdge(b)
	// A bare RequestCtx has no arrival time; the edge's clock stands in for the server's stamp.
	srv.clock = time.Now
	var ctx fasthttp.RequestCtx
	ctx.Init2(&timedConn{Conn: addrConn{}, peer: netip.AddrFrom4([4]byte{127, 0, 0, 1})}, nil, false)
	ctx.Request.SetRequestURI("/play/a001/index.m3u8?token=" + tok)
	srv.serveHTTP(&ctx)
	if ctx.Response.StatusCode() != 200 {
		b.Fatalf("edge answered %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
	return append([]byte(nil), ctx.Response.Body()...)
}

// ceilingServer is limit/main.go's server holding body.
func ceilingServer(body []byte) *fasthttp.Server {
	return &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			if len(ctx.Path()) == 0 {
				ctx.SetStatusCode(fasthttp.StatusNotFound)
				return
			}
			ctx.SetContentType("application/vnd.apple.mpegurl")
			ctx.Response.SetBodyRaw(body)
		},
		WriteBufferSize: 64 << 10,
		ReadBufferSize:  8 << 10,
	}
}

// benchServeConn serves b.N requests for uri on one connection, as the public listener hands it over.
func benchServeConn(b *testing.B, s *fasthttp.Server, uri string) {
	req := []byte("GET " + uri + " HTTP/1.1\r\nHost: 127.0.0.1:18090\r\n\r\n")
	// One request first, to check the answer and to warm what the first request builds.
	check := &replayConn{req: req, n: 1}
	if err := s.ServeConn(&timedConn{Conn: check, l: &connListener{}, peer: netip.AddrFrom4([4]byte{127, 0, 0, 1})}); err != nil {
		b.Fatal(err)
	}
	if !strings.HasPrefix(check.out.String(), "HTTP/1.1 200") {
		b.Fatalf("answer: %.200s", check.out.String())
	}
	c := &replayConn{req: req, n: b.N, discard: true}
	b.ReportAllocs()
	b.ResetTimer()
	if err := s.ServeConn(&timedConn{Conn: c, l: &connListener{}, peer: netip.AddrFrom4([4]byte{127, 0, 0, 1})}); err != nil {
		b.Fatal(err)
	}
}

// replayConn reads as one request n times over, then the end of the connection; what is written to it is kept
// (for the check) or dropped.
type replayConn struct {
	addrConn
	req     []byte
	n       int
	discard bool
	out     strings.Builder
}

func (c *replayConn) Read(p []byte) (int, error) {
	if c.n == 0 {
		return 0, io.EOF
	}
	c.n--
	return copy(p, c.req), nil
}

func (c *replayConn) Write(p []byte) (int, error) {
	if !c.discard {
		c.out.Write(p)
	}
	return len(p), nil
}

func (c *replayConn) Close() error                     { return nil }
func (c *replayConn) SetDeadline(time.Time) error      { return nil }
func (c *replayConn) SetReadDeadline(time.Time) error  { return nil }
func (c *replayConn) SetWriteDeadline(time.Time) error { return nil }

var _ net.Conn = (*replayConn)(nil)

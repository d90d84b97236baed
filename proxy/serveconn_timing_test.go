package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
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
	benchServeConn(b, benchConnEdge(b), benchConnURI())
}

// The ceiling asked as the side-by-side run asks it, with a short path, and with the edge's request line, which
// shows how much of the difference is fasthttp reading the longer request.
func BenchmarkServeConnCeilingPlaylist(b *testing.B) {
	benchServeConn(b, ceilingServer(benchConnAnswer(b)), "/playlist")
}

func BenchmarkServeConnCeilingPlaylistTokenURI(b *testing.B) {
	benchServeConn(b, ceilingServer(benchConnAnswer(b)), benchConnURI())
}

// The AfterSyscall pair makes one system call before each request is read, as a real connection's read(2) does.
// Under wrk the edge's handler takes about twice its time in the benchmarks above, and on the VM where this was
// found (page-table isolation without PCID) one call per request brought back part of that: the edge's difference
// to the ceiling went from 0.7 to 1.0 µs. These two measure that part without wrk's noise.
func BenchmarkServeConnAuthorizedPlaylistAfterSyscall(b *testing.B) {
	benchServeConnWith(b, benchConnEdge(b), benchConnURI(), true)
}

func BenchmarkServeConnCeilingPlaylistTokenURIAfterSyscall(b *testing.B) {
	benchServeConnWith(b, ceilingServer(benchConnAnswer(b)), benchConnURI(), true)
}

// benchConnURI is the authorized playlist as the side-by-side run's viewer asks for it.
func benchConnURI() string {
	tok, _ := token.MintJWT(token.JWTMint{Alg: "HS256", Key: []byte(testJWTSecret), Streams: []string{"a001"}, TTL: time.Hour})
	return "/play/a001/index.m3u8?token=" + tok
}

// benchConnEdge is the public server of an authorized edge in front of the benchmarks' origin.
func benchConnEdge(b *testing.B) *fasthttp.Server {
	_, srv := startEdge(b, withAuth, startTimingOrigin(b).url)
	return srv.public
}

// benchConnAnswer is the edge's answer to the authorized playlist, which the ceiling then holds.
func benchConnAnswer(b *testing.B) []byte {
	body, err := io.ReadAll(serveOnce(b, benchConnEdge(b), benchConnURI()).Body)
	if err != nil {
		b.Fatal(err)
	}
	return body
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

func benchRequest(uri string) []byte {
	return []byte("GET " + uri + " HTTP/1.1\r\nHost: 127.0.0.1:18090\r\n\r\n")
}

// serveOnce serves one request for uri on a connection of its own, as the public listener hands it over, and
// returns the response, which must be a 200.
func serveOnce(b *testing.B, s *fasthttp.Server, uri string) *http.Response {
	c := &replayConn{req: benchRequest(uri), n: 1}
	if err := s.ServeConn(&timedConn{Conn: c, l: &connListener{}, peer: netip.AddrFrom4([4]byte{127, 0, 0, 1})}); err != nil {
		b.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(c.out.String())), nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("answer %.200q: %v", c.out.String(), err)
	}
	return resp
}

// benchServeConn serves b.N requests for uri on one connection, after one request that checks the answer and
// warms what the first request builds.
func benchServeConn(b *testing.B, s *fasthttp.Server, uri string) {
	benchServeConnWith(b, s, uri, false)
}

// benchServeConnWith is benchServeConn, with one system call before each request is read when afterSyscall is set.
func benchServeConnWith(b *testing.B, s *fasthttp.Server, uri string, afterSyscall bool) {
	serveOnce(b, s, uri)
	c := &replayConn{req: benchRequest(uri), n: b.N, discard: true, afterSyscall: afterSyscall}
	b.ReportAllocs()
	b.ResetTimer()
	if err := s.ServeConn(&timedConn{Conn: c, l: &connListener{}, peer: netip.AddrFrom4([4]byte{127, 0, 0, 1})}); err != nil {
		b.Fatal(err)
	}
}

// replayConn reads as one request n times over, then the end of the connection; what is written to it is kept
// (for the check) or dropped. With afterSyscall set, each read first makes a system call that changes nothing.
type replayConn struct {
	addrConn
	req          []byte
	n            int
	discard      bool
	afterSyscall bool
	out          strings.Builder
}

func (c *replayConn) Read(p []byte) (int, error) {
	if c.afterSyscall {
		syscall.Getppid()
	}
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

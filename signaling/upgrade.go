package signaling

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/valyala/fasthttp"
)

// Why the upgrade has its own path: fasthttp runs a hijack handler on a goroutine that holds the upgrade
// request's RequestCtx (parsed headers, cookies included) and the connection's read buffer until the handler
// returns. With websocket.FastHTTPUpgrader the handler is the socket's whole life, so each idle socket kept
// 8-12 KiB of request state it never reads again: more than half its memory. Detached, the hijack handler only
// moves the connection to a goroutine of ours and returns, and fasthttp releases both.

// DetachSockets makes srv hand upgraded sockets over for good: set before srv serves, it turns on
// KeepHijackedConns, so fasthttp neither closes a hijacked connection nor keeps its request state once the
// hijack handler returns. The signaling server then owns and closes every socket. srv must not hijack
// connections elsewhere and expect fasthttp to close them. Without this call ServeWS keeps the socket on
// fasthttp's hijack goroutine, which works on any server and costs the memory above.
// A long-polling GET with nothing to answer yet is hijacked the same way (polling.go), and answered later on
// its connection.
//
// It also reads srv's request body limit, which bounds a long-polling POST: the Engine.IO handshake announces
// the smaller of it and read_limit as maxPayload, which socket.io-client keeps its POSTs under.
func (s *Server) DetachSockets(srv *fasthttp.Server) {
	srv.KeepHijackedConns = true
	s.pollBodyLimit.Store(int64(srv.MaxRequestBodySize))
	s.detach.Store(true)
}

// detachState is the Server's part of the detached path; the settings' wsUpgrader writes the 101 and builds the
// websocket.Conn on the raw connection, after fasthttp has let go.
type detachState struct {
	detach atomic.Bool
	// pollBodyLimit is the HTTP server's request body limit, 0 when unknown.
	pollBodyLimit atomic.Int64
}

// upgradeDetached validates the handshake while fasthttp can still answer a refusal, then hijacks without a
// response: the 101 is written by wsUpgrader on the raw connection, and run gets the socket on a goroutine of
// ours. abort undoes what the caller reserved when the connection fails before run.
func (s *Server) upgradeDetached(ctx *fasthttp.RequestCtx, run func(*websocket.Conn), abort func()) error {
	req, err := handshakeRequest(ctx)
	if err != nil {
		return err
	}
	raw := ctx.Conn()
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(hc net.Conn) {
		nc, err := takeBuffered(hc, raw)
		if err != nil {
			abort()
			_ = raw.Close()
			return
		}
		go s.serveDetached(nc, req, run, abort)
	})
	return nil
}

func (s *Server) serveDetached(nc net.Conn, req *http.Request, run func(*websocket.Conn), abort func()) {
	ws, err := s.settings().wsUpgrader.Upgrade(&hijackedWriter{nc: nc}, req, nil)
	if err != nil {
		s.log.Debug("signaling: handshake write failed", "err", err.Error())
		abort()
		_ = nc.Close()
		return
	}
	run(ws)
}

// handshakeRequest checks what websocket.Upgrader would check, so that a bad handshake gets its 400 from
// fasthttp, and copies the few headers the Upgrader reads: the rest of the request is not kept.
func handshakeRequest(ctx *fasthttp.RequestCtx) (*http.Request, error) {
	if !ctx.IsGet() {
		return nil, fmt.Errorf("%w: method must be GET", ErrHandshake)
	}
	if string(ctx.Request.Header.Peek("Sec-Websocket-Version")) != "13" {
		return nil, fmt.Errorf("%w: want Sec-WebSocket-Version: 13", ErrHandshake)
	}
	key := ctx.Request.Header.Peek("Sec-Websocket-Key")
	if n, err := base64.StdEncoding.Decode(make([]byte, 18), key); err != nil || n != 16 {
		return nil, fmt.Errorf("%w: Sec-WebSocket-Key must be 16 bytes in base64", ErrHandshake)
	}
	h := make(http.Header, 4)
	h.Set("Connection", "Upgrade")
	h.Set("Upgrade", "websocket")
	h.Set("Sec-Websocket-Version", "13")
	h.Set("Sec-Websocket-Key", string(key))
	return &http.Request{Method: http.MethodGet, Header: h}, nil
}

// aLongTimeAgo is a read deadline that has passed, so a read returns at once unless data is already buffered.
var aLongTimeAgo = time.Unix(1, 0)

// takeBuffered moves bytes a client sent behind its upgrade request out of fasthttp's read buffer, which goes
// back to fasthttp's pool when the hijack handler returns. A client should wait for the 101 first; one that
// does not still loses nothing. With the deadline in the past, reads end as soon as the buffer is empty, and
// bytes still in the kernel stay there for the socket's own reader.
func takeBuffered(hc, raw net.Conn) (net.Conn, error) {
	if err := hc.SetReadDeadline(aLongTimeAgo); err != nil {
		return nil, err
	}
	var pre []byte
	var b [512]byte
	for {
		n, err := hc.Read(b[:])
		pre = append(pre, b[:n]...)
		if err != nil {
			break
		}
	}
	if err := raw.SetReadDeadline(time.Time{}); err != nil {
		return nil, err
	}
	if len(pre) == 0 {
		return raw, nil
	}
	return &prefixConn{Conn: raw, pre: pre}, nil
}

// prefixConn reads pre before the connection.
type prefixConn struct {
	net.Conn
	pre []byte
}

func (p *prefixConn) Read(b []byte) (int, error) {
	if len(p.pre) > 0 {
		n := copy(b, p.pre)
		p.pre = p.pre[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}

// hijackedWriter is the http.ResponseWriter websocket.Upgrader wants: the connection is already ours, so
// Hijack hands it over with buffers too small for the Upgrader to adopt (it sizes its own from the config).
type hijackedWriter struct {
	nc net.Conn
	h  http.Header
}

func (w *hijackedWriter) Header() http.Header {
	if w.h == nil {
		w.h = http.Header{}
	}
	return w.h
}

// Write and WriteHeader only see the Upgrader's own refusals, which handshakeRequest makes unreachable; the
// caller closes the connection after one.
func (w *hijackedWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *hijackedWriter) WriteHeader(int)             {}

func (w *hijackedWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return w.nc, bufio.NewReadWriter(bufio.NewReaderSize(w.nc, 16), bufio.NewWriterSize(w.nc, 16)), nil
}

package proxy

import (
	"bytes"
	"net"
	"net/netip"
	"strconv"

	"github.com/valyala/fasthttp"
)

// clientIP is the viewer's address. X-Forwarded-For is believed only from a trusted proxy, and then read from the
// right, skipping trusted hops, because everything left of the first untrusted hop is whatever the client wrote.
func (s *Server) clientIP(ctx *fasthttp.RequestCtx) netip.Addr {
	peer := peerAddr(ctx)
	if len(s.cfg.trusted) == 0 || !s.trusted(peer) {
		return peer
	}
	xff := ctx.Request.Header.Peek(fasthttp.HeaderXForwardedFor)
	for len(xff) > 0 {
		i := bytes.LastIndexByte(xff, ',')
		hop := bytes.TrimSpace(xff[i+1:])
		if i < 0 {
			xff = nil
		} else {
			xff = xff[:i]
		}
		a, err := netip.ParseAddr(string(hop))
		if err != nil {
			// A garbled hop ends the chain; the last good address is the best we know.
			return peer
		}
		a = a.Unmap()
		if !s.trusted(a) {
			return a
		}
		peer = a
	}
	return peer
}

func (s *Server) trusted(a netip.Addr) bool {
	for _, p := range s.cfg.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func peerAddr(ctx *fasthttp.RequestCtx) netip.Addr {
	if c, ok := ctx.Conn().(*timedConn); ok {
		// Fast path: parsed when the connection was accepted.
		return c.peer
	}
	if ta, ok := ctx.RemoteAddr().(*net.TCPAddr); ok {
		if a, ok := netip.AddrFromSlice(ta.IP); ok {
			return a.Unmap()
		}
	}
	return netip.IPv4Unspecified()
}

// setForwardHeaders builds the origin request's identity headers. The origin request is built fresh rather than
// copied from the viewer's, so hop-by-hop headers (Connection, Keep-Alive, TE, Upgrade, Proxy-*), cookies and
// Authorization never reach the origin.
func setForwardHeaders(h *fasthttp.RequestHeader, ctx *fasthttp.RequestCtx, client netip.Addr) {
	peer := peerAddr(ctx)
	var xff []byte
	if prior := ctx.Request.Header.Peek(fasthttp.HeaderXForwardedFor); len(prior) > 0 && peer != client {
		// Only a trusted proxy's chain is passed on (clientIP returned something other than the peer).
		xff = append(append(xff, prior...), ", "...)
	}
	xff = peer.AppendTo(xff)
	h.SetBytesV(fasthttp.HeaderXForwardedFor, xff)
	h.SetBytesV("X-Real-IP", client.AppendTo(nil))
	if ua := ctx.Request.Header.UserAgent(); len(ua) > 0 {
		h.SetUserAgentBytes(ua)
	} else {
		h.SetUserAgent("hlsedge")
	}
}

// setCORS lets browser players on the operator's pages fetch playlists and segments.
func (s *Server) setCORS(ctx *fasthttp.RequestCtx) {
	c := &s.cfg.CORS
	if c.Disabled {
		return
	}
	h := &ctx.Response.Header
	allowed := ""
	var origin []byte
	for _, o := range c.AllowOrigins {
		if o == "*" {
			allowed = "*"
			break
		}
		if origin == nil {
			// Only a list of origins needs the request's: "*", the default, is answered without the header lookup.
			origin = ctx.Request.Header.Peek("Origin")
		}
		if len(origin) > 0 && o == string(origin) {
			allowed = o
			break
		}
	}
	if allowed == "" {
		return
	}
	if allowed != "*" {
		setCanonical(h, fasthttp.HeaderVary, "Origin")
	}
	setCanonical(h, fasthttp.HeaderAccessControlAllowOrigin, allowed)
	// Age too: hls.js reads it to aim its LL-HLS blocking reloads, and a cross-origin page sees only what is exposed.
	setCanonical(h, fasthttp.HeaderAccessControlExposeHeaders, "Content-Length, Content-Range, Age")
	if string(ctx.Method()) == fasthttp.MethodOptions {
		h.Set(fasthttp.HeaderAccessControlAllowMethods, "GET, HEAD, OPTIONS")
		h.Set(fasthttp.HeaderAccessControlAllowHeaders, "Range, Authorization")
		h.Set(fasthttp.HeaderAccessControlMaxAge, strconv.Itoa(int(c.MaxAge.Seconds())))
	}
}

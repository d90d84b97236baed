package proxy

import (
	"log/slog"

	"github.com/valyala/fasthttp"

	"github.com/hlsedge/hlsedge/authz"
	"github.com/hlsedge/hlsedge/playlist"
)

// requestCarrier lets authz read the token sources straight out of fasthttp's parsed request. It lives in the
// pooled scratch so that handing it over as an interface does not allocate.
type requestCarrier struct {
	ctx *fasthttp.RequestCtx
	// known is the answer the connection's request memo holds for this very request line; read keeps the last
	// answer read off the raw query, for the memo to keep (reqmemo.go).
	known, read queryArgMemo
}

func (c *requestCarrier) Cookie(name string) []byte { return c.ctx.Request.Header.Cookie(name) }
func (c *requestCarrier) Header(name string) []byte { return c.ctx.Request.Header.Peek(name) }

// QueryArg reads the raw query when it can, so that a request carrying only its token never has its arguments
// parsed (see queryArgAt).
func (c *requestCarrier) QueryArg(name string) []byte {
	q := c.ctx.URI().QueryString()
	if c.known.name == name && name != "" {
		// Fast path: the connection's last playlist request line was this one.
		if c.known.start < 0 {
			return nil
		}
		return q[c.known.start:c.known.end]
	}
	if start, end, ok := queryArgAt(q, name); ok {
		c.read = queryArgMemo{name: name, start: start, end: end}
		if start < 0 {
			return nil
		}
		return q[start:end]
	}
	return c.ctx.QueryArgs().Peek(name)
}

// authorize is the one place authorization plugs into the request path, before any origin work. It answers the
// viewer itself and returns false when the request is refused.
func (s *Server) authorize(ctx *fasthttp.RequestCtx, rt *route, sc *scratch) bool {
	sc.decision = authz.Decision{}
	// A shield takes an edge's tier signature in place of a viewer's token (tier.go).
	if handled, ok := s.admitTier(ctx, sc); handled {
		return ok
	}
	path := ctx.Request.URI().PathOriginal()
	if !s.auth.Protected(path) {
		return true
	}
	sc.carrier.ctx = ctx
	sc.areq = authz.Request{
		Path:      path,
		Channel:   rt.channel,
		ClientIP:  s.clientIP(ctx),
		UserAgent: ctx.Request.Header.UserAgent(),
		RawQuery:  ctx.URI().QueryString(),
	}
	if tc, ok := ctx.Conn().(*timedConn); ok {
		sc.areq.Memo = &tc.memo
	}
	if s.auth.ReadsPageHeaders() {
		// Slow path: rules or middlewares read these; each is a scan of the request headers.
		sc.areq.Referer = ctx.Request.Header.Referer()
		sc.areq.Origin = ctx.Request.Header.Peek(fasthttp.HeaderOrigin)
		sc.areq.Host = ctx.Request.Header.Host()
	}
	s.auth.AuthorizeTo(&sc.decision, &sc.areq, &sc.carrier, sc.now)
	sc.carrier.ctx = nil
	if sc.decision.Allowed() {
		return true
	}
	// The reason names what failed, never the token: it is safe for the viewer and for the operator's log.
	s.reqLog.Info("request denied", "status", sc.decision.Status, "reason", sc.decision.Reason,
		"channel", string(rt.channel), "group", sc.decision.Group, "ip", sc.areq.ClientIP.String(),
		"path", string(path))
	if sc.decision.Status == fasthttp.StatusUnauthorized {
		ctx.Response.Header.Set(fasthttp.HeaderWWWAuthenticate, `Bearer realm="hlsedge"`)
	}
	fail(ctx, sc.decision.Status, sc.decision.Reason)
	return false
}

// countSessionBytes adds the response's size to the viewer's session once the response is ready. A streamed
// response has no body here; its Content-Length says how much is on its way.
func (s *Server) countSessionBytes(ctx *fasthttp.RequestCtx, sc *scratch) {
	sc.decision.AddBytes(int64(responseSize(ctx)))
}

// isTokenParam tells which query parameters are the edge's: they are never sent to the origin and never part of
// a cache key.
func (s *Server) isTokenParam(name []byte) bool {
	for _, p := range s.tokenParams {
		if string(name) == p {
			return true
		}
	}
	return false
}

// childQuery is the query every URI in this viewer's playlist gets, so that child playlists, keys and segments
// come back with a token: the edge token, or the incoming one unchanged, as the channel's group says.
func (s *Server) childQuery(ctx *fasthttp.RequestCtx, rt *route, sc *scratch) []byte {
	if !sc.decision.Allowed() {
		return nil
	}
	// Kept in the scratch so the buffer grows once and is reused by later requests.
	sc.child = s.auth.AppendChildQuery(sc.child[:0], &sc.areq, &sc.decision, sc.now)
	return sc.child
}

// mediaQuery is the query of the segment, part, key and init-section URIs of this viewer's playlist: in a live
// media playlist, a short-lived token minted for this reload; q, the playlists' query, everywhere else. A media
// playlist's does not depend on q, which serveObject builds only when the playlist names other playlists.
func (s *Server) mediaQuery(q []byte, sc *scratch, pl playlist.Timing) []byte {
	if !pl.Media {
		return q
	}
	if !sc.decision.Allowed() {
		return nil
	}
	sc.mediaChild = s.auth.AppendMediaQuery(sc.mediaChild[:0], &sc.areq, &sc.decision, sc.now, pl)
	return sc.mediaChild
}

func logAuthStart(log *slog.Logger, a *authz.Authorizer) {
	if a.Disabled() {
		log.Warn("authorization is disabled: every channel is served without a token ('auth.disabled: true')")
	}
}

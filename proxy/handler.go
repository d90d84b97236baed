package proxy

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"time"
	"unsafe"

	"github.com/valyala/fasthttp"

	"github.com/hlsedge/hlsedge/authz"
)

// scratch is the per-request buffers, pooled so that a cache hit allocates nothing.
type scratch struct {
	originPath []byte
	key        []byte
	query      []byte
	child      []byte
	mediaChild []byte
	body       []byte
	now        time.Time

	carrier  requestCarrier
	areq     authz.Request
	decision authz.Decision
	// stripe is where this scratch's requests are counted (see metricStripe).
	stripe *metricStripe
}

// serveHTTP is the one-way request path: route, authorize, cache or origin (coalesced), rewrite, respond.
func (s *Server) serveHTTP(ctx *fasthttp.RequestCtx) {
	sc := s.bufs.Get().(*scratch)
	// One clock read per request: fasthttp already took one when the request arrived, and on some virtual
	// machines every extra read costs as much as the cache lookup.
	start := ctx.Time()
	if s.clock != nil {
		start = s.clock()
	}
	sc.now = start
	k, cacheState := s.handle(ctx, sc)
	s.countSessionBytes(ctx, sc)
	// The decision and request point into this request's buffers; drop them before the scratch is reused.
	sc.areq, sc.decision = authz.Request{}, authz.Decision{}
	status := ctx.Response.StatusCode()
	elapsed := time.Since(start)
	sc.stripe.record(k, status, elapsed)
	s.bufs.Put(sc)
	if s.cfg.Log.Access {
		// Only the path is logged, never the query: tokens travel there.
		s.log.Info("access", "method", string(ctx.Method()), "path", string(ctx.Request.URI().PathOriginal()),
			"status", status, "bytes", responseSize(ctx), "ms", float64(elapsed.Microseconds())/1000,
			"ip", s.clientIP(ctx).String(), "cache", cacheState)
	}
}

// handle serves one request and returns what the metrics and the access log need.
func (s *Server) handle(ctx *fasthttp.RequestCtx, sc *scratch) (kind, string) {
	path := ctx.Request.URI().PathOriginal()
	if string(path) == "/healthz" {
		ctx.SetContentType("text/plain; charset=utf-8")
		ctx.SetBodyString("ok\n")
		return routeAdmin, ""
	}
	if s.sig != nil && s.sig.Handles(path) {
		s.sig.ServeWS(ctx)
		return routeAdmin, ""
	}
	if s.player != nil && s.player.serve(ctx) {
		return routeAdmin, ""
	}
	method := ctx.Method()
	isOptions := string(method) == fasthttp.MethodOptions
	if !isOptions && string(method) != fasthttp.MethodGet && string(method) != fasthttp.MethodHead {
		ctx.Response.Header.Set("Allow", "GET, HEAD, OPTIONS")
		fail(ctx, fasthttp.StatusMethodNotAllowed, "method not allowed")
		return routeAdmin, ""
	}

	// A playlist reload repeats the connection's last playlist request line, which the connection remembers
	// parsed (reqmemo.go).
	var memo *requestMemo
	if tc, ok := ctx.Conn().(*timedConn); ok {
		memo = &tc.req
	}
	line := ctx.Request.Header.RequestURI()
	known := memo != nil && memo.lookup(s, line)
	var rt route
	sc.carrier.known, sc.carrier.read = queryArgMemo{}, queryArgMemo{}
	if known {
		// Fast path: parsed before, on this connection, under this config.
		rt = memo.route(path, sc.originPath[:0])
		sc.carrier.known = memo.tok
	} else {
		var err error
		rt, err = matchRoute(s.cfg.Routes, path, sc.originPath[:0])
		switch {
		case errors.Is(err, errNoRoute):
			fail(ctx, fasthttp.StatusNotFound, "not found")
			return routeAdmin, ""
		case err != nil:
			s.reqLog.Info("bad request path", "err", err, "ip", s.clientIP(ctx).String())
			fail(ctx, fasthttp.StatusBadRequest, "bad request path")
			return routeAdmin, ""
		}
	}
	sc.originPath = rt.originPath
	s.setCORS(ctx)
	if isOptions {
		ctx.SetStatusCode(fasthttp.StatusNoContent)
		return rt.kind, ""
	}

	// Authorization plugs in here, before any origin work (see authorize).
	if !s.authorize(ctx, &rt, sc) {
		return rt.kind, ""
	}

	// The cache key is the origin path plus the query the origin needs (LL-HLS _HLS_msn and the like), without any
	// token parameter, so every viewer of a segment shares one entry.
	sc.query = sc.query[:0]
	onlyTokens := known && memo.onlyTokens
	if !known {
		onlyTokens = onlyTokenArgs(ctx.URI().QueryString(), s.isTokenParam)
		if memo != nil && rt.kind == kindPlaylist {
			memo.remember(s, line, &rt, onlyTokens, sc.carrier.read)
		}
	}
	if !onlyTokens {
		// Slow path: arguments for the origin (or encoded ones) need fasthttp's parsed QueryArgs.
		sc.query = appendOriginQuery(sc.query, ctx.URI().QueryArgs(), s.isTokenParam)
		// LL-HLS delivery directives: one spelling per playlist version, 400 for those the spec refuses (llhls.go).
		// They are origin arguments, so only this path can carry them.
		if rt.kind == kindPlaylist && !s.llDirectives(ctx, sc) {
			return rt.kind, ""
		}
	}
	sc.key = append(append(sc.key[:0], sc.originPath...), sc.query...)

	o := s.cache.Get(sc.key, sc.now)
	state := "hit"
	if o != nil {
		// Fast path: a fresh shared object.
		sc.stripe.cacheHit.Add(1)
	} else {
		// Slow path: one origin fetch per key, however many viewers ask at once (see miss).
		s.m.cacheMiss.Inc()
		if o, state = s.miss(ctx, rt.kind, sc.key); o == nil {
			return rt.kind, state
		}
	}
	s.serveObject(ctx, &rt, o, sc)
	return rt.kind, state
}

// serveObject writes a cached object, rewriting playlists for this viewer.
func (s *Server) serveObject(ctx *fasthttp.RequestCtx, rt *route, o *object, sc *scratch) {
	h := &ctx.Response.Header
	h.SetContentType(o.contentType)
	if o.kind == kindPlaylist {
		setCanonical(h, fasthttp.HeaderCacheControl, s.playlistCacheControl())
		setAge(h, o, sc.now)
		tmpl, err := o.template(s.rewriter)
		if err != nil {
			// The leader already refused bad playlists; this only guards objects cached before a config change.
			s.m.rewriteErrors.Inc()
			s.failOrigin(ctx, &OriginError{Status: fasthttp.StatusBadGateway, Reason: "origin sent an invalid playlist", Err: err})
			return
		}
		timing := tmpl.Timing()
		var q []byte
		if !timing.Media || tmpl.QueriesPlaylists() {
			// A live media playlist's URIs are all segments, parts, keys and maps, which take the media query
			// alone; only a playlist that names other playlists needs this one.
			q = s.childQuery(ctx, rt, sc)
		}
		// The rewritten body is handed to the response instead of copied into it, and the response's previous
		// buffer comes back to the scratch for the next viewer: the buffers circulate between the two pools.
		sc.body = ctx.Response.SwapBody(tmpl.AppendMedia(sc.body[:0], q, s.mediaQuery(q, sc, timing)))
		return
	}
	setCanonical(h, fasthttp.HeaderCacheControl, s.segmentCacheControl())
	setCanonical(h, fasthttp.HeaderAcceptRanges, "bytes")
	body := o.body
	if rng := ctx.Request.Header.Peek(fasthttp.HeaderRange); len(rng) > 0 {
		start, end, ok := parseRange(rng, len(body))
		if !ok {
			h.Set(fasthttp.HeaderContentRange, "bytes */"+strconv.Itoa(len(body)))
			fail(ctx, fasthttp.StatusRequestedRangeNotSatisfiable, "range not satisfiable")
			return
		}
		if start != 0 || end != len(body)-1 {
			h.SetContentRange(start, end, len(body))
			ctx.SetStatusCode(fasthttp.StatusPartialContent)
			body = body[start : end+1]
		}
	}
	// The object is immutable, so the response may point at it instead of copying it.
	ctx.Response.SetBodyRaw(body)
}

func (s *Server) playlistCacheControl() string {
	// Each viewer's playlist carries its own token, so shared caches must not keep it; browsers may for a moment.
	return "private, max-age=1"
}

func (s *Server) segmentCacheControl() string { return s.segmentCC }

// setCanonical sets a response header whose name is already in canonical form (the fasthttp.Header* constants).
// ResponseHeader.Set copies and normalises the name on every call, which cost more than the rest of the header
// work on the playlist path; SetCanonical copies key and value into the header and keeps neither, so the
// strings are handed over without the copy a []byte conversion would make.
func setCanonical(h *fasthttp.ResponseHeader, key, value string) {
	h.SetCanonical(unsafe.Slice(unsafe.StringData(key), len(key)), unsafe.Slice(unsafe.StringData(value), len(value)))
}

// fail is the viewer listener's one way to refuse: a status and a one-line reason the viewer (or the person
// debugging their player) can read.
func fail(ctx *fasthttp.RequestCtx, status int, reason string) {
	ctx.Response.ResetBody()
	ctx.SetStatusCode(status)
	ctx.Response.Header.SetContentType("text/plain; charset=utf-8")
	ctx.Response.Header.Set(fasthttp.HeaderCacheControl, "no-store")
	ctx.Response.SetBodyString(reason + "\n")
}

func (s *Server) failOrigin(ctx *fasthttp.RequestCtx, err error) {
	var oe *OriginError
	if !errors.As(err, &oe) {
		oe = &OriginError{Status: fasthttp.StatusBadGateway, Reason: "origin fetch failed", Err: err}
	}
	level := slog.LevelWarn
	if oe.Status == fasthttp.StatusNotFound || oe.Status == fasthttp.StatusServiceUnavailable {
		// 503 is an LL-HLS hold that ran out: the stream's state, counted in hlsedge_ll_hold_timeouts_total.
		level = slog.LevelDebug
	}
	s.reqLog.Log(context.Background(), level, "origin error", "path", string(ctx.Request.URI().PathOriginal()), "status", oe.Status,
		"reason", oe.Reason, "err", errString(oe.Err))
	fail(ctx, oe.Status, oe.Reason)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// serveMalformed answers requests fasthttp could not parse. Such input is the client's fault: 400, never 500.
func (s *Server) serveMalformed(ctx *fasthttp.RequestCtx, err error) {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		// fasthttp also lands here when a new connection sent nothing before server.read_timeout: browsers open
		// spare connections and park them. Whatever is written is read as the answer to the next request sent on
		// that socket, and 408 is the one answer browsers take as "retry on a fresh connection".
		s.log.Debug("request read timeout", "err", err)
		fail(ctx, fasthttp.StatusRequestTimeout, "request timeout")
		return
	}
	s.reqLog.Info("malformed request", "err", err)
	status := fasthttp.StatusBadRequest
	if errors.Is(err, fasthttp.ErrBodyTooLarge) {
		status = fasthttp.StatusRequestEntityTooLarge
	}
	fail(ctx, status, "malformed request")
}

// parseRange handles one "bytes=a-b", "bytes=a-" or "bytes=-n" range. Several ranges are not worth a multipart
// answer for HLS; the caller then serves the whole body, which RFC 9110 allows.
func parseRange(h []byte, size int) (start, end int, ok bool) {
	if !bytes.HasPrefix(h, []byte("bytes=")) || bytes.IndexByte(h, ',') >= 0 {
		return 0, size - 1, true
	}
	spec := h[len("bytes="):]
	dash := bytes.IndexByte(spec, '-')
	if dash < 0 || size == 0 {
		return 0, 0, false
	}
	a, b := spec[:dash], spec[dash+1:]
	atoi := func(p []byte) (int, bool) {
		if len(p) == 0 || len(p) > 18 {
			return 0, false
		}
		n := 0
		for _, c := range p {
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	if len(a) == 0 {
		n, ok := atoi(b)
		if !ok || n == 0 {
			return 0, 0, false
		}
		if n > size {
			n = size
		}
		return size - n, size - 1, true
	}
	start, ok = atoi(a)
	if !ok || start >= size {
		return 0, 0, false
	}
	if len(b) == 0 {
		return start, size - 1, true
	}
	end, ok = atoi(b)
	if !ok || end < start {
		return 0, 0, false
	}
	if end >= size {
		end = size - 1
	}
	return start, end, true
}

// responseSize is the body length without touching a body stream: Response.Body() would read a streamed body
// into memory, which is exactly what streaming large objects avoids.
func responseSize(ctx *fasthttp.RequestCtx) int {
	if ctx.Response.IsBodyStream() {
		return max(ctx.Response.Header.ContentLength(), 0)
	}
	return len(ctx.Response.Body())
}

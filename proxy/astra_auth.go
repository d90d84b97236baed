package proxy

import (
	"net/netip"

	"github.com/valyala/fasthttp"

	"github.com/hlsedge/hlsedge/authz"
)

// serveAstraAuth is GET /auth/astra: Astra's "HTTP Request" backend protocol answered with hlsedge's verifiers
// and rules, so an operator who keeps serving from Astra can point its backend at the edge. Astra sends the
// viewer's query string and describes the viewer in X-Real-IP, X-Real-Path, X-Real-UA, X-Real-Host and
// X-Channel-ID; the answer is 200 (with X-Session-Name, the user) or 401/403.
//
// It lives on the admin listener, not the public one: those headers are the caller's word about someone else,
// to be believed only from Astra on the operator's network, which is where the admin listener is. It is outside
// /api/ because Astra cannot send the admin bearer token.
func (s *Server) serveAstraAuth(ctx *fasthttp.RequestCtx) {
	if m := string(ctx.Method()); m != fasthttp.MethodGet && m != fasthttp.MethodHead {
		ctx.Response.Header.Set("Allow", "GET, HEAD")
		s.fail(ctx, fasthttp.StatusMethodNotAllowed, "method not allowed")
		return
	}
	h := &ctx.Request.Header
	ip, err := netip.ParseAddr(string(h.Peek("X-Real-IP")))
	if err != nil {
		ip = netip.Addr{}
	}
	path := h.Peek("X-Real-Path")
	req := authz.Request{
		Path:      path,
		ClientIP:  ip,
		UserAgent: h.Peek("X-Real-UA"),
		Host:      h.Peek("X-Real-Host"),
		Referer:   h.Referer(),
		RawQuery:  ctx.URI().QueryString(),
		// Astra asks once per session and keeps its own; idle-timeout sessions here would close at once.
		SkipSession: true,
	}
	// The channel comes from the viewer's path through the edge's own routes, as for a request to the edge;
	// X-Channel-ID (Astra's channel id) is the fallback when the path is not one the edge serves.
	if rt, err := matchRoute(s.cfg.Routes, path, nil); err == nil {
		req.Channel = rt.channel
	} else if id := h.Peek("X-Channel-ID"); len(id) > 0 && validChannel(id) {
		req.Channel = id
	}
	carrier := requestCarrier{ctx: ctx}
	d := s.auth.Authorize(&req, &carrier, s.now())
	if d.Allowed() {
		if d.UserID != "" {
			ctx.Response.Header.Set("X-Session-Name", d.UserID)
		}
		ctx.Response.Header.Set(fasthttp.HeaderCacheControl, "no-store")
		ctx.SetContentType("text/plain; charset=utf-8")
		ctx.SetBodyString("ok\n")
		return
	}
	s.log.Info("astra auth denied", "status", d.Status, "reason", d.Reason, "group", d.Group, "ip", ip.String(),
		"path", string(path))
	// Astra knows 401 and 403 only; an expired token (410) or an unknown channel is a refusal all the same.
	status := fasthttp.StatusForbidden
	if d.Status == fasthttp.StatusUnauthorized {
		status = d.Status
	}
	s.fail(ctx, status, d.Reason)
}

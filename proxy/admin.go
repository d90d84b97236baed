package proxy

import (
	"crypto/subtle"
	"encoding/json"
	"strings"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/pprofhandler"
)

// serveAdmin is the operators' listener: health, metrics and the admin API.
func (s *Server) serveAdmin(ctx *fasthttp.RequestCtx) {
	path := string(ctx.Path())
	switch path {
	case "/":
		s.status.serve(ctx)
		return
	case "/healthz":
		ctx.SetContentType("text/plain; charset=utf-8")
		ctx.SetBodyString("ok\n")
		return
	case "/metrics":
		ctx.SetContentType("text/plain; version=0.0.4")
		s.m.WritePrometheus(ctx)
		s.writeAuthMetrics(ctx)
		return
	case "/auth/astra":
		s.serveAstraAuth(ctx)
		return
	}
	if strings.HasPrefix(path, "/debug/pprof/") {
		// Profiles are how the performance section's numbers were explained; they reveal nothing about viewers
		// but cost CPU, so they sit behind the admin token like the API.
		if !s.adminAuthorized(ctx) {
			s.fail(ctx, fasthttp.StatusUnauthorized, "admin token required")
			return
		}
		pprofhandler.PprofHandler(ctx)
		return
	}
	if len(path) >= 5 && path[:5] == "/api/" {
		if !s.adminAuthorized(ctx) {
			ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="hlsedge admin"`)
			s.fail(ctx, fasthttp.StatusUnauthorized, "admin token required")
			return
		}
		switch path {
		case "/api/stats":
			s.writeJSON(ctx, s.adminStats())
			return
		case "/api/conferences":
			if s.sig != nil {
				s.sig.ServeConferencesAPI(ctx)
				return
			}
		default:
			if s.serveAuthAPI(ctx, path) {
				return
			}
		}
	}
	s.fail(ctx, fasthttp.StatusNotFound, "not found")
}

// adminAuthorized checks the admin bearer token in constant time. Without a configured token the API is open,
// which is only safe because the admin listener defaults to loopback.
func (s *Server) adminAuthorized(ctx *fasthttp.RequestCtx) bool {
	want := s.cfg.Admin.Token
	if want == "" {
		return true
	}
	got := ctx.Request.Header.Peek(fasthttp.HeaderAuthorization)
	const prefix = "Bearer "
	if len(got) <= len(prefix) || string(got[:len(prefix)]) != prefix {
		return false
	}
	return subtle.ConstantTimeCompare(got[len(prefix):], []byte(want)) == 1
}

func (s *Server) writeJSON(ctx *fasthttp.RequestCtx, v any) {
	ctx.SetContentType("application/json")
	if err := json.NewEncoder(ctx).Encode(v); err != nil {
		s.fail(ctx, fasthttp.StatusInternalServerError, "encoding response")
	}
}

// EdgeStats is the admin view of the cache and the origins.
type EdgeStats struct {
	CacheObjects   int            `json:"cache_objects"`
	CacheBytes     int64          `json:"cache_bytes"`
	CacheEvictions uint64         `json:"cache_evictions"`
	FetchesNow     int            `json:"fetches_in_flight"`
	Origins        []OriginHealth `json:"origins"`
}

// Stats reports the cache and origin figures.
func (s *Server) Stats() EdgeStats {
	objs, b, ev := s.cache.Stats()
	return EdgeStats{CacheObjects: objs, CacheBytes: b, CacheEvictions: ev, FetchesNow: s.fetches.InFlight(), Origins: s.up.Health()}
}

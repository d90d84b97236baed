package proxy

import (
	"bytes"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"strings"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/pprofhandler"
)

// serveAdmin is the operators' listener: health, metrics, the status page and the admin API.
func (s *Server) serveAdmin(ctx *fasthttp.RequestCtx) {
	path := string(ctx.Path())
	switch path {
	case "/healthz":
		// Load balancers probe it without credentials.
		ctx.SetContentType("text/plain; charset=utf-8")
		ctx.SetBodyString("ok\n")
		return
	case "/auth/astra":
		// Astra cannot send the admin token; see serveAstraAuth for why this is safe here.
		s.serveAstraAuth(ctx)
		return
	}
	// Everything else (the status page with origin addresses and viewer counts, metrics, profiles, the API)
	// sits behind the admin token when one is set.
	if !s.adminAuthorized(ctx) {
		// Bearer for scrapers and scripts; Basic so that a browser asks for it on the status page.
		ctx.Response.Header.Add("WWW-Authenticate", `Bearer realm="hlsedge admin"`)
		ctx.Response.Header.Add("WWW-Authenticate", `Basic realm="hlsedge admin", charset="UTF-8"`)
		s.log.Info("admin request refused: no valid admin token", "path", path, "ip", ctx.RemoteIP().String())
		s.fail(ctx, fasthttp.StatusUnauthorized, "admin token required")
		return
	}
	switch path {
	case "/":
		s.status.serve(ctx)
		return
	case "/metrics":
		ctx.SetContentType("text/plain; version=0.0.4")
		s.m.WritePrometheus(ctx)
		s.writeAuthMetrics(ctx)
		return
	}
	if strings.HasPrefix(path, "/debug/pprof/") {
		pprofhandler.PprofHandler(ctx)
		return
	}
	if len(path) >= 5 && path[:5] == "/api/" {
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

// adminAuthorized checks the admin token in constant time, as "Bearer TOKEN" or as the password of HTTP Basic
// (any user name), which is what a browser can send. Without a configured token the listener is open, which is
// only safe because it defaults to loopback.
func (s *Server) adminAuthorized(ctx *fasthttp.RequestCtx) bool {
	want := s.cfg.Admin.Token
	if want == "" {
		return true
	}
	got := ctx.Request.Header.Peek(fasthttp.HeaderAuthorization)
	const bearer, basic = "Bearer ", "Basic "
	switch {
	case len(got) > len(bearer) && string(got[:len(bearer)]) == bearer:
		got = got[len(bearer):]
	case len(got) > len(basic) && string(got[:len(basic)]) == basic:
		userPass, err := base64.StdEncoding.DecodeString(string(got[len(basic):]))
		i := bytes.IndexByte(userPass, ':')
		if err != nil || i < 0 {
			return false
		}
		got = userPass[i+1:]
	default:
		return false
	}
	return subtle.ConstantTimeCompare(got, []byte(want)) == 1
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

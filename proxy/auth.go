package proxy

import (
	"github.com/valyala/fasthttp"

	"github.com/hlsedge/hlsedge/playlist"
)

// authorize is the one place authorization plugs into the request path, before any origin work. It answers the
// viewer itself and returns false when the request is refused.
func (s *Server) authorize(ctx *fasthttp.RequestCtx, rt *route) bool {
	return true
}

// isTokenParam tells which query parameters are the edge's: they are never sent to the origin and never part of
// a cache key.
func (s *Server) isTokenParam(name []byte) bool {
	return string(name) == "token"
}

// childQuery is the query every URI in this viewer's playlist gets, so that child playlists, keys and segments
// come back with the token.
func (s *Server) childQuery(ctx *fasthttp.RequestCtx, rt *route, sc *scratch) []byte {
	tok := ctx.QueryArgs().Peek("token")
	if len(tok) == 0 {
		return nil
	}
	return playlist.AppendQueryParam(sc.query[:0], "token", string(tok))
}

package proxy

import (
	"slices"

	"github.com/hlsedge/hlsedge/authz"
	"github.com/hlsedge/hlsedge/playlist"
)

// A reload builds the next generation beside the one in force (Prepare), then swaps it in with one atomic store
// (Apply). Requests already running finish on the generation they started with; open connections, coalesced
// fetches, shared streams and the cache carry over, since they live in the core. What fasthttp was started with
// (server.* timeouts, buffers, connection limits) stays until a restart: cmd/hlsedge reports those fields.

// Prepared is a generation built by Prepare and not yet in force.
type Prepared struct {
	s *Server
}

// Prepare builds the generation of a validated cfg with auth, the Authorizer built for it. Nothing changes for
// viewers until Apply; a Prepared that is not applied is simply dropped.
func (s *Server) Prepare(cfg *Config, auth *authz.Authorizer) (*Prepared, error) {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	g, err := s.generation(cfg, auth, s.cur.Load())
	if err != nil {
		return nil, err
	}
	return &Prepared{s: g}, nil
}

// Apply puts p in force: the next request is served by it. The cache is resized to the new 'cache.max_bytes'
// (evicting down to it when it shrank), and the connection pools of origins the new config dropped or changed
// let their idle connections go. Certificate files are re-read. LL-HLS takes the new 'upstream.max_hold' and
// origin hosts, and keeps the playlists and parts it learned. When the origins changed, cached playlists are
// dropped: their absolute URIs name the old origins, which the new rewriter would leave untouched, sending
// players past the edge. Segments stay cached.
func (s *Server) Apply(p *Prepared) {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	old := s.cur.Swap(p.s)
	// The LL state lives in the core with what it learned; it takes the new hold limit and origin hosts.
	s.ll.configure(p.s.cfg)
	if s.certs != nil {
		// A reload is also how an operator says "the certificates changed"; a half-written pair keeps the last
		// good one (logged and counted by certs).
		_ = s.certs.Reload()
	}
	s.cache.SetMaxBytes(int64(p.s.cfg.Cache.MaxBytes))
	if !slices.Equal(old.rwOpts.OriginHosts, p.s.rwOpts.OriginHosts) {
		s.cache.drop(func(o *object) bool { return o.kind == kindPlaylist })
	}
	for _, up := range old.up.list {
		if !slices.Contains(p.s.up.list, up) {
			up.client.CloseIdleConnections()
		}
	}
}

// current is the generation in force, for the admin listener's views.
func (c *core) current() *Server { return c.cur.Load() }

// sameRewriter reports whether a and b build the same rewriter, which then carries over with the templates it
// parsed.
func sameRewriter(a, b playlist.Options) bool {
	return slices.Equal(a.ParamNames, b.ParamNames) && slices.Equal(a.OriginHosts, b.OriginHosts) &&
		a.PublicBase == b.PublicBase && a.MaxSize == b.MaxSize
}

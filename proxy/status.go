package proxy

import (
	"strings"
	"time"

	"github.com/hlsedge/hlsedge/proxy/admin"
)

// The edge's side of the admin listener: Server implements admin.Edge with the figures below.
var _ admin.Edge = (*Server)(nil)

// Stats reports the cache and origin figures.
func (s *Server) Stats() admin.EdgeStats {
	objs, b, ev := s.cache.Stats()
	health := s.current().up.Health()
	origins := make([]admin.OriginHealth, len(health))
	for i, h := range health {
		origins[i] = admin.OriginHealth{Host: h.Host, Up: h.Up}
	}
	return admin.EdgeStats{
		CacheObjects: objs, CacheBytes: b, CacheEvictions: ev,
		CacheHits: s.m.cacheHits(), CacheMisses: s.m.cacheMiss.Get(),
		FetchesNow: s.fetches.InFlight(), Origins: origins,
	}
}

// CachedChannels reports what the cache holds per channel. It walks the cache under each shard's lock, which is
// fine for a page an operator reloads every few seconds but not for the request path.
func (s *Server) CachedChannels(now time.Time) []admin.ChannelCache {
	byName := map[string]*admin.ChannelCache{}
	g := s.current()
	s.cache.Each(func(o *object) {
		name := g.channelOfKey(o.key)
		if name == "" {
			return
		}
		ch := byName[name]
		if ch == nil {
			ch = &admin.ChannelCache{Name: name, PlaylistAge: -1}
			byName[name] = ch
		}
		ch.Objects++
		ch.Bytes += int64(len(o.body))
		if o.kind == kindPlaylist {
			if age := now.Sub(o.storedAt); ch.PlaylistAge < 0 || age < ch.PlaylistAge {
				ch.PlaylistAge = age
			}
		}
	})
	out := make([]admin.ChannelCache, 0, len(byName))
	for _, ch := range byName {
		out = append(out, *ch)
	}
	return out
}

// channelOfKey maps a cache key (origin path and query) back to the channel: the path segment after the first
// route origin prefix it starts with.
func (s *Server) channelOfKey(key string) string {
	for _, r := range s.cfg.Routes {
		if len(key) <= len(r.OriginPrefix) || key[:len(r.OriginPrefix)] != r.OriginPrefix {
			continue
		}
		rest := key[len(r.OriginPrefix):]
		if i := strings.IndexByte(rest, '/'); i > 0 {
			return rest[:i]
		}
	}
	return ""
}

// Channel names the channel of a viewer's path through the edge's routes, as a request to the edge would get
// it, or fallback when no route serves the path and fallback is a valid channel name.
func (s *Server) Channel(path, fallback []byte) []byte {
	if rt, err := matchRoute(s.current().cfg.Routes, path, nil); err == nil {
		return rt.channel
	}
	if len(fallback) > 0 && validChannel(fallback) {
		return fallback
	}
	return nil
}

package proxy

import (
	"bytes"
	"html/template"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// Viewer counting is an estimate: a viewer is a (client address, session) pair that fetched one of the channel's
// playlists within viewerIdle. Players poll live playlists every target duration, so an idle gap of a few
// durations means the viewer left; Flussonic closes HLS sessions on the same kind of idle timeout.
const (
	viewerIdle        = 30 * time.Second
	maxStatusChannels = 10000
	maxStatusViewers  = 200000
	// statusRefresh is how often the page reloads itself; operators keep it open on a wall screen.
	statusRefresh = 5
	// hitRateWindow is the shortest interval the "recent" hit rate is measured over.
	hitRateWindow = 2 * time.Second
)

// viewerKey tells viewers apart: by session when the token gives one (so a household behind one NAT address with
// two tokens counts twice), by address otherwise.
type viewerKey struct {
	ip      netip.Addr
	session uint64
}

// viewerTable remembers when each viewer last fetched a playlist, per channel. It is bounded in channels and in
// viewers: past the bounds new entries are dropped (the page then under-counts) rather than growing memory.
type viewerTable struct {
	idle        time.Duration
	maxChannels int
	maxViewers  int

	mu       sync.Mutex
	channels map[string]map[viewerKey]int64 // last seen, unix nanoseconds
	viewers  int
}

func newViewerTable(idle time.Duration, maxChannels, maxViewers int) *viewerTable {
	return &viewerTable{idle: idle, maxChannels: maxChannels, maxViewers: maxViewers, channels: make(map[string]map[viewerKey]int64)}
}

// observe records a playlist fetch. A returning viewer of a known channel allocates nothing: the map lookups by
// string(channel) do not copy.
func (t *viewerTable) observe(channel []byte, ip netip.Addr, session uint64, now time.Time) {
	k := viewerKey{ip: ip, session: session}
	ts := now.UnixNano()
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.channels[string(channel)]
	if m == nil {
		if len(t.channels) >= t.maxChannels && t.pruneLocked(ts) && len(t.channels) >= t.maxChannels {
			return
		}
		m = make(map[viewerKey]int64)
		t.channels[string(channel)] = m
	}
	if _, ok := m[k]; !ok {
		if t.viewers >= t.maxViewers {
			t.pruneLocked(ts)
			if t.viewers >= t.maxViewers {
				return
			}
		}
		t.viewers++
	}
	m[k] = ts
}

// pruneLocked drops viewers idle longer than t.idle and channels left with none. It always returns true so that
// callers can chain it into a condition.
func (t *viewerTable) pruneLocked(now int64) bool {
	cutoff := now - int64(t.idle)
	for ch, m := range t.channels {
		for k, seen := range m {
			if seen < cutoff {
				delete(m, k)
				t.viewers--
			}
		}
		if len(m) == 0 {
			delete(t.channels, ch)
		}
	}
	return true
}

// counts prunes and returns the viewers of every channel that has any.
func (t *viewerTable) counts(now time.Time) map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pruneLocked(now.UnixNano())
	out := make(map[string]int, len(t.channels))
	for ch, m := range t.channels {
		out[ch] = len(m)
	}
	return out
}

// StatusSnapshot is what the status page shows; the admin API may serve it as JSON too.
type StatusSnapshot struct {
	Time     time.Time       `json:"time"`
	Channels []StatusChannel `json:"channels"`
	Viewers  int             `json:"viewers"`
	// HitRate is the share of requests served from the cache since start, 0..1; -1 before the first request.
	HitRate float64 `json:"hit_rate"`
	// RecentHitRate is the same over the interval since the previous snapshot (at least 2 s); -1 when idle.
	RecentHitRate float64 `json:"recent_hit_rate"`
	Hits          uint64  `json:"hits"`
	Misses        uint64  `json:"misses"`
	Edge          EdgeStats
}

// StatusChannel is one channel: watched now, or with content in the cache.
type StatusChannel struct {
	Name          string `json:"name"`
	Viewers       int    `json:"viewers"`
	CachedObjects int    `json:"cached_objects"`
	CachedBytes   int64  `json:"cached_bytes"`
	// PlaylistAge is how long ago the freshest cached playlist came from the origin; -1 when none is cached.
	PlaylistAge time.Duration `json:"playlist_age_ns"`
}

// statusPage renders the operators' page at / on the admin listener.
type statusPage struct {
	srv     *Server
	viewers *viewerTable
	tmpl    *template.Template

	mu                   sync.Mutex
	prevAt               time.Time
	prevHits, prevMisses uint64
	recent               float64
}

func newStatusPage(s *Server) *statusPage {
	return &statusPage{
		srv:     s,
		viewers: newViewerTable(viewerIdle, maxStatusChannels, maxStatusViewers),
		tmpl:    template.Must(template.New("status").Funcs(statusFuncs).Parse(statusHTML)),
		recent:  -1,
	}
}

// observe is called once a request has been answered; it counts the viewer of a served playlist. The decision's
// session is used when authorization gave one, and the address the authorizer saw, so both agree with the logs.
func (p *statusPage) observe(ctx *fasthttp.RequestCtx, rt *route, sc *scratch) {
	if rt.kind != kindPlaylist || ctx.Response.StatusCode() != fasthttp.StatusOK {
		return
	}
	ip := sc.areq.ClientIP
	if !ip.IsValid() {
		ip = p.srv.clientIP(ctx)
	}
	// The request's own clock reading: another read per playlist costs as much as the lookup it stamps.
	p.viewers.observe(rt.channel, ip, sc.decision.SessionID, sc.now)
}

// snapshot gathers the figures; it walks the cache under each shard's lock, which is fine for a page an operator
// reloads every few seconds but not for the request path.
func (p *statusPage) snapshot() StatusSnapshot {
	s := p.srv
	now := s.now()
	snap := StatusSnapshot{Time: now, Edge: s.Stats(), Hits: s.m.cacheHit.Get(), Misses: s.m.cacheMiss.Get(), HitRate: -1}
	if total := snap.Hits + snap.Misses; total > 0 {
		snap.HitRate = float64(snap.Hits) / float64(total)
	}
	p.mu.Lock()
	if p.prevAt.IsZero() || now.Sub(p.prevAt) >= hitRateWindow {
		dh, dm := snap.Hits-p.prevHits, snap.Misses-p.prevMisses
		p.recent = -1
		if !p.prevAt.IsZero() && dh+dm > 0 {
			p.recent = float64(dh) / float64(dh+dm)
		}
		p.prevAt, p.prevHits, p.prevMisses = now, snap.Hits, snap.Misses
	}
	snap.RecentHitRate = p.recent
	p.mu.Unlock()

	byName := make(map[string]*StatusChannel)
	get := func(name string) *StatusChannel {
		c := byName[name]
		if c == nil {
			c = &StatusChannel{Name: name, PlaylistAge: -1}
			byName[name] = c
		}
		return c
	}
	for name, n := range p.viewers.counts(now) {
		get(name).Viewers = n
		snap.Viewers += n
	}
	c := s.cache
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		for el := sh.lru.Front(); el != nil; el = el.Next() {
			o := el.Value.(*object)
			name := p.channelOfKey(o.key)
			if name == "" {
				continue
			}
			ch := get(name)
			ch.CachedObjects++
			ch.CachedBytes += int64(len(o.body))
			if o.kind == kindPlaylist {
				if age := now.Sub(o.storedAt); ch.PlaylistAge < 0 || age < ch.PlaylistAge {
					ch.PlaylistAge = age
				}
			}
		}
		sh.mu.Unlock()
	}
	snap.Channels = make([]StatusChannel, 0, len(byName))
	for _, ch := range byName {
		snap.Channels = append(snap.Channels, *ch)
	}
	// Most watched first, then by name, so the table does not jump around between refreshes.
	sort.Slice(snap.Channels, func(i, j int) bool {
		a, b := &snap.Channels[i], &snap.Channels[j]
		if a.Viewers != b.Viewers {
			return a.Viewers > b.Viewers
		}
		return a.Name < b.Name
	})
	return snap
}

// channelOfKey maps a cache key (origin path and query) back to the channel: the path segment after the first
// route origin prefix it starts with.
func (p *statusPage) channelOfKey(key string) string {
	for _, r := range p.srv.cfg.Routes {
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

// serve writes the HTML page.
func (p *statusPage) serve(ctx *fasthttp.RequestCtx) {
	if !ctx.IsGet() && !ctx.IsHead() {
		ctx.Response.Header.Set(fasthttp.HeaderAllow, "GET, HEAD")
		p.srv.fail(ctx, fasthttp.StatusMethodNotAllowed, "method not allowed")
		return
	}
	var buf bytes.Buffer
	if err := p.tmpl.Execute(&buf, struct {
		StatusSnapshot
		Refresh int
	}{p.snapshot(), statusRefresh}); err != nil {
		p.srv.log.Warn("rendering status page", "err", err)
		p.srv.fail(ctx, fasthttp.StatusInternalServerError, "rendering status page")
		return
	}
	h := &ctx.Response.Header
	h.SetContentType("text/html; charset=utf-8")
	h.Set(fasthttp.HeaderCacheControl, "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	ctx.SetBody(buf.Bytes())
}

var statusFuncs = template.FuncMap{
	"pct": func(f float64) string {
		if f < 0 {
			return "–"
		}
		return formatFloat(f*100, 1) + "%"
	},
	"bytes": func(n int64) string {
		switch {
		case n >= 1<<30:
			return formatFloat(float64(n)/(1<<30), 1) + " GiB"
		case n >= 1<<20:
			return formatFloat(float64(n)/(1<<20), 1) + " MiB"
		case n >= 1<<10:
			return formatFloat(float64(n)/(1<<10), 1) + " KiB"
		}
		return formatFloat(float64(n), 0) + " B"
	},
	"age": func(d time.Duration) string {
		if d < 0 {
			return "–"
		}
		return d.Round(100*time.Millisecond).String() + " ago"
	},
}

func formatFloat(f float64, prec int) string { return strconv.FormatFloat(f, 'f', prec, 64) }

const statusHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="{{.Refresh}}">
<title>hlsedge status</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: .5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: .25em .7em; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
.down { color: #b00; font-weight: bold; } .up { color: #070; }
</style>
</head>
<body>
<h1>hlsedge status</h1>
<p>{{.Time.Format "2006-01-02 15:04:05 MST"}} · refreshes every {{.Refresh}} s ·
viewers now: <b id="viewers">{{.Viewers}}</b> ·
cache hit rate: <b id="hit-rate">{{pct .HitRate}}</b> since start, <b id="recent-hit-rate">{{pct .RecentHitRate}}</b> recently
({{.Hits}} hits, {{.Misses}} misses) · cache {{.Edge.CacheObjects}} objects, {{bytes .Edge.CacheBytes}},
{{.Edge.CacheEvictions}} evictions · origin fetches in flight: {{.Edge.FetchesNow}}</p>
<h2>Channels</h2>
<table id="channels">
<tr><th>Channel</th><th>Viewers</th><th>Cached objects</th><th>Cached bytes</th><th>Playlist from origin</th></tr>
{{range .Channels}}<tr><td>{{.Name}}</td><td>{{.Viewers}}</td><td>{{.CachedObjects}}</td><td>{{bytes .CachedBytes}}</td><td>{{age .PlaylistAge}}</td></tr>
{{else}}<tr><td colspan="5">no channel watched or cached</td></tr>
{{end}}</table>
<h2>Origins</h2>
<table id="origins">
<tr><th>Origin</th><th>Health</th></tr>
{{range .Edge.Origins}}<tr><td>{{.Host}}</td><td>{{if .Up}}<span class="up">up</span>{{else}}<span class="down">down</span>{{end}}</td></tr>
{{end}}</table>
<p>Viewers are distinct sessions (or addresses) that fetched a playlist in the last 30 s. JSON: <code>/api/stats</code>, metrics: <code>/metrics</code>.</p>
</body>
</html>
`

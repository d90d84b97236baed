package admin

import (
	"bytes"
	"html/template"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	// statusRefresh is how often the page reloads itself, in seconds; operators keep it open on a wall screen.
	statusRefresh = 5
	// hitRateWindow is the shortest interval the "recent" hit rate is measured over.
	hitRateWindow = 2 * time.Second
)

// statusSnapshot is what the status page shows.
type statusSnapshot struct {
	Time     time.Time
	Channels []statusChannel
	// Viewers are the authorizer's open sessions active within 'auth.sessions.idle_timeout', the same count
	// /api/stats and /api/sessions give.
	Viewers int
	// HitRate is the share of requests served from the cache since start, 0..1; -1 before the first request.
	HitRate float64
	// RecentHitRate is the same over the interval since the previous snapshot (at least 2 s); -1 when idle.
	RecentHitRate float64
	Edge          EdgeStats
	// Config is when the config in force was loaded and how the last reload went; nil without a Reloader.
	Config *ReloadResult
}

// statusChannel is one channel: watched now, or with content in the cache.
type statusChannel struct {
	Name          string
	Viewers       int
	CachedObjects int
	CachedBytes   int64
	// PlaylistAge is how long ago the freshest cached playlist came from the origin; -1 when none is cached.
	PlaylistAge time.Duration
}

// statusPage renders the operators' page at /.
type statusPage struct {
	srv  *Server
	tmpl *template.Template

	// The recent hit rate is measured between snapshots, so the page keeps the previous counts.
	mu                   sync.Mutex
	prevAt               time.Time
	prevHits, prevMisses uint64
	recent               float64
}

func newStatusPage(s *Server) *statusPage {
	return &statusPage{
		srv:    s,
		tmpl:   template.Must(template.New("status").Funcs(statusFuncs()).Parse(statusHTML)),
		recent: -1,
	}
}

// snapshot gathers the figures: viewers from the authorizer's sessions, everything else from the edge.
func (p *statusPage) snapshot() statusSnapshot {
	s := p.srv
	now := s.now()
	snap := statusSnapshot{Time: now, Edge: s.edge.Stats(), HitRate: -1}
	if s.reload != nil {
		r := s.reload.LastReload()
		snap.Config = &r
	}
	hits, misses := snap.Edge.CacheHits, snap.Edge.CacheMisses
	if total := hits + misses; total > 0 {
		snap.HitRate = float64(hits) / float64(total)
	}
	p.mu.Lock()
	if p.prevAt.IsZero() || now.Sub(p.prevAt) >= hitRateWindow {
		dh, dm := hits-p.prevHits, misses-p.prevMisses
		p.recent = -1
		if !p.prevAt.IsZero() && dh+dm > 0 {
			p.recent = float64(dh) / float64(dh+dm)
		}
		p.prevAt, p.prevHits, p.prevMisses = now, hits, misses
	}
	snap.RecentHitRate = p.recent
	p.mu.Unlock()

	byName := make(map[string]*statusChannel)
	get := func(name string) *statusChannel {
		c := byName[name]
		if c == nil {
			c = &statusChannel{Name: name, PlaylistAge: -1}
			byName[name] = c
		}
		return c
	}
	for name, n := range s.authorizer().Viewers(now) {
		get(name).Viewers = n
		snap.Viewers += n
	}
	for _, cc := range s.edge.CachedChannels(now) {
		c := get(cc.Name)
		c.CachedObjects, c.CachedBytes, c.PlaylistAge = cc.Objects, cc.Bytes, cc.PlaylistAge
	}
	snap.Channels = make([]statusChannel, 0, len(byName))
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

// serve writes the HTML page.
func (p *statusPage) serve(w http.ResponseWriter, r *http.Request) {
	var buf bytes.Buffer
	if err := p.tmpl.Execute(&buf, struct {
		statusSnapshot
		Refresh int
	}{p.snapshot(), statusRefresh}); err != nil {
		p.srv.fail(w, r, http.StatusInternalServerError, "rendering status page", "err", err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	w.Write(buf.Bytes())
}

func statusFuncs() template.FuncMap {
	return template.FuncMap{
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
		"join": func(s []string) string { return strings.Join(s, ", ") },
		"age": func(d time.Duration) string {
			if d < 0 {
				return "–"
			}
			return d.Round(100*time.Millisecond).String() + " ago"
		},
	}
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
({{.Edge.CacheHits}} hits, {{.Edge.CacheMisses}} misses) · cache {{.Edge.CacheObjects}} objects, {{bytes .Edge.CacheBytes}},
{{.Edge.CacheEvictions}} evictions · origin fetches in flight: {{.Edge.FetchesNow}}</p>
{{with .Config}}<p id="config">config loaded {{.LoadedAt.Format "2006-01-02 15:04:05 MST"}}
{{- if .Result}} · last reload {{.At.Format "2006-01-02 15:04:05 MST"}}: {{if eq .Result "ok"}}<span class="up">ok</span>
{{- else}}<span class="down">failed</span>, the previous config stays in force: {{.Error}}{{end}}{{end}}
{{- with .RestartRequired}} · changed but applied only on restart: {{join .}}{{end}}</p>
{{end}}<h2>Channels</h2>
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
<p>Viewers are the authorizer's open sessions (one per user or token, channel, address and player) active within
<code>auth.sessions.idle_timeout</code>; public channels open none. JSON: <code>/api/stats</code>, sessions:
<code>/api/sessions</code>, metrics: <code>/metrics</code>.</p>
</body>
</html>
`

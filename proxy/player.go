package proxy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/hlsedge/hlsedge/proxy/web"
)

// PlayerConfig is the embeddable web player: /{stream}/embed.html?token=... (Flussonic's layout, and
// /play/{channel}/embed.html for Astra's), plus its static files under /_hlsedge/. The page plays the stream's
// index.m3u8 with the same token, with the browser's own HLS where it has one and the embedded hls.js elsewhere.
type PlayerConfig struct {
	// Disabled turns the player off: embed.html and /_hlsedge/ paths then go to the routes like any other file.
	Disabled bool `yaml:"disabled"`
	// FrameAncestors lists the sites allowed to show the player in an iframe, sent as the CSP frame-ancestors
	// directive: page origins ("https://tv.example.com", "https://*.example.com", "http://10.0.0.5:8000"),
	// "'self'" for the edge's own pages, "*" for any site, or "'none'" to forbid framing. Default: the same list as
	// 'cors.allow_origins' (itself "*" by default), so locking the playlists to the operator's site locks the
	// player to it too.
	FrameAncestors []string `yaml:"frame_ancestors"`
}

// SetDefaults makes the frame allow-list follow the CORS allow-list unless it is set on its own.
func (c *PlayerConfig) SetDefaults(corsOrigins []string) {
	if len(c.FrameAncestors) == 0 {
		c.FrameAncestors = append([]string(nil), corsOrigins...)
	}
	if len(c.FrameAncestors) == 0 {
		c.FrameAncestors = []string{"*"}
	}
}

// Validate checks every frame ancestor, because each one is written into a response header as it is.
func (c *PlayerConfig) Validate() error {
	if c.Disabled {
		return nil
	}
	if len(c.FrameAncestors) == 0 {
		return errors.New("'player.frame_ancestors' must list at least one origin, \"*\" or \"'none'\"")
	}
	for i, a := range c.FrameAncestors {
		if (a == "*" || a == "'none'") && len(c.FrameAncestors) > 1 {
			return fmt.Errorf("'player.frame_ancestors[%d]' %q must be the only entry", i, a)
		}
		if err := validFrameAncestor(a); err != nil {
			return fmt.Errorf("'player.frame_ancestors[%d]' %w", i, err)
		}
	}
	return nil
}

// validFrameAncestor accepts what CSP frame-ancestors accepts and we need: a keyword, "*", or
// scheme://host[:port] with an optional leading "*." wildcard label. Nothing that could end the directive
// (spaces, ';', ',', quotes) gets through.
func validFrameAncestor(a string) error {
	switch a {
	case "*", "'self'", "'none'":
		return nil
	}
	var rest string
	switch {
	case strings.HasPrefix(a, "https://"):
		rest = a[len("https://"):]
	case strings.HasPrefix(a, "http://"):
		rest = a[len("http://"):]
	default:
		return fmt.Errorf("%q must be an http(s) origin such as https://tv.example.com, \"'self'\", \"*\" or \"'none'\"", a)
	}
	host, port, hasPort := strings.Cut(rest, ":")
	host = strings.TrimPrefix(host, "*.")
	if host == "" || len(rest) > 253 {
		return fmt.Errorf("%q has no host", a)
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return fmt.Errorf("%q must be scheme://host[:port] with no path, query or wildcard inside the host", a)
		}
	}
	if hasPort {
		if port == "" || len(port) > 5 {
			return fmt.Errorf("%q has a bad port", a)
		}
		for i := 0; i < len(port); i++ {
			if port[i] < '0' || port[i] > '9' {
				return fmt.Errorf("%q has a bad port", a)
			}
		}
	}
	return nil
}

// playerAssetPrefix is where the player's static files are served. It shadows a stream named "_hlsedge" under
// the Flussonic route, which is the price of serving the page and the streams from one origin without a CDN.
const playerAssetPrefix = "/_hlsedge/"

const embedSuffix = "/embed.html"

// player serves the embed page and its files. Everything is rendered once at start-up, so a request only picks
// a prebuilt body and its headers.
type player struct {
	routes       []RouteConfig
	page         playerAsset
	csp          string
	frameOptions string
	assets       map[string]*playerAsset // by request path, e.g. /_hlsedge/player.js
	hasHLSJS     bool
}

type playerAsset struct {
	body        []byte
	contentType string
	etag        string
}

// newPlayer renders the page from files (web.FS() in the binary). A build without hls.js still serves browsers
// with native HLS; HasHLSJS tells the caller so it can warn.
func newPlayer(cfg *PlayerConfig, routes []RouteConfig, files fs.FS) (*player, error) {
	p := &player{
		routes: routes,
		assets: make(map[string]*playerAsset),
		csp: "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; media-src 'self' blob:; " +
			"worker-src 'self' blob:; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors " +
			strings.Join(cfg.FrameAncestors, " "),
	}
	// X-Frame-Options is for old Smart TV browsers without CSP; it can only say "nowhere" or "same origin".
	switch {
	case len(cfg.FrameAncestors) == 1 && cfg.FrameAncestors[0] == "'none'":
		p.frameOptions = "DENY"
	case len(cfg.FrameAncestors) == 1 && cfg.FrameAncestors[0] == "'self'":
		p.frameOptions = "SAMEORIGIN"
	}
	urls := map[string]string{"{{hlsjs}}": ""}
	for _, name := range []string{"player.js", "player.css", web.HLSJS} {
		body, err := fs.ReadFile(files, name)
		if errors.Is(err, fs.ErrNotExist) && name == web.HLSJS {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading player file %s: %w", name, err)
		}
		a := newPlayerAsset(name, body)
		p.assets[playerAssetPrefix+name] = a
		// The content hash in the URL lets browsers keep the files for a year and still see a new build at once.
		u := playerAssetPrefix + name + "?v=" + a.etag[1:13]
		switch name {
		case "player.js":
			urls["{{js}}"] = u
		case "player.css":
			urls["{{css}}"] = u
		case web.HLSJS:
			urls["{{hlsjs}}"] = u
			p.hasHLSJS = true
		}
	}
	page, err := fs.ReadFile(files, "embed.html")
	if err != nil {
		return nil, fmt.Errorf("reading player file embed.html: %w", err)
	}
	// The page is the same for every stream and token: the script reads both from its own URL, so no viewer
	// input is ever written into HTML.
	for k, v := range urls {
		page = bytes.ReplaceAll(page, []byte(k), []byte(v))
	}
	if i := bytes.Index(page, []byte("{{")); i >= 0 {
		return nil, fmt.Errorf("player page has an unknown placeholder at byte %d", i)
	}
	p.page = *newPlayerAsset("embed.html", page)
	return p, nil
}

func newPlayerAsset(name string, body []byte) *playerAsset {
	sum := sha256.Sum256(body)
	ct := "application/octet-stream"
	switch path.Ext(name) {
	case ".js":
		ct = "text/javascript; charset=utf-8"
	case ".css":
		ct = "text/css; charset=utf-8"
	case ".html":
		ct = "text/html; charset=utf-8"
	}
	return &playerAsset{body: body, contentType: ct, etag: `"` + hex.EncodeToString(sum[:16]) + `"`}
}

// HasHLSJS reports whether hls.js was embedded by the build (make copies it from node_modules).
func (p *player) HasHLSJS() bool { return p.hasHLSJS }

// serve answers the player's paths and reports whether the request was one; every other request goes on to
// routing untouched. It costs two byte comparisons on the hot path.
func (p *player) serve(ctx *fasthttp.RequestCtx) bool {
	raw := ctx.Request.URI().PathOriginal()
	switch {
	case bytes.HasPrefix(raw, []byte(playerAssetPrefix)):
		a := p.assets[string(raw)]
		if a == nil {
			fail(ctx, fasthttp.StatusNotFound, "not found")
			return true
		}
		if !playerMethod(ctx) {
			return true
		}
		h := &ctx.Response.Header
		h.Set(fasthttp.HeaderCacheControl, "public, max-age=31536000, immutable")
		// Operators may load hls.js from the edge into their own pages too.
		h.Set(fasthttp.HeaderAccessControlAllowOrigin, "*")
		h.Set("Cross-Origin-Resource-Policy", "cross-origin")
		p.write(ctx, a)
		return true
	case bytes.HasSuffix(raw, []byte(embedSuffix)):
		if !p.embedPath(raw) {
			// Not a stream's page: routing answers it (400 for a bad name, 404 for no route).
			return false
		}
		if !playerMethod(ctx) {
			return true
		}
		h := &ctx.Response.Header
		// The page has no per-viewer content, but its URL carries a token: keep it out of shared caches.
		h.Set(fasthttp.HeaderCacheControl, "private, no-cache")
		h.Set("Content-Security-Policy", p.csp)
		if p.frameOptions != "" {
			h.Set("X-Frame-Options", p.frameOptions)
		}
		// The token is in the page's URL; no request the page makes may carry it elsewhere in a Referer.
		h.Set("Referrer-Policy", "no-referrer")
		p.write(ctx, &p.page)
		return true
	}
	return false
}

// embedPath accepts exactly {prefix}{stream}/embed.html for a configured route and a valid stream name, the same
// rules the stream's playlists are routed by.
func (p *player) embedPath(raw []byte) bool {
	var buf [128]byte
	rt, err := matchRoute(p.routes, raw, buf[:0])
	if err != nil {
		return false
	}
	dir := raw[:len(raw)-len(embedSuffix)]
	return len(dir) > len(rt.channel) && bytes.HasSuffix(dir, rt.channel) && dir[len(dir)-len(rt.channel)-1] == '/'
}

func (p *player) write(ctx *fasthttp.RequestCtx, a *playerAsset) {
	h := &ctx.Response.Header
	h.Set(fasthttp.HeaderETag, a.etag)
	h.Set("X-Content-Type-Options", "nosniff")
	h.SetContentType(a.contentType)
	if inm := ctx.Request.Header.Peek(fasthttp.HeaderIfNoneMatch); len(inm) > 0 && bytes.Contains(inm, []byte(a.etag)) {
		ctx.SetStatusCode(fasthttp.StatusNotModified)
		return
	}
	// The bodies are immutable for the server's life, so the response may point at them.
	ctx.Response.SetBodyRaw(a.body)
}

func playerMethod(ctx *fasthttp.RequestCtx) bool {
	if ctx.IsGet() || ctx.IsHead() {
		return true
	}
	ctx.Response.Header.Set(fasthttp.HeaderAllow, "GET, HEAD")
	fail(ctx, fasthttp.StatusMethodNotAllowed, "method not allowed")
	return false
}

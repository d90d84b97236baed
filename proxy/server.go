// Package proxy is the fasthttp HLS edge that viewers reach: routing, authorization, the edge cache with
// coalescing, origin failover, playlist rewriting, the player page and the signaling mount.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/hlsedge/hlsedge/authz"
	"github.com/hlsedge/hlsedge/playlist"
	"github.com/hlsedge/hlsedge/proxy/certs"
	"github.com/hlsedge/hlsedge/proxy/web"
	"github.com/hlsedge/hlsedge/signaling"
)

// Server is the viewer listener of one edge node. The operators' listener is package admin; cmd/hlsedge wires
// the two, the authorizer and signaling together.
//
// A Server is one generation of the config: what a reload replaces (routes, origins, the authorizer, the
// rewriter, the player, TTLs and CORS, all read from cfg) sits in the Server itself, and what outlives reloads
// (the listener, the cache, coalescing, metrics, signaling) in the core every generation shares. Each request
// picks the generation in force with one atomic load and keeps it to the end (see Prepare and Apply).
type Server struct {
	*core

	cfg      *Config
	up       *Upstreams
	rewriter *playlist.Rewriter
	rwOpts   playlist.Options
	auth     *authz.Authorizer
	// tokenParams are the query parameters that carry tokens: stripped before the origin and out of cache keys.
	tokenParams []string
	// segmentCC is the segments' Cache-Control, formatted once.
	segmentCC string
	// player serves /{stream}/embed.html and /_hlsedge/ before routing; nil when 'player.disabled'.
	player *player
	// tier checks edges' signed requests when this node is a shield (tier.go); nil otherwise.
	tier *tierGate
}

// core is what every generation of a Server shares.
type core struct {
	// lifeMu guards stopping and listener: fasthttp's Shutdown cannot stop a Serve that has not reached its
	// Accept loop yet, so Shutdown closes the listener itself and a late Serve returns at once.
	lifeMu   sync.Mutex
	stopping bool
	listener net.Listener

	log *slog.Logger
	// reqLog is log for what requests run into, one line per request: limited per message (logs.go).
	reqLog  *slog.Logger
	cache   *Cache
	fetches *fetchGroup
	m       *edgeMetrics
	// sig is the conference signaling mounted on this listener, nil when not configured.
	sig *signaling.Server
	// ll is what the edge learns from LL-HLS playlists (llhls.go); it outlives reloads, with the hold and the
	// origin hosts of the config it was built with.
	ll  *llState
	now func() time.Time
	// clock is the test clock, nil in production, where the request's arrival time from fasthttp is used.
	clock func() time.Time

	public *fasthttp.Server
	// certs serves the public listener's certificates when 'tls' is configured, nil for plain http. It lives in
	// the core: certificate files are watched and renewed in place, and a reload re-reads them (Reload).
	certs *certs.Manager

	// bufs holds the per-request scratch buffers (cache key, rewritten playlist) so the fast path reuses them.
	bufs sync.Pool

	// cur is the generation in force.
	cur atomic.Pointer[Server]
	// reloadMu makes Prepare and Apply of concurrent reloads take turns.
	reloadMu sync.Mutex
}

// Options carries what the caller builds and owns: the edge uses them and never closes them.
type Options struct {
	Log *slog.Logger
	// Now is the clock; tests move it.
	Now func() time.Time
	// Auth decides every viewer request. Required: build it from cfg.Auth (authz.New), also when 'auth.disabled'.
	Auth *authz.Authorizer
	// Signaling is mounted on the viewer listener when set; close it before Shutdown, so that its sockets get
	// 1001 rather than wait for the listener.
	Signaling *signaling.Server
	// Metrics is the set the edge registers its metrics in; share it with signaling so that one /metrics
	// carries both. Default: a set of the edge's own.
	Metrics *metrics.Set
}

// New builds the viewer listener from a validated config. It starts nothing (no goroutine, no listener), so a
// failed New leaves nothing to release; Serve starts it.
func New(cfg *Config, opts Options) (*Server, error) {
	if opts.Auth == nil {
		return nil, errors.New("proxy: Options.Auth is required")
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.NewSet()
	}
	m := newEdgeMetrics(opts.Metrics)
	c := &core{
		log:     opts.Log,
		reqLog:  newLimitedLogger(opts.Log),
		now:     time.Now,
		cache:   NewCache(int64(cfg.Cache.MaxBytes), opts.Metrics),
		clock:   opts.Now,
		fetches: newFetchGroup(opts.Metrics),
		m:       m,
		sig:     opts.Signaling,
		ll:      newLLState(cfg, opts.Metrics),
	}
	c.bufs.New = func() any { return &scratch{stripe: m.stripe()} }
	if opts.Now != nil {
		c.now = opts.Now
	}
	if cfg.TLS != nil {
		// First, so that nothing built below needs closing when a certificate cannot be loaded.
		cm, err := certs.New(*cfg.TLS, certs.Options{Log: opts.Log, Metrics: opts.Metrics, Now: opts.Now})
		if err != nil {
			return nil, fmt.Errorf("loading certificates: %w", err)
		}
		c.certs = cm
	}
	s, err := c.generation(cfg, opts.Auth, nil)
	if err != nil {
		return nil, err
	}
	c.cur.Store(s)
	// No ReadTimeout, WriteTimeout or IdleTimeout: the public connections apply server.read_timeout, idle_timeout
	// and write_timeout themselves, at a fraction of fasthttp's cost per request (see timedListener).
	c.public = &fasthttp.Server{
		Handler:                      c.serve,
		ErrorHandler:                 s.serveMalformed,
		Concurrency:                  cfg.Server.MaxConns,
		MaxRequestBodySize:           64 << 10,
		ReadBufferSize:               cfg.Server.ReadBufferSize,
		WriteBufferSize:              int(cfg.Server.WriteBufferSize),
		DisablePreParseMultipartForm: true,
		NoDefaultServerHeader:        true,
		NoDefaultContentType:         true,
		SecureErrorLogMessage:        true,
		Logger:                       fasthttpLogger{c.log},
	}
	if c.sig != nil {
		c.sig.DetachSockets(c.public)
	}
	return s, nil
}

// serve is fasthttp's handler: the one atomic load that picks the generation a request is served by.
func (c *core) serve(ctx *fasthttp.RequestCtx) { c.cur.Load().serveHTTP(ctx) }

// generation builds what one config contributes to the request path; prev is the generation in force, whose
// upstreams and rewriter are kept where the config did not change them.
func (c *core) generation(cfg *Config, auth *authz.Authorizer, prev *Server) (*Server, error) {
	if auth == nil {
		return nil, errors.New("proxy: Options.Auth is required")
	}
	s := &Server{core: c, cfg: cfg, auth: auth, tier: newTierGate(cfg, c.m.set)}
	s.segmentCC = "public, max-age=" + strconv.Itoa(int(cfg.Cache.SegmentTTL/time.Second))
	var prevUp *Upstreams
	if prev != nil {
		prevUp = prev.up
	}
	s.up = newUpstreams(cfg, c.m, c.now, prevUp)
	logAuthStart(c.log, s.auth)
	s.tokenParams = s.auth.TokenParams()
	if len(s.tokenParams) == 0 {
		// Even with authorization off, a viewer's token never reaches the origin or splits the cache.
		s.tokenParams = []string{"token"}
	}
	// The rewriter replaces any of these already in a child URI, so a viewer's token is never doubled.
	params := append([]string(nil), s.tokenParams...)
	if cp := s.auth.ChildParam(); cp != "" && !slices.Contains(params, cp) {
		params = append(params, cp)
	}
	hosts := make([]string, 0, len(cfg.Origins))
	for _, o := range cfg.Origins {
		hosts = append(hosts, o.host)
	}
	ro := playlist.Options{ParamNames: params, OriginHosts: hosts, MaxSize: int(cfg.Cache.MaxPlaylistSize)}
	s.rwOpts = ro
	if prev != nil && sameRewriter(prev.rwOpts, ro) {
		// Cached playlists keep their parsed templates: a template belongs to the rewriter that parsed it.
		s.rewriter = prev.rewriter
	} else {
		rw, err := playlist.NewRewriter(ro)
		if err != nil {
			return nil, fmt.Errorf("building playlist rewriter: %w", err)
		}
		s.rewriter = rw
	}
	if !cfg.Player.Disabled {
		p, err := newPlayer(&cfg.Player, cfg.Routes, web.FS())
		if err != nil {
			return nil, fmt.Errorf("building player: %w", err)
		}
		if !p.HasHLSJS() && prev == nil {
			c.log.Warn("player: hls.js is not embedded (build with make); embed.html plays only where the browser has native HLS")
		}
		s.player = p
	}
	return s, nil
}

// Serve answers viewers on ln until Shutdown; a Serve that starts after Shutdown closes ln and returns at once.
func (s *Server) Serve(ln net.Listener) error {
	s.lifeMu.Lock()
	if s.stopping {
		s.lifeMu.Unlock()
		_ = ln.Close()
		return nil
	}
	if s.certs != nil {
		ln = s.certs.Listener(ln)
	}
	s.listener = ln
	s.lifeMu.Unlock()
	// The cache's expiry sweeps run while the listener serves; Shutdown stops them.
	s.cache.startJanitor(s.now)
	perIP := newPerIPLimit(s.cfg.Server.MaxConnsPerIP, func(peer netip.Addr) {
		s.m.connsRefused.Inc()
		s.reqLog.Info("connection refused: over server.max_conns_per_ip", "ip", peer.String(),
			"max", s.cfg.Server.MaxConnsPerIP)
	})
	return s.public.Serve(timedListener(ln, s.cfg.Server.ReadTimeout, s.cfg.Server.IdleTimeout, s.cfg.Server.WriteTimeout,
		perIP, s.cfg.Server.yieldAfterResponse()))
}

// Shutdown stops accepting connections and waits for in-flight requests, up to ctx's deadline.
func (s *Server) Shutdown(ctx context.Context) error {
	s.lifeMu.Lock()
	s.stopping = true
	ln := s.listener
	s.lifeMu.Unlock()
	err := s.public.ShutdownWithContext(ctx)
	// After fasthttp's own shutdown, which reports an error for a listener closed under it. A Serve still on its
	// way to Accept finds the listener closed and returns.
	if ln != nil {
		_ = ln.Close()
	}
	s.cache.stopJanitor()
	return err
}

// fasthttpLogger sends fasthttp's own messages (malformed requests, accept errors) to the operator's log.
type fasthttpLogger struct{ log *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Warn("http server", "msg", fmt.Sprintf(format, args...))
}

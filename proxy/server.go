// Package proxy is the fasthttp HLS edge: routing, authorization hook, edge cache with coalescing, origin
// failover and the admin endpoints.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/hlsedge/hlsedge/authz"
	"github.com/hlsedge/hlsedge/playlist"
	"github.com/hlsedge/hlsedge/proxy/web"
	"github.com/hlsedge/hlsedge/signaling"
)

// Server is one edge node: the public listener for viewers and the admin listener for operators.
type Server struct {
	// lifeMu guards stopping and listeners: fasthttp's Shutdown cannot stop a Serve that has not reached its
	// Accept loop yet, so Shutdown closes the listeners itself and a late Serve returns at once.
	lifeMu    sync.Mutex
	stopping  bool
	listeners []net.Listener

	cfg      *Config
	log      *slog.Logger
	up       *Upstreams
	cache    *Cache
	fetches  *Coalescer[fetchResult]
	m        *edgeMetrics
	rewriter *playlist.Rewriter
	auth     *authz.Authorizer
	// sig is the conference signaling, nil when not configured.
	sig *signaling.Server
	// tokenParams are the query parameters that carry tokens: stripped before the origin and out of cache keys.
	tokenParams []string
	// segmentCC is the segments' Cache-Control, formatted once.
	segmentCC string
	now       func() time.Time
	// clock is the test clock, nil in production, where the request's arrival time from fasthttp is used.
	clock func() time.Time

	public *fasthttp.Server
	admin  *fasthttp.Server

	// player serves /{stream}/embed.html and /_hlsedge/ before routing; nil when 'player.disabled'.
	player *player
	// status is the admin page at / and the viewer estimate it shows.
	status *statusPage

	// bufs holds the per-request scratch buffers (cache key, rewritten playlist) so the fast path reuses them.
	bufs sync.Pool
}

// Options carries the dependencies the caller builds; nil ones get defaults.
type Options struct {
	Log *slog.Logger
	// Now is the clock; tests move it.
	Now func() time.Time
}

// New builds a Server from a validated config.
func New(cfg *Config, opts Options) (*Server, error) {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	s := &Server{
		cfg:     cfg,
		log:     opts.Log,
		now:     time.Now,
		cache:   NewCache(int64(cfg.Cache.MaxBytes)),
		clock:   opts.Now,
		fetches: NewCoalescer[fetchResult](),
		m:       newEdgeMetrics(),
	}
	s.bufs.New = func() any { return &scratch{} }
	s.segmentCC = "public, max-age=" + strconv.Itoa(int(cfg.Cache.SegmentTTL/time.Second))
	if opts.Now != nil {
		s.now = opts.Now
	}
	s.up = newUpstreams(cfg, s.m, s.now)
	auth, err := authz.New(cfg.Auth, opts.Log)
	if err != nil {
		return nil, fmt.Errorf("building authorizer: %w", err)
	}
	s.auth = auth
	logAuthStart(s.log, auth)
	s.tokenParams = auth.TokenParams()
	if len(s.tokenParams) == 0 {
		// Even with authorization off, a viewer's token never reaches the origin or splits the cache.
		s.tokenParams = []string{"token"}
	}
	// The rewriter replaces any of these already in a child URI, so a viewer's token is never doubled.
	params := append([]string(nil), s.tokenParams...)
	if cp := auth.ChildParam(); cp != "" && !slices.Contains(params, cp) {
		params = append(params, cp)
	}
	if cfg.Signaling != nil {
		sig, err := signaling.New(*cfg.Signaling, opts.Log, s.m.set)
		if err != nil {
			auth.Close()
			return nil, fmt.Errorf("building signaling: %w", err)
		}
		s.sig = sig
	}
	hosts := make([]string, 0, len(cfg.Origins))
	for _, o := range cfg.Origins {
		hosts = append(hosts, o.host)
	}
	rw, err := playlist.NewRewriter(playlist.Options{
		ParamNames:  params,
		OriginHosts: hosts,
		MaxSize:     int(cfg.Cache.MaxPlaylistSize),
	})
	if err != nil {
		return nil, fmt.Errorf("building playlist rewriter: %w", err)
	}
	s.rewriter = rw
	if !cfg.Player.Disabled {
		p, err := newPlayer(&cfg.Player, cfg.Routes, web.FS())
		if err != nil {
			return nil, fmt.Errorf("building player: %w", err)
		}
		if !p.HasHLSJS() {
			s.log.Warn("player: hls.js is not embedded (build with make); embed.html plays only where the browser has native HLS")
		}
		s.player = p
	}
	s.status = newStatusPage(s)
	// No ReadTimeout, WriteTimeout or IdleTimeout: the public connections apply server.read_timeout, idle_timeout
	// and write_timeout themselves, at a fraction of fasthttp's cost per request (see timedListener).
	s.public = &fasthttp.Server{
		Handler:                      s.serveHTTP,
		ErrorHandler:                 s.serveMalformed,
		Concurrency:                  cfg.Server.MaxConns,
		MaxConnsPerIP:                cfg.Server.MaxConnsPerIP,
		MaxRequestBodySize:           64 << 10,
		ReadBufferSize:               cfg.Server.ReadBufferSize,
		WriteBufferSize:              int(cfg.Server.WriteBufferSize),
		DisablePreParseMultipartForm: true,
		NoDefaultServerHeader:        true,
		NoDefaultContentType:         true,
		SecureErrorLogMessage:        true,
		// Verification and routing work on the raw path; fasthttp's normalised copy is not used.
		DisableKeepalive: false,
		Logger:           fasthttpLogger{s.log},
	}
	if s.sig != nil {
		s.sig.DetachSockets(s.public)
	}
	if cfg.Admin.Listen != "" {
		s.admin = &fasthttp.Server{
			Handler:               s.serveAdmin,
			ReadTimeout:           cfg.Server.ReadTimeout,
			WriteTimeout:          cfg.Server.WriteTimeout,
			IdleTimeout:           cfg.Server.IdleTimeout,
			MaxRequestBodySize:    1 << 20,
			NoDefaultServerHeader: true,
			Logger:                fasthttpLogger{s.log},
		}
	}
	return s, nil
}

// Serve runs the public listener on ln and, if configured, the admin listener on adminLn, until Shutdown.
func (s *Server) Serve(ln, adminLn net.Listener) error {
	serveAdmin := s.admin != nil && adminLn != nil
	s.lifeMu.Lock()
	if s.stopping {
		s.lifeMu.Unlock()
		_ = ln.Close()
		if adminLn != nil {
			_ = adminLn.Close()
		}
		return nil
	}
	s.listeners = append(s.listeners, ln)
	if serveAdmin {
		s.listeners = append(s.listeners, adminLn)
	}
	s.lifeMu.Unlock()

	errc := make(chan error, 2)
	go func() {
		errc <- s.public.Serve(timedListener(ln, s.cfg.Server.ReadTimeout, s.cfg.Server.IdleTimeout, s.cfg.Server.WriteTimeout))
	}()
	n := 1
	if serveAdmin {
		n++
		go func() { errc <- s.admin.Serve(adminLn) }()
	}
	var first error
	for i := 0; i < n; i++ {
		if err := <-errc; err != nil && first == nil {
			first = err
			// One listener failing takes the node down, rather than leaving it half alive.
			go s.Shutdown(context.Background())
		}
	}
	return first
}

// ListenAndServe opens the configured listeners and serves until ctx is done, then shuts down gracefully.
func (s *Server) ListenAndServe(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listening on 'listen' %s: %w", s.cfg.Listen, err)
	}
	var adminLn net.Listener
	if s.admin != nil {
		adminLn, err = net.Listen("tcp", s.cfg.Admin.Listen)
		if err != nil {
			ln.Close()
			return fmt.Errorf("listening on 'admin.listen' %s: %w", s.cfg.Admin.Listen, err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln, adminLn) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.Server.ShutdownTimeout)
	defer cancel()
	if err := s.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutting down: %w", err)
	}
	return <-done
}

// Shutdown stops accepting connections and waits for in-flight requests, up to ctx's deadline.
func (s *Server) Shutdown(ctx context.Context) error {
	s.lifeMu.Lock()
	s.stopping = true
	lns := s.listeners
	s.lifeMu.Unlock()
	// After fasthttp's own shutdown, which reports an error for a listener closed under it. A Serve still on its
	// way to Accept finds the listener closed and returns.
	defer func() {
		for _, ln := range lns {
			_ = ln.Close()
		}
	}()
	var errs []error
	if s.sig != nil {
		// WebSockets are hijacked connections the HTTP shutdown does not wait for; close them with 1001 first.
		s.sig.Close()
	}
	if err := s.public.ShutdownWithContext(ctx); err != nil {
		errs = append(errs, err)
	}
	if s.admin != nil {
		if err := s.admin.ShutdownWithContext(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	s.auth.Close()
	return errors.Join(errs...)
}

// fasthttpLogger sends fasthttp's own messages (malformed requests, accept errors) to the operator's log.
type fasthttpLogger struct{ log *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Warn("http server", "msg", fmt.Sprintf(format, args...))
}

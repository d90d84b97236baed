// Package admin is the operators' listener: status page, admin API, /auth/astra, /metrics, profiles and /healthz.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hlsedge/hlsedge/authz"
	"github.com/hlsedge/hlsedge/internal/fleet"
	"github.com/hlsedge/hlsedge/signaling"
)

// Edge is what the admin listener needs from the viewer listener.
type Edge interface {
	// Stats reports the cache and origin figures; cheap enough for a scraper polling /api/stats.
	Stats() EdgeStats
	// CachedChannels reports what the cache holds per channel. It may walk the cache under its locks: it runs for
	// the status page, never per viewer request.
	CachedChannels(now time.Time) []ChannelCache
	// Channel names the channel of a viewer's request path through the edge's routes or, when no route serves
	// the path, fallback if that is a valid channel name; nil when neither.
	Channel(path, fallback []byte) []byte
	// WritePrometheus writes the edge's metrics, those registered with it and the process's, in Prometheus text.
	WritePrometheus(w io.Writer)
}

// EdgeStats is the admin view of the cache and the origins.
type EdgeStats struct {
	CacheObjects   int            `json:"cache_objects"`
	CacheBytes     int64          `json:"cache_bytes"`
	CacheEvictions uint64         `json:"cache_evictions"`
	CacheHits      uint64         `json:"cache_hits"`
	CacheMisses    uint64         `json:"cache_misses"`
	FetchesNow     int            `json:"fetches_in_flight"`
	Origins        []OriginHealth `json:"origins"`
}

// OriginHealth is one origin's passive health.
type OriginHealth struct {
	Host string `json:"host"`
	Up   bool   `json:"up"`
}

// ChannelCache is what the cache holds of one channel.
type ChannelCache struct {
	Name    string
	Objects int
	Bytes   int64
	// PlaylistAge is how long ago the freshest cached playlist came from the origin; -1 when none is cached.
	PlaylistAge time.Duration
}

// Options carries what the admin listener reports on and acts upon.
type Options struct {
	Log *slog.Logger
	// Now is the clock; tests move it. Default time.Now.
	Now func() time.Time
	// Auth is the edge's authorizer: its sessions (the viewer counts), kicks, bans and counters, and the verifier
	// /auth/astra asks. Required.
	Auth *authz.Authorizer
	// Edge is the viewer listener. Required.
	Edge Edge
	// Signaling is the conference signaling whose registry /api/conferences serves; nil when it is off.
	Signaling *signaling.Server
	// Reloader re-reads the config file for POST /api/reload and tells the status page when the config in force
	// was loaded; nil turns both off.
	Reloader Reloader
	// Node is this edge's name ('node'), shown in /api/stats, /healthz and the fleet views.
	Node string
	// Fleet is the edge's membership of a fleet ('redis'); nil for a single edge. With it /api/sessions and
	// /api/stats cover every node, with a node column, and /healthz says whether the fleet is reachable.
	Fleet *fleet.Client
	// ReadTimeout, WriteTimeout and IdleTimeout bound each connection. Defaults 10s, 60s (a CPU profile takes
	// 30 s to write) and 60s.
	ReadTimeout, WriteTimeout, IdleTimeout time.Duration
}

// maxBody bounds a request body: bans and conferences are a few hundred bytes.
const maxBody = 1 << 20

// Server is the admin listener.
type Server struct {
	// live is what a reload replaces: this section's settings and the authorizer (see Apply).
	live   atomic.Pointer[live]
	log    *slog.Logger
	now    func() time.Time
	edge   Edge
	sig    *signaling.Server
	reload Reloader
	node   string
	fleet  *fleet.Client // nil for a single edge
	status *statusPage
	// crossSite spots browser requests sent from another site's page (Sec-Fetch-Site, Origin against Host).
	crossSite *http.CrossOriginProtection
	srv       *http.Server
}

// New builds the admin listener from a validated config. It starts nothing: Serve does.
func New(cfg Config, opts Options) (*Server, error) {
	if opts.Auth == nil || opts.Edge == nil {
		return nil, errors.New("admin: Options.Auth and Options.Edge are required")
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&opts.ReadTimeout, 10*time.Second)
	def(&opts.WriteTimeout, 60*time.Second)
	def(&opts.IdleTimeout, 60*time.Second)
	s := &Server{
		log: opts.Log, now: opts.Now, edge: opts.Edge, sig: opts.Signaling, reload: opts.Reloader,
		node: opts.Node, fleet: opts.Fleet, crossSite: http.NewCrossOriginProtection(),
	}
	if err := s.Apply(cfg, opts.Auth); err != nil {
		return nil, err
	}
	s.status = newStatusPage(s)
	s.srv = &http.Server{
		Handler:           s.routes(),
		ReadHeaderTimeout: opts.ReadTimeout,
		ReadTimeout:       opts.ReadTimeout,
		WriteTimeout:      opts.WriteTimeout,
		IdleTimeout:       opts.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(opts.Log.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// Serve answers on ln until Shutdown; a Serve that starts after Shutdown returns at once.
func (s *Server) Serve(ln net.Listener) error {
	if err := s.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops accepting and waits for requests in flight, up to ctx's deadline.
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }

// routes maps every admin path with Go's method patterns. Each path also gets a pattern without a method that
// answers 405 with the methods it has, so that every refusal, the mux's included, goes through fail.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	// These answer without the admin token: load balancers probe /healthz without credentials, and Astra cannot
	// send the token (see astraAuth for why answering it here is safe). Everything else (origin addresses and
	// viewer counts on the status page, metrics, profiles, the API, even a 404) sits behind it.
	open := []string{"/healthz", "/auth/astra"}
	methods := map[string][]string{}
	var paths []string
	guard := func(path string, h http.HandlerFunc) http.HandlerFunc {
		if slices.Contains(open, path) {
			return h
		}
		return s.guarded(h)
	}
	handle := func(pattern string, h http.HandlerFunc) {
		method, path, _ := strings.Cut(pattern, " ")
		mux.HandleFunc(pattern, guard(path, h))
		if method == http.MethodGet {
			method += ", " + http.MethodHead
		}
		if methods[path] == nil {
			paths = append(paths, path)
		}
		methods[path] = append(methods[path], method)
	}
	handle("GET /healthz", s.healthz)
	handle("GET /auth/astra", s.astraAuth)
	handle("GET /{$}", s.status.serve)
	handle("GET /metrics", s.metrics)
	handle("GET /debug/pprof/", profiles)
	handle("GET /api/stats", s.stats)
	handle("GET /api/sessions", s.sessions)
	// State changes are also refused to other sites' pages: see changes.
	handle("DELETE /api/sessions/{id}", s.changes(s.kick))
	handle("GET /api/bans", s.bans)
	handle("POST /api/bans", s.changes(s.addBan))
	handle("DELETE /api/bans/{id}", s.changes(s.unban))
	if s.reload != nil {
		handle("POST /api/reload", s.changes(s.reloadConfig))
	}
	if s.sig != nil {
		conf := s.conferences()
		handle("GET /api/conferences", conf)
		handle("POST /api/conferences", s.changes(conf))
		handle("DELETE /api/conferences", s.changes(conf))
	}
	for _, path := range paths {
		allow := strings.Join(methods[path], ", ")
		mux.HandleFunc(path, guard(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			s.fail(w, r, http.StatusMethodNotAllowed, "method not allowed")
		}))
	}
	mux.HandleFunc("/", guard("/", func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, http.StatusNotFound, "not found")
	}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		mux.ServeHTTP(w, r)
	})
}

// profiles serves net/http/pprof under /debug/pprof/. One subtree pattern dispatches, rather than one pattern per
// profile, because each path also has a method-less 405 pattern and those would overlap the subtree's.
// (Importing net/http/pprof also registers it on http.DefaultServeMux, which nothing in hlsedge serves.)
func profiles(w http.ResponseWriter, r *http.Request) {
	switch strings.TrimPrefix(r.URL.Path, "/debug/pprof/") {
	case "cmdline":
		pprof.Cmdline(w, r)
	case "profile":
		pprof.Profile(w, r)
	case "symbol":
		pprof.Symbol(w, r)
	case "trace":
		pprof.Trace(w, r)
	default:
		// The index, and the runtime's named profiles (heap, goroutine, allocs...).
		pprof.Index(w, r)
	}
}

// healthz answers 200 while the node serves, which it does without Redis too; the lines after "ok" say which
// node answered and whether it reaches the fleet, for the operator rather than the balancer.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	io.WriteString(w, "ok\n")
	if s.node != "" {
		io.WriteString(w, "node: "+s.node+"\n")
	}
	if s.fleet != nil {
		h := s.fleet.Health()
		if h.Degraded {
			io.WriteString(w, "fleet: degraded since "+h.Since.UTC().Format(time.RFC3339)+": "+h.Reason+"\n")
		} else {
			io.WriteString(w, "fleet: ok\n")
		}
	}
}

// fail is the admin listener's one way to refuse: a status, a one-line reason for the operator's script or
// browser, and a log line. The reason never holds a token; attrs add context to the log line only.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, status int, reason string, attrs ...any) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	io.WriteString(w, reason+"\n")
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelWarn
	}
	// The path only: /auth/astra carries the viewer's token in its query.
	s.log.Log(r.Context(), level, "admin request refused", append([]any{"status", status, "reason", reason,
		"method", r.Method, "path", r.URL.Path, "ip", remoteIP(r)}, attrs...)...)
}

// writeJSON answers with v as JSON.
func (s *Server) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, "encoding response", "err", err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

package bench

import (
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/hlsedge/hlsedge/signaling"
)

// WSServer is a signaling server without the edge around it, on its own fasthttp listener: the socket at the
// configured path, the conference registry at /api/conferences and Prometheus metrics (Go memory and process
// included) at /metrics. It makes `bench ws` self-contained, and it is the server the memory benchmark measures.
type WSServer struct {
	Sig  *signaling.Server
	Addr string // host:port it listens on

	srv *fasthttp.Server
	ln  net.Listener
	ms  *metrics.Set
	gc  bool
}

// WSServerOptions are the harness's knobs.
type WSServerOptions struct {
	// Log receives the signaling server's logs; nil discards them.
	Log *slog.Logger
	// GCOnScrape collects garbage before each /metrics answer, so that go_memstats_heap_inuse_bytes is live
	// memory rather than whatever the last cycle left: the memory-per-socket measurement depends on it.
	GCOnScrape bool
}

// StartWSServer listens on addr (127.0.0.1:0 picks a port) and serves until Close.
func StartWSServer(addr string, cfg signaling.Config, opts WSServerOptions) (*WSServer, error) {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ms := metrics.NewSet()
	sig, err := signaling.New(cfg, log, ms)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		sig.Close()
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	s := &WSServer{Sig: sig, Addr: ln.Addr().String(), ln: ln, ms: ms, gc: opts.GCOnScrape}
	s.srv = &fasthttp.Server{
		Name:    "hlsedge-bench-ws",
		Handler: s.handle,
		// The edge's default. Detached sockets give it back after the upgrade, so it does not count in the
		// memory per socket; it must hold the upgrade request's headers, cookies (one socket_io_token_* JWT per
		// conference) included.
		ReadBufferSize:     8192,
		ReadTimeout:        10 * time.Second,
		WriteTimeout:       10 * time.Second,
		MaxRequestBodySize: 64 << 10,
		Concurrency:        1 << 20,
		Logger:             discardLogger{},
	}
	sig.DetachSockets(s.srv)
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}

func (s *WSServer) handle(ctx *fasthttp.RequestCtx) {
	if s.Sig.Handles(ctx.Path()) {
		s.Sig.ServeWS(ctx)
		return
	}
	switch string(ctx.Path()) {
	case "/api/conferences":
		s.Sig.ServeConferencesAPI(ctx)
	case "/metrics":
		if s.gc {
			runtime.GC()
		}
		ctx.SetContentType("text/plain; version=0.0.4")
		metrics.WritePrometheus(ctx, true)
		s.ms.WritePrometheus(ctx)
	default:
		ctx.SetStatusCode(fasthttp.StatusNotFound)
	}
}

// URL is the socket's ws:// URL.
func (s *WSServer) URL() string { return "ws://" + s.Addr + s.Sig.Path() }

// MetricsURL is the /metrics URL.
func (s *WSServer) MetricsURL() string { return "http://" + s.Addr + "/metrics" }

// Close closes every socket with 1001, then the listener.
func (s *WSServer) Close() {
	s.Sig.Close()
	_ = s.srv.Shutdown()
}

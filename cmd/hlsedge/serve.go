package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"

	"github.com/hlsedge/hlsedge/authz"
	"github.com/hlsedge/hlsedge/authz/redisstate"
	"github.com/hlsedge/hlsedge/configs"
	"github.com/hlsedge/hlsedge/internal/fleet"
	"github.com/hlsedge/hlsedge/proxy"
	"github.com/hlsedge/hlsedge/proxy/admin"
	"github.com/hlsedge/hlsedge/signaling"
)

// runServe is `hlsedge serve --config FILE`: an edge of a deployment, from the operator's own config.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "YAML config file (required; `hlsedge demo` runs without one)")
	listen := fs.String("listen", "", "public address, overrides 'listen'")
	origin := fs.String("origin", "", "origin URL(s), comma-separated, override 'origins'")
	adminAddr := fs.String("admin", "", "admin address, overrides 'admin.listen'")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *configPath == "" {
		// The embedded demo config carries published secrets: an edge started from it would take tokens anyone
		// can mint. The demo is its own command, which says what it is.
		return errors.New("--config FILE is required; for a try-out on loopback without one, run `hlsedge demo`")
	}
	cfg, err := loadEdgeConfig(*configPath, *listen, *origin, *adminAddr)
	if err != nil {
		return err
	}
	log, level := newLevelLogger(cfg, stderr)
	n, err := startNode(cfg, log, nil)
	if err != nil {
		return err
	}
	n.src, n.level = &configSource{path: *configPath, listen: *listen, origins: *origin, admin: *adminAddr}, level
	if err := n.serve(ctx); err != nil {
		return err
	}
	log.Info("edge stopped")
	return nil
}

// node is one edge process and the composition root: the fleet membership (with 'redis'), the authorizer,
// conference signaling, the viewer listener and the admin listener, built in that order from one config, and
// stopped together.
type node struct {
	cfg *proxy.Config
	log *slog.Logger
	// name is the edge's name ('node', default the hostname); "" when the hostname makes no valid name and the
	// edge runs alone.
	name string
	// fleet, state and reporter are the fleet membership, the viewer state shared through it and the
	// announcements of this node for the others' admin views; all nil without 'redis'.
	fleet *fleet.Client
	state *redisstate.State
	// mem is a single edge's viewer state (nil in a fleet). Whichever is set holds the sessions, bans and kicks
	// every authorizer of a reload takes over (viewerState).
	mem      *authz.MemState
	reporter *admin.Reporter
	// closeHub closes the conference hub shared with the fleet; nil when signaling keeps its own.
	closeHub func()
	auth     *authz.Authorizer
	// live is auth for the node's own goroutines (the fleet reporter), which a reload must not race.
	live  atomic.Pointer[authz.Authorizer]
	sig   *signaling.Server // nil when the config has no signaling section
	edge  *proxy.Server
	admin *admin.Server // nil when 'admin.listen' is ""
	// ln and adminLn are the open listeners, which a reload may move to another address; adminLn is nil without
	// the admin listener.
	ln, adminLn *rebindListener
	// stopReport ends the reporter that serve started, and reported is closed once it left the fleet's views.
	stopReport context.CancelFunc
	reported   chan struct{}
	// stopped, when set, hears each part as stop releases it; tests check that nothing is left running.
	stopped func(part string)

	// reloads is what SIGHUP and POST /api/reload need (reload.go).
	reloads
}

// startNode builds every part and opens the listeners. When a step fails, it releases whatever the earlier
// steps started (authorizer goroutines, signaling, listeners) before returning the error.
func startNode(cfg *proxy.Config, log *slog.Logger, stopped func(part string)) (*node, error) {
	n := &node{cfg: cfg, log: log, stopped: stopped}
	n.reloads.init(n)
	if err := n.build(); err != nil {
		_ = n.stop(context.Background())
		return nil, err
	}
	return n, nil
}

func (n *node) build() error {
	cfg := n.cfg
	name, err := fleet.NodeName(cfg.Node)
	if err != nil && (cfg.Redis != nil || cfg.Node != "") {
		return err
	}
	// A hostname that makes no valid node name only matters to a fleet; a single edge goes without a name.
	n.name = name
	if name != "" {
		n.log = n.log.With("node", name)
	}
	log := n.log
	// One metrics set for the edge, signaling, reloads and the fleet, so that one /metrics carries them all.
	ms := metrics.NewSet()
	n.reloads.register(ms)
	if name != "" {
		ms.NewGauge(`hlsedge_node_info{node="`+name+`"}`, func() float64 { return 1 })
	}
	if cfg.Redis != nil {
		if n.fleet, err = fleet.New(*cfg.Redis, name, log, ms); err != nil {
			return fmt.Errorf("joining the fleet: %w", err)
		}
		if !cfg.Auth.Disabled {
			if n.state, err = redisstate.New(cfg.Auth, n.fleet, log, ms); err != nil {
				return fmt.Errorf("building the fleet's viewer state: %w", err)
			}
		}
	}
	if n.state == nil {
		if n.mem, err = authz.NewMemState(cfg.Auth, log); err != nil {
			return fmt.Errorf("building viewer state: %w", err)
		}
	}
	auth, err := authz.New(cfg.Auth, log, authz.WithState(n.viewerState()))
	if err != nil {
		return fmt.Errorf("building authorizer: %w", err)
	}
	n.auth = auth
	n.live.Store(auth)
	if cfg.Signaling != nil {
		var sigOpts []signaling.Option
		if n.fleet != nil {
			hub, closeHub := fleetHub(n.fleet, *cfg.Signaling, log, ms)
			n.closeHub = closeHub
			sigOpts = append(sigOpts, signaling.WithHub(hub))
		}
		if n.sig, err = signaling.New(*cfg.Signaling, log, ms, sigOpts...); err != nil {
			return fmt.Errorf("building signaling: %w", err)
		}
	}
	if n.edge, err = proxy.New(cfg, proxy.Options{Log: log, Auth: n.auth, Signaling: n.sig, Metrics: ms}); err != nil {
		return fmt.Errorf("building edge: %w", err)
	}
	if cfg.Admin.Enabled() {
		n.admin, err = admin.New(cfg.Admin, admin.Options{
			Log: log, Auth: n.auth, Edge: n.edge, Signaling: n.sig, Reloader: n, Node: name, Fleet: n.fleet,
			ReadTimeout: cfg.Server.ReadTimeout, WriteTimeout: cfg.Server.WriteTimeout, IdleTimeout: cfg.Server.IdleTimeout,
		})
		if err != nil {
			return fmt.Errorf("building admin listener: %w", err)
		}
	}
	if n.fleet != nil {
		n.reporter = admin.NewReporter(n.fleet, n.live.Load, n.edge, log)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listening on 'listen' %s: %w", cfg.Listen, err)
	}
	n.ln = newRebindListener(ln)
	if n.admin != nil {
		if ln, err = net.Listen("tcp", cfg.Admin.Addr()); err != nil {
			return fmt.Errorf("listening on 'admin.listen' %s: %w", cfg.Admin.Addr(), err)
		}
		n.adminLn = newRebindListener(ln)
	}
	return nil
}

// viewerState is the sessions, bans and kicks every authorizer of this node shares, across reloads: the fleet's
// in a fleet, the node's own otherwise.
func (n *node) viewerState() authz.ViewerState {
	if n.state != nil {
		return n.state
	}
	return n.mem
}

// adminAddr is where the admin listener is, "" when it is off.
func (n *node) adminAddr() string {
	if n.adminLn == nil {
		return ""
	}
	return n.adminLn.Addr().String()
}

// serve answers on both listeners until ctx is done or one of them fails, which takes the whole node down rather
// than leave it half alive; then it stops every part within 'server.shutdown_timeout'.
func (n *node) serve(ctx context.Context) error {
	n.log.Info("edge started", "listen", n.ln.Addr().String(), "admin", n.adminAddr(), "origins", len(n.cfg.Origins),
		"fleet", n.fleet != nil)
	stopHUP := n.reloadOnSIGHUP(ctx)
	defer stopHUP()
	if n.reporter != nil {
		rctx, cancel := context.WithCancel(context.Background())
		n.stopReport, n.reported = cancel, make(chan struct{})
		go func() {
			defer close(n.reported)
			n.reporter.Run(rctx)
		}()
	}
	errc := make(chan error, 2)
	running := 1
	go func() { errc <- n.edge.Serve(n.ln) }()
	if n.admin != nil {
		running++
		go func() { errc <- n.admin.Serve(n.adminLn) }()
	}
	var failed error
	select {
	case <-ctx.Done():
	case err := <-errc:
		running--
		failed = fmt.Errorf("a listener stopped: %w", err)
		if err == nil {
			failed = errors.New("a listener stopped")
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), n.shutdownTimeout())
	defer cancel()
	err := n.stop(sctx)
	for ; running > 0; running-- {
		if e := <-errc; e != nil && failed == nil {
			failed = e
		}
	}
	return errors.Join(failed, err)
}

// stop releases every part that was started, whichever step the node reached. Signaling goes first, so that
// its sockets get a 1001 close instead of waiting out the viewer listener's shutdown; the authorizer goes last,
// since both listeners ask it until they have stopped.
func (n *node) stop(ctx context.Context) error {
	// A reload running now finishes first, and none starts after: the parts below are the ones in force.
	n.reloads.end()
	var errs []error
	done := func(part string) {
		if n.stopped != nil {
			n.stopped(part)
		}
	}
	if n.sig != nil {
		n.sig.Close()
		done("signaling")
	}
	if n.edge != nil {
		if err := n.edge.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stopping edge: %w", err))
		}
		done("edge")
	}
	if n.admin != nil {
		if err := n.admin.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stopping admin listener: %w", err))
		}
		done("admin")
	}
	// A listener that Serve never took (a later step failed) is closed here; closing a served one again is
	// harmless.
	if n.ln != nil {
		_ = n.ln.Close()
		if n.adminLn != nil {
			_ = n.adminLn.Close()
		}
		done("listeners")
	}
	if n.auth != nil || n.mem != nil {
		if n.auth != nil {
			n.auth.Close()
		}
		if n.mem != nil {
			n.mem.Close()
		}
		done("authorizer")
	}
	// The fleet last: the authorizer's state and signaling's hub use it until they are closed.
	if n.fleet != nil {
		if n.stopReport != nil {
			n.stopReport()
			<-n.reported
		}
		if n.state != nil {
			n.state.Close()
		}
		if n.closeHub != nil {
			n.closeHub()
		}
		n.fleet.Close()
		done("fleet")
	}
	return errors.Join(errs...)
}

// loadEdgeConfig reads the file (or, for the demo, the embedded demo config), applies flag overrides, then
// defaults and validation, so that an override is validated like a file value.
func loadEdgeConfig(path, listen, origins, adminAddr string) (*proxy.Config, error) {
	var (
		cfg *proxy.Config
		err error
	)
	if path == "" {
		cfg, err = proxy.ParseConfig(configs.Demo)
	} else {
		cfg, err = proxy.LoadConfig(path)
	}
	if err != nil {
		return nil, err
	}
	if listen != "" {
		cfg.Listen = listen
	}
	if adminAddr != "" {
		cfg.Admin.Listen = &adminAddr
	}
	if origins != "" {
		cfg.Origins = nil
		for _, o := range strings.Split(origins, ",") {
			cfg.Origins = append(cfg.Origins, proxy.OriginConfig{URL: strings.TrimSpace(o)})
		}
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid config: %w", err)
	}
	return cfg, nil
}

// newLevelLogger builds the operator's logger and the level a reload sets ('log.level'); the format needs a
// restart.
func newLevelLogger(cfg *proxy.Config, w io.Writer) (*slog.Logger, *slog.LevelVar) {
	level := new(slog.LevelVar)
	setLevel(level, cfg)
	opts := &slog.HandlerOptions{Level: level}
	if w == nil {
		w = os.Stderr
	}
	if cfg.Log.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts)), level
	}
	return slog.New(slog.NewJSONHandler(w, opts)), level
}

func setLevel(v *slog.LevelVar, cfg *proxy.Config) {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level))
	v.Set(level)
}

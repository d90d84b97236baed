package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/hlsedge/hlsedge/authz"
	"github.com/hlsedge/hlsedge/proxy"
	"github.com/hlsedge/hlsedge/proxy/admin"
	"github.com/hlsedge/hlsedge/signaling"
)

// A reload (SIGHUP, or POST /api/reload on the admin listener) re-reads the config file and applies it without
// dropping a viewer, as nginx and Caddy do. The whole file is validated first, and everything that can fail is
// built before anything changes: the authorizer (keys and key files, JWKS), the edge's next generation (routes,
// origins, rewriter, player), new listeners when an address changed, and signaling's keys. Then the parts are
// swapped in, each with one atomic store. What viewers earned carries over: open HLS connections and WebSocket
// participants, sessions, bans and kicks (one viewer state for every authorizer), the content cache, and the
// cached decisions whose group and keys still exist. A reload that fails leaves the running config in force and
// says why, naming the field, in the log, in /metrics (hlsedge_reloads_total{result="error"}), in the answer
// of /api/reload and on the status page.

// configSource is where a node's config comes from, read again on every reload: the file (the demo's embedded
// config when path is empty) and the command line's overrides, which win over the file every time.
type configSource struct{ path, listen, origins, admin string }

func (s configSource) load() (*proxy.Config, error) {
	return loadEdgeConfig(s.path, s.listen, s.origins, s.admin)
}

// reloads is a node's reload state.
type reloads struct {
	n *node
	// src is where the config is read from; level is the logger's level, set from 'log.level'. Both are set by
	// the command that starts the node; without src there is nothing to reload.
	src   *configSource
	level *slog.LevelVar

	// mu makes reloads take turns, and stop wait for the one running; ended refuses reloads once stop began.
	mu    sync.Mutex
	ended bool

	lastMu   sync.Mutex
	last     admin.ReloadResult
	loadedAt atomic.Int64 // unix nanos

	ok, failed *metrics.Counter
	// reloaded, when set, hears the result of every reload; tests wait on it, since SIGHUP answers nobody.
	reloaded func(admin.ReloadResult)
}

func (r *reloads) init(n *node) {
	r.n = n
	now := time.Now()
	r.loadedAt.Store(now.UnixNano())
	r.last = admin.ReloadResult{LoadedAt: now}
}

// register adds the reload metrics to the node's set.
func (r *reloads) register(ms *metrics.Set) {
	r.ok = ms.NewCounter(`hlsedge_reloads_total{result="ok"}`)
	r.failed = ms.NewCounter(`hlsedge_reloads_total{result="error"}`)
	ms.NewGauge(`hlsedge_config_loaded_timestamp_seconds`, func() float64 {
		return float64(r.loadedAt.Load()) / float64(time.Second)
	})
}

// end waits for a reload in progress and refuses the ones after: the node is stopping.
func (r *reloads) end() {
	r.mu.Lock()
	r.ended = true
	r.mu.Unlock()
}

// shutdownTimeout is 'server.shutdown_timeout' of the config in force.
func (n *node) shutdownTimeout() time.Duration {
	n.reloads.mu.Lock()
	defer n.reloads.mu.Unlock()
	return n.cfg.Server.ShutdownTimeout
}

// LastReload implements admin.Reloader.
func (n *node) LastReload() admin.ReloadResult {
	n.lastMu.Lock()
	defer n.lastMu.Unlock()
	return n.last
}

// Reload implements admin.Reloader: it reads the config again and puts it in force, or keeps the running one.
func (n *node) Reload() admin.ReloadResult {
	r := &n.reloads
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	res, err := n.reload(now)
	if err != nil {
		res = admin.ReloadResult{Result: "error", Error: err.Error(), At: now, LoadedAt: time.Unix(0, r.loadedAt.Load())}
		if r.failed != nil {
			r.failed.Inc()
		}
		n.log.Error("config reload failed; the running config stays in force", "err", err.Error())
	} else {
		r.loadedAt.Store(now.UnixNano())
		if r.ok != nil {
			r.ok.Inc()
		}
		n.log.Info("config reloaded", "changed", res.Changed, "rebound", res.Rebound, "restart_required", res.RestartRequired)
		if len(res.RestartRequired) > 0 {
			n.log.Warn("config reload: some changed fields take effect on restart only", "fields", res.RestartRequired)
		}
	}
	r.lastMu.Lock()
	r.last = res
	r.lastMu.Unlock()
	if r.reloaded != nil {
		r.reloaded(res)
	}
	return res
}

// reload does one reload under reloads.mu: read, validate, build, then swap. Nothing is swapped unless every
// step that can fail has succeeded; what the failed attempt built is released.
func (n *node) reload(now time.Time) (admin.ReloadResult, error) {
	if n.ended {
		return admin.ReloadResult{}, errors.New("the edge is stopping")
	}
	if n.src == nil {
		return admin.ReloadResult{}, errors.New("this edge was not started from a config file")
	}
	cfg, err := n.src.load()
	if err != nil {
		return admin.ReloadResult{}, err
	}
	old := n.cfg
	res := admin.ReloadResult{Result: "ok", At: now, LoadedAt: now, Changed: changedSections(old, cfg),
		RestartRequired: restartFields(old, cfg)}

	auth, err := authz.New(cfg.Auth, n.log, authz.WithState(n.viewerState()), authz.WithPrevious(n.auth))
	if err != nil {
		return res, fmt.Errorf("building authorizer: %w", err)
	}
	release := []func(){auth.Close}
	fail := func(err error) (admin.ReloadResult, error) {
		for _, f := range release {
			f()
		}
		return res, err
	}
	next, err := n.edge.Prepare(cfg, auth)
	if err != nil {
		return fail(fmt.Errorf("building edge: %w", err))
	}
	var ln, adminLn net.Listener
	if cfg.Listen != old.Listen {
		if ln, err = net.Listen("tcp", cfg.Listen); err != nil {
			return fail(fmt.Errorf("listening on 'listen' %s: %w", cfg.Listen, err))
		}
		release = append(release, func() { _ = ln.Close() })
	}
	if n.adminLn != nil && cfg.Admin.Enabled() && cfg.Admin.Addr() != old.Admin.Addr() {
		if adminLn, err = net.Listen("tcp", cfg.Admin.Addr()); err != nil {
			return fail(fmt.Errorf("listening on 'admin.listen' %s: %w", cfg.Admin.Addr(), err))
		}
		release = append(release, func() { _ = adminLn.Close() })
	}
	if n.sig != nil && cfg.Signaling != nil {
		// The last step that can fail; Reload changes nothing when it does.
		if err := n.sig.Reload(*cfg.Signaling); err != nil {
			return fail(fmt.Errorf("building signaling: %w", err))
		}
	}

	// Nothing below fails: the admin token was read when the config was validated.
	n.edge.Apply(next)
	if n.admin != nil {
		if err := n.admin.Apply(cfg.Admin, auth); err != nil {
			n.log.Error("config reload: the admin listener keeps its previous settings", "err", err.Error())
		}
	}
	if ln != nil {
		res.Rebound = append(res.Rebound, fmt.Sprintf("listen %s -> %s", n.ln.Addr(), ln.Addr()))
		n.ln.rebind(ln)
	}
	if adminLn != nil {
		res.Rebound = append(res.Rebound, fmt.Sprintf("admin.listen %s -> %s", n.adminLn.Addr(), adminLn.Addr()))
		n.adminLn.rebind(adminLn)
	}
	if n.level != nil {
		setLevel(n.level, cfg)
	}
	// Requests that picked the old generation may still be asking the old authorizer; closing it stops its
	// key refreshes and idle backend connections only, and the decision cache lives on in the new one.
	n.auth.Close()
	n.auth, n.cfg = auth, cfg
	n.live.Store(auth)
	return res, nil
}

// reloadOnSIGHUP reloads on every SIGHUP until ctx is done or the returned stop is called; systemd's
// ExecReload sends it.
func (n *node) reloadOnSIGHUP(ctx context.Context) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for {
			select {
			case <-hup:
				n.Reload()
			case <-ctx.Done():
				return
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		close(done)
		<-finished
	}
}

// changedSections names the top-level sections whose settings differ, for the log and the API; the values are
// never shown, since some are secrets.
func changedSections(a, b *proxy.Config) []string {
	return diffFields("", reflect.ValueOf(*a), reflect.ValueOf(*b))
}

// restartFields names what changed but only takes effect on restart: what the listeners were started with
// (server.*, save the shutdown timeout, read when stopping; tls), the log format, switching the admin listener or
// signaling on or off, the viewer state's sizes and limits (sessions, bans), and what signaling's hub keeps.
func restartFields(a, b *proxy.Config) []string {
	var out []string
	sa, sb := a.Server, b.Server
	sa.ShutdownTimeout, sb.ShutdownTimeout = 0, 0
	out = append(out, diffFields("server.", reflect.ValueOf(sa), reflect.ValueOf(sb))...)
	if a.Log.Format != b.Log.Format {
		out = append(out, "log.format")
	}
	if a.Admin.Enabled() != b.Admin.Enabled() {
		out = append(out, "admin.listen")
	}
	// The certificate files themselves are re-read on every reload and whenever they change; which files, and
	// TLS on or off, is what the listener was started with.
	if !reflect.DeepEqual(a.TLS, b.TLS) {
		out = append(out, "tls")
	}
	// The fleet membership (its Redis connection and this node's name in it) is built once.
	if a.Node != b.Node {
		out = append(out, "node")
	}
	if !reflect.DeepEqual(a.Redis, b.Redis) {
		out = append(out, "redis")
	}
	out = append(out, diffFields("auth.sessions.", reflect.ValueOf(a.Auth.Sessions), reflect.ValueOf(b.Auth.Sessions))...)
	out = append(out, diffFields("auth.bans.", reflect.ValueOf(a.Auth.Bans), reflect.ValueOf(b.Auth.Bans))...)
	switch {
	case (a.Signaling == nil) != (b.Signaling == nil):
		out = append(out, "signaling")
	case a.Signaling != nil:
		out = append(out, signaling.HubFields(*a.Signaling, *b.Signaling)...)
	}
	return out
}

// diffFields lists the YAML names (under prefix) of the exported fields of two structs that differ.
func diffFields(prefix string, a, b reflect.Value) []string {
	var out []string
	t := a.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		if !reflect.DeepEqual(a.Field(i).Interface(), b.Field(i).Interface()) {
			out = append(out, prefix+name)
		}
	}
	return slices.Clip(out)
}

package fleet

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/redis/rueidis"
)

// ErrUnavailable is wrapped by every error of a call made while Redis is unreachable or answered too late.
// Callers fall back to local state; the member re-syncs them when Redis returns (OnResync).
var ErrUnavailable = errors.New("redis unavailable")

// Client is one edge's connection to the fleet's Redis: commands on an auto-pipelined connection, one
// subscription connection watched by a probe, and the health both report. Its methods are safe for
// concurrent use.
type Client struct {
	cfg    Config
	node   string
	prefix string
	log    *slog.Logger
	m      *clientMetrics
	opt    rueidis.ClientOption

	rc   atomic.Pointer[rueidisBox] // nil until a client could be created (Sentinel unreachable at start)
	down atomic.Bool                // commands fail fast: the last ping or command found Redis unreachable
	degr atomic.Bool                // Health().Degraded, for Degraded's single load

	hmu     sync.Mutex
	reasons [2]string // per part (partConn, partSub); empty when that part is fine
	health  Health
	changed chan struct{} // closed and replaced at every health change
	hooks   []*resyncHook
	kick    chan struct{} // wakes the resync goroutine
	healthy chan struct{} // closed and replaced whenever the connection part recovers

	sub *subscriber

	revoke, unrevoke, admit, putConf, delConf, decide, announce *rueidis.Lua
	hold, sweep, settle                                         *rueidis.Lua

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type rueidisBox struct{ c rueidis.Client }

// Health says whether the member can reach the fleet, for /healthz and /metrics.
type Health struct {
	// Degraded is true while Redis is unreachable or the subscription is being re-established: limits are then
	// counted locally and new fleet events are not received.
	Degraded bool `json:"degraded"`
	// Reason says why, in one line; empty when healthy.
	Reason string `json:"reason,omitempty"`
	// Since is when the current state began.
	Since time.Time `json:"since"`
}

// The parts whose health makes the member's.
const (
	partConn = iota
	partSub
)

type resyncHook struct {
	fn      func(ctx context.Context)
	pending bool
}

// New connects a fleet member. It does not fail when Redis is down: the member starts degraded and connects in
// the background. It fails on configuration errors only: a bad node name, an unreadable password file, TLS
// files that do not load. ms receives the hlsedge_fleet_* metrics; nil keeps them private (Stats still works).
func New(cfg Config, node string, log *slog.Logger, ms *metrics.Set) (*Client, error) {
	cfg.SetDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if !validNode(node) {
		return nil, fmt.Errorf("'node' must be 1 to %d letters, digits, '.', '_' or '-', got %q", maxNodeBytes, node)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if ms == nil {
		ms = metrics.NewSet()
	}
	opt, err := clientOption(&cfg, node)
	if err != nil {
		return nil, err
	}
	c := &Client{
		cfg:      cfg,
		node:     node,
		prefix:   cfg.Prefix,
		log:      log.With("component", "fleet", "node", node),
		opt:      opt,
		changed:  make(chan struct{}),
		kick:     make(chan struct{}, 1),
		healthy:  make(chan struct{}),
		reasons:  [2]string{"connecting", "connecting"},
		revoke:   rueidis.NewLuaScript(revokeScript),
		unrevoke: rueidis.NewLuaScript(unrevokeScript),
		admit:    rueidis.NewLuaScript(admitScript),
		putConf:  rueidis.NewLuaScript(putConfScript),
		delConf:  rueidis.NewLuaScript(delConfScript),
		decide:   rueidis.NewLuaScript(decideScript),
		announce: rueidis.NewLuaScript(announceScript),
		hold:     rueidis.NewLuaScript(holdScript),
		sweep:    rueidis.NewLuaScript(sweepScript),
		settle:   rueidis.NewLuaScript(settleScript),
	}
	c.health = Health{Degraded: true, Reason: "connecting", Since: time.Now()}
	c.down.Store(true)
	c.degr.Store(true)
	c.m = newClientMetrics(ms, c)
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.sub = newSubscriber(c)

	// One synchronous attempt, so that a member whose Redis is up starts healthy.
	c.ping()
	c.wg.Add(3)
	go c.pingLoop()
	go c.resyncLoop()
	go c.sub.run(c.ctx)
	return c, nil
}

func clientOption(cfg *Config, node string) (rueidis.ClientOption, error) {
	opt := rueidis.ClientOption{
		InitAddress:      []string{cfg.Address},
		SelectDB:         cfg.DB,
		ClientName:       "hlsedge-" + node,
		Dialer:           net.Dialer{Timeout: cfg.DialTimeout},
		ConnWriteTimeout: cfg.WriteTimeout,
		// Nothing is read through the client-side cache, so it would only cost CLIENT TRACKING and memory.
		DisableCache: true,
		// Small buffers: messages are small, and a fleet member holds a handful of connections.
		ReadBufferEachConn:  64 << 10,
		WriteBufferEachConn: 64 << 10,
		// The blocking pool only serves the subscription connection.
		BlockingPoolSize: 4,
		// Standalone unless Sentinel: no CLUSTER probe at start, and a client even while Redis is down.
		ForceSingleClient: cfg.Sentinel == nil,
	}
	var err error
	if opt.Password, err = readSecret("redis.password", cfg.PasswordFile, cfg.PasswordEnv); err != nil {
		return opt, err
	}
	if cfg.TLS != nil {
		host := cfg.Address
		if cfg.Sentinel != nil {
			host = ""
		}
		if opt.TLSConfig, err = loadTLS(cfg.TLS, host); err != nil {
			return opt, err
		}
	}
	if s := cfg.Sentinel; s != nil {
		opt.InitAddress = s.Addresses
		opt.Sentinel = rueidis.SentinelOption{
			MasterSet:  s.MasterName,
			Dialer:     opt.Dialer,
			TLSConfig:  opt.TLSConfig,
			ClientName: opt.ClientName,
			// Reconciles with the sentinels even if a +switch-master event was missed.
			TopologyRefreshInterval: 5 * time.Second,
		}
		if opt.Sentinel.Password, err = readSecret("redis.sentinel.password", s.PasswordFile, s.PasswordEnv); err != nil {
			return opt, err
		}
	}
	return opt, nil
}

// readSecret reads a password from its file or its environment variable (field names the pair). The errors
// never carry the value, nor the variable's name or the file's content.
func readSecret(field, file, env string) (string, error) {
	switch {
	case file != "" && env != "":
		return "", fmt.Errorf("'%s_file' and '%s_env' are both set; use one", field, field)
	case env != "":
		v := strings.TrimSpace(os.Getenv(env))
		if v == "" {
			return "", fmt.Errorf("'%s_env': the variable is unset or empty", field)
		}
		return v, nil
	}
	v, err := readSecretFile(file)
	if err != nil {
		return "", fmt.Errorf("'%s_file': %w", field, err)
	}
	return v, nil
}

func readSecretFile(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", errors.New("file is empty")
	}
	return s, nil
}

func loadTLS(t *TLSConfig, addr string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if tc.ServerName == "" && addr != "" {
		tc.ServerName, _, _ = net.SplitHostPort(addr)
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("'redis.tls.ca_file': %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, errors.New("'redis.tls.ca_file' holds no PEM certificate")
		}
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("'redis.tls.cert_file': %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// Node returns this member's name.
func (c *Client) Node() string { return c.node }

// Prefix returns the key prefix.
func (c *Client) Prefix() string { return c.prefix }

// RoundTrip is how long one Redis round trip may take: redis.read_timeout. A member that asks another one
// through the fleet and waits for its answer waits two of them, one each way.
func (c *Client) RoundTrip() time.Duration { return c.cfg.ReadTimeout }

// Close stops the member's goroutines and closes its connections. Calls after Close fail with ErrUnavailable.
func (c *Client) Close() {
	c.cancel()
	c.wg.Wait()
	c.down.Store(true)
	if b := c.rc.Swap(nil); b != nil {
		b.c.Close()
	}
}

// client returns the rueidis client, creating it when an earlier attempt failed.
func (c *Client) client() rueidis.Client {
	if b := c.rc.Load(); b != nil {
		return b.c
	}
	if c.ctx.Err() != nil {
		return nil
	}
	rc, err := rueidis.NewClient(c.opt)
	if rc == nil {
		c.setHealth(partConn, "connect: "+errString(err))
		return nil
	}
	// A standalone client comes back even when the first dial failed; it dials again on use.
	if !c.rc.CompareAndSwap(nil, &rueidisBox{rc}) {
		rc.Close()
	}
	return c.rc.Load().c
}

// conn is the fast path of every call: the client, unless Redis is known to be unreachable.
func (c *Client) conn() (rueidis.Client, error) {
	if c.down.Load() {
		return nil, ErrUnavailable
	}
	b := c.rc.Load()
	if b == nil {
		return nil, ErrUnavailable
	}
	return b.c, nil
}

// timeout bounds a call by read_timeout unless the caller's context already carries a deadline, which saves
// the timer's allocations on callers that set their own.
func (c *Client) timeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, noCancel
	}
	return context.WithTimeout(ctx, c.cfg.ReadTimeout)
}

func noCancel() {}

// hgetall reads the hash at key whole, op naming the call in errors.
func (c *Client) hgetall(ctx context.Context, op, key string) (map[string]string, error) {
	rc, err := c.conn()
	if err != nil {
		return nil, err
	}
	ctx, cancel := c.timeout(ctx)
	defer cancel()
	m, err := rc.Do(ctx, rc.B().Hgetall().Key(key).Build()).AsStrMap()
	if err = c.check(ctx, op, err); err != nil {
		return nil, err
	}
	return m, nil
}

// check turns a command's error into the call's error. A Redis error reply is the caller's problem (a bug, a
// full list); anything else (connection refused, reset, timeout) means Redis is unreachable: the member turns
// degraded at once, so that the following calls fail fast until a ping succeeds.
func (c *Client) check(ctx context.Context, op string, err error) error {
	if err == nil || rueidis.IsRedisNil(err) {
		return nil
	}
	c.m.commandErrors.Inc()
	if _, ok := rueidis.IsRedisErr(err); ok {
		return fmt.Errorf("%s: %w", op, err)
	}
	if errors.Is(err, context.Canceled) && ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		// The caller gave up; that says nothing about Redis.
		return fmt.Errorf("%s: %w", op, err)
	}
	c.setHealth(partConn, op+": "+err.Error())
	return fmt.Errorf("%s: %w: %w", op, ErrUnavailable, err)
}

func errString(err error) string {
	if err == nil {
		return "unknown error"
	}
	return err.Error()
}

func (c *Client) pingLoop() {
	defer c.wg.Done()
	t := time.NewTicker(c.cfg.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
			c.ping()
		}
	}
}

// ping is the only way out of a degraded connection: every other call fails fast meanwhile.
func (c *Client) ping() {
	rc := c.client()
	if rc == nil {
		return
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.ReadTimeout)
	err := rc.Do(ctx, rc.B().Ping().Build()).Error()
	cancel()
	if c.ctx.Err() != nil {
		return
	}
	if err != nil {
		c.setHealth(partConn, "ping: "+err.Error())
		return
	}
	c.setHealth(partConn, "")
}

// setHealth records the state of one part; the member is degraded while any part is.
func (c *Client) setHealth(part int, reason string) {
	if part == partConn {
		c.down.Store(reason != "")
	}
	c.hmu.Lock()
	if c.reasons[part] == reason {
		c.hmu.Unlock()
		return
	}
	wasConnDown := c.reasons[partConn] != ""
	c.reasons[part] = reason
	r := c.reasons[partConn]
	if r == "" {
		r = c.reasons[partSub]
	}
	was := c.health
	if r == was.Reason {
		c.hmu.Unlock()
		return
	}
	c.health = Health{Degraded: r != "", Reason: r, Since: time.Now()}
	c.degr.Store(r != "")
	close(c.changed)
	c.changed = make(chan struct{})
	if part == partConn && wasConnDown && reason == "" {
		close(c.healthy)
		c.healthy = make(chan struct{})
	}
	recovered := was.Degraded && r == ""
	if recovered {
		for _, h := range c.hooks {
			h.pending = true
		}
	}
	c.hmu.Unlock()

	switch {
	case recovered:
		c.log.Info("fleet healthy", "degraded_for", time.Since(was.Since).Round(time.Millisecond))
		select {
		case c.kick <- struct{}{}:
		default:
		}
	case !was.Degraded:
		c.log.Warn("fleet degraded", "reason", r)
		c.m.degradedTotal.Inc()
	default:
		c.log.Debug("fleet still degraded", "reason", r)
	}
}

// Degraded reports whether the member is cut off from the fleet. It is one atomic load; see Health for why.
func (c *Client) Degraded() bool { return c.degr.Load() }

// Health returns the member's state with its reason.
func (c *Client) Health() Health {
	c.hmu.Lock()
	defer c.hmu.Unlock()
	return c.health
}

// HealthChanged returns a channel closed at the next change of Health, for waiting on a transition without
// polling.
func (c *Client) HealthChanged() <-chan struct{} {
	c.hmu.Lock()
	defer c.hmu.Unlock()
	return c.changed
}

// connRecovered returns a channel closed when the connection part next recovers.
func (c *Client) connRecovered() <-chan struct{} {
	c.hmu.Lock()
	defer c.hmu.Unlock()
	return c.healthy
}

// OnResync registers fn to run whenever the member becomes healthy: once soon after registration if it is
// healthy then (or at its first connection), and again after every degraded period, since events published
// meanwhile were lost. By then every subscription is live again, so that state loaded in fn misses nothing.
// Callbacks run one at a time on a goroutine of their own; ctx ends with Close. The returned func unregisters.
func (c *Client) OnResync(fn func(ctx context.Context)) (remove func()) {
	h := &resyncHook{fn: fn}
	c.hmu.Lock()
	now := !c.health.Degraded
	h.pending = now
	c.hooks = append(c.hooks, h)
	c.hmu.Unlock()
	if now {
		select {
		case c.kick <- struct{}{}:
		default:
		}
	}
	return func() {
		c.hmu.Lock()
		defer c.hmu.Unlock()
		for i, x := range c.hooks {
			if x == h {
				c.hooks = append(c.hooks[:i:i], c.hooks[i+1:]...)
				break
			}
		}
	}
}

func (c *Client) resyncLoop() {
	defer c.wg.Done()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-c.kick:
		}
		for {
			c.hmu.Lock()
			var next *resyncHook
			for _, h := range c.hooks {
				if h.pending {
					h.pending = false
					next = h
					break
				}
			}
			c.hmu.Unlock()
			if next == nil || c.ctx.Err() != nil {
				break
			}
			c.runHook(next)
		}
	}
}

func (c *Client) runHook(h *resyncHook) {
	defer func() {
		if p := recover(); p != nil {
			c.log.Error("fleet resync callback panicked", "panic", p)
		}
	}()
	c.m.resyncs.Inc()
	h.fn(c.ctx)
}

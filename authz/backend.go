package authz

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"sync/atomic"
	"time"
)

// BackendConfig is one of the operator's middlewares (Ministra/Stalker, IPTVportal, Smarty or their own), which
// keeps working unchanged behind the edge.
type BackendConfig struct {
	// Name appears in metrics and logs. Default `<protocol><index>`.
	Name string `yaml:"name"`
	// Protocol is what the middleware speaks: `astra` (Astra's HTTP Request backend: the viewer's query string
	// plus X-Session-ID, X-Channel-ID, X-Real-IP, X-Real-Path, X-Real-UA and X-Real-Host headers; 200 allows,
	// 401/403 deny, X-Session-Name names the viewer) or `flussonic` (name, proto, ip, token, session_id (a
	// UUID), request_type, request_number, referer, user_agent, qs, stream_clients and total_clients
	// parameters; 200/302 allow, any other 4xx denies with that code; X-AuthDuration, X-UserId,
	// X-Max-Sessions and X-Unique are honoured). Required.
	Protocol string `yaml:"protocol"`
	// URL is the endpoint, http or https. Required.
	URL string `yaml:"url"`
	// Timeout bounds one call, connect to last header byte. Default 3s: the viewer waits for it.
	Timeout time.Duration `yaml:"timeout"`
	// CacheFor is how long an allow is reused when the middleware names no duration (Astra never does).
	// Refusals are reused for auth.cache.deny_ttl. Both are capped by auth.cache.max_ttl. Default 30s.
	CacheFor time.Duration `yaml:"cache_for"`
}

// Backend protocols and group policies.
const (
	ProtocolAstra     = "astra"
	ProtocolFlussonic = "flussonic"
	PolicyDeny        = "deny"
	PolicyAllow       = "allow"
)

const (
	defaultBackendTimeout  = 3 * time.Second
	defaultBackendCacheFor = 30 * time.Second
	defaultBackendStale    = 5 * time.Minute
	maxBackendBody         = 4 << 10
)

func (g *GroupConfig) setGroupPolicyDefaults(i int) {
	if g.OnBackendError == "" {
		g.OnBackendError = PolicyDeny
	}
	if g.Default == "" {
		g.Default = PolicyDeny
	}
	if g.BackendStale == 0 {
		g.BackendStale = defaultBackendStale
	}
	if g.ExpiredStatus == 0 {
		g.ExpiredStatus = http.StatusGone
	}
	if len(g.BackendKey) == 0 && len(g.Backends) > 0 {
		g.BackendKey = []string{KeyQuery, KeyIP}
	}
	if len(g.Backends) > 0 {
		g.Backends = append([]BackendConfig(nil), g.Backends...)
	}
	for j := range g.Backends {
		b := &g.Backends[j]
		if b.Name == "" {
			b.Name = fmt.Sprintf("%s%d", b.Protocol, j)
		}
		if b.Timeout == 0 {
			b.Timeout = defaultBackendTimeout
		}
		if b.CacheFor == 0 {
			b.CacheFor = defaultBackendCacheFor
		}
	}
}

func (g *GroupConfig) validatePolicy(f string) error {
	if g.OnBackendError != PolicyDeny && g.OnBackendError != PolicyAllow {
		return fmt.Errorf("'%s.on_backend_error' must be deny or allow, got %q", f, g.OnBackendError)
	}
	if g.Default != PolicyDeny && g.Default != PolicyAllow {
		return fmt.Errorf("'%s.default' must be deny or allow, got %q", f, g.Default)
	}
	if g.BackendStale < 0 {
		return fmt.Errorf("'%s.backend_stale' must be greater than zero", f)
	}
	if g.ExpiredStatus != http.StatusForbidden && g.ExpiredStatus != http.StatusGone {
		return fmt.Errorf("'%s.expired_status' must be 403 or 410, got %d", f, g.ExpiredStatus)
	}
	if len(g.Backends) > 0 && g.Default == PolicyAllow {
		return fmt.Errorf("'%s.default' must be deny in a group with backends: they decide requests without a token", f)
	}
	if _, err := parseBackendKey(g.BackendKey, len(g.Backends) > 0, f); err != nil {
		return err
	}
	if err := g.Rules.validate(f); err != nil {
		return err
	}
	if len(g.Backends) > 16 {
		return fmt.Errorf("'%s.backends' must list at most 16 backends", f)
	}
	for j, b := range g.Backends {
		bf := fmt.Sprintf("%s.backends[%d]", f, j)
		if b.Protocol != ProtocolAstra && b.Protocol != ProtocolFlussonic {
			return fmt.Errorf("'%s.protocol' must be astra or flussonic, got %q", bf, b.Protocol)
		}
		u, err := url.Parse(b.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Fragment != "" {
			return fmt.Errorf("'%s.url' must be an http(s) URL", bf)
		}
		if b.Timeout <= 0 || b.Timeout > time.Minute {
			return fmt.Errorf("'%s.timeout' must be between 0 and 1m", bf)
		}
		if b.CacheFor < 0 {
			return fmt.Errorf("'%s.cache_for' must be greater than zero", bf)
		}
	}
	return nil
}

// backend speaks one middleware protocol. check returns an error only when there was no answer to act on
// (network, timeout, 5xx); a refusal is an answer.
type backend interface {
	check(ctx context.Context, q *backendQuery) (backendAnswer, error)
}

// backendQuery is a copy of what a middleware is told: the calls outlive the viewer's request buffers when a
// faster backend has already answered.
type backendQuery struct {
	token, channel, path, rawQuery, userAgent, referer, host string
	ip                                                       netip.Addr
	// sessionID names the session the decision is made for: the same for every call made for one cache key,
	// so stable across Flussonic's update_session calls (backend_key.go).
	sessionID uint64
	renew     bool // Flussonic's update_session
	number    int  // Flussonic's request_number
	// streamClients and totalClients are the edge's open sessions on the channel and overall.
	streamClients, totalClients int
}

// backendAnswer is a middleware's decision.
type backendAnswer struct {
	allow       bool
	status      int
	userID      string
	maxSessions int
	unique      bool
	duration    time.Duration // 0: the middleware did not say
}

// backendClient wraps one backend with its limits and counters.
type backendClient struct {
	name, protocol string
	impl           backend
	timeout        time.Duration
	cacheFor       time.Duration
	st             backendStats
}

// latencyBuckets are the upper bounds of the backend latency histogram.
var latencyBuckets = [...]time.Duration{
	5 * time.Millisecond, 10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond, time.Second,
	2500 * time.Millisecond, 5 * time.Second, 10 * time.Second,
}

type backendStats struct {
	calls, allows, denies, errors, timeouts, cancelled atomic.Uint64
	latencyNanos                                       atomic.Int64
	buckets                                            [len(latencyBuckets) + 1]atomic.Uint64
}

func (s *backendStats) observe(d time.Duration) {
	s.latencyNanos.Add(int64(d))
	i := 0
	for i < len(latencyBuckets) && d > latencyBuckets[i] {
		i++
	}
	s.buckets[i].Add(1)
}

func newBackendClient(cfg BackendConfig) *backendClient {
	// A dedicated client per backend: its own connection pool and limits, so a slow middleware cannot starve
	// another one, and nothing else in the process shares its settings.
	dialer := &net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:                  nil,
		DialContext:            dialer.DialContext,
		TLSHandshakeTimeout:    cfg.Timeout,
		ResponseHeaderTimeout:  cfg.Timeout,
		MaxIdleConns:           256,
		MaxIdleConnsPerHost:    256,
		MaxConnsPerHost:        1024,
		IdleConnTimeout:        90 * time.Second,
		MaxResponseHeaderBytes: 64 << 10,
	}
	hc := &http.Client{
		Transport: tr,
		Timeout:   cfg.Timeout,
		// Flussonic's 302 is an allow, not a place to go.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	b := &backendClient{name: cfg.Name, protocol: cfg.Protocol, timeout: cfg.Timeout, cacheFor: cfg.CacheFor}
	switch cfg.Protocol {
	case ProtocolAstra:
		b.impl = &astraBackend{url: cfg.URL, client: hc}
	default:
		b.impl = &flussonicBackend{url: cfg.URL, client: hc}
	}
	return b
}

func (b *backendClient) close() {
	switch c := b.impl.(type) {
	case *astraBackend:
		c.client.CloseIdleConnections()
	case *flussonicBackend:
		c.client.CloseIdleConnections()
	}
}

// call asks this backend within its timeout and counts the outcome.
func (b *backendClient) call(parent context.Context, q *backendQuery) (backendAnswer, error) {
	ctx, cancel := context.WithTimeout(parent, b.timeout)
	defer cancel()
	start := time.Now()
	b.st.calls.Add(1)
	ans, err := b.impl.check(ctx, q)
	b.st.observe(time.Since(start))
	switch {
	case err == nil && ans.allow:
		b.st.allows.Add(1)
		if ans.duration == 0 {
			ans.duration = b.cacheFor
		}
	case err == nil:
		b.st.denies.Add(1)
	case parent.Err() != nil:
		// Another backend allowed first; this one's answer is no longer wanted.
		b.st.cancelled.Add(1)
	case errors.Is(ctx.Err(), context.DeadlineExceeded) || isTimeout(err):
		b.st.timeouts.Add(1)
		b.st.errors.Add(1)
		err = fmt.Errorf("backend %s: no answer within %s: %w", b.name, b.timeout, ErrBackendDown)
	default:
		b.st.errors.Add(1)
		err = fmt.Errorf("backend %s: %w", b.name, withoutURL(err))
	}
	return ans, err
}

// withoutURL drops the request URL from a client error: it holds the viewer's token and query, which must
// never reach a log.
func withoutURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// ask puts the query to every backend of the group at once (Flussonic's multi-auth): the first allow wins and
// cancels the others. Without an allow, the refusal of the first backend in config order that refused stands;
// without any answer, the error. It returns once every call has ended, which a cancelled call does at once: no
// call outlives the request that made it, and each one is counted by then.
func (g *group) ask(q *backendQuery) (backendAnswer, error) {
	if len(g.backends) == 1 {
		return g.backends[0].call(context.Background(), q)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		i   int
		ans backendAnswer
		err error
	}
	ch := make(chan result, len(g.backends))
	for i, b := range g.backends {
		go func() {
			ans, err := b.call(ctx, q)
			ch <- result{i, ans, err}
		}()
	}
	var (
		allow   *backendAnswer
		denial  backendAnswer
		denied  = -1
		lastErr error
	)
	for range g.backends {
		r := <-ch
		switch {
		case allow != nil:
			// A call that lost to the allow below.
		case r.err != nil:
			lastErr = r.err
		case r.ans.allow:
			allow = &r.ans
			cancel()
		case denied < 0 || r.i < denied:
			denial, denied = r.ans, r.i
		}
	}
	switch {
	case allow != nil:
		return *allow, nil
	case denied >= 0:
		return denial, nil
	}
	return backendAnswer{}, lastErr
}

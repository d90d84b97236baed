package proxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// OriginError is a failed origin fetch, already mapped to the status the viewer gets.
type OriginError struct {
	// Status is 502 (unreachable, bad answer, too large), 504 (timed out) or the origin's own 404.
	Status int
	// Reason is the one-line body the viewer gets; it never holds a token or a query string.
	Reason string
	Err    error
}

func (e *OriginError) Error() string {
	if e.Err != nil {
		return e.Reason + ": " + e.Err.Error()
	}
	return e.Reason
}

func (e *OriginError) Unwrap() error { return e.Err }

// upstream is one origin with its own connection pool and passive health.
type upstream struct {
	host string
	// built is what the pool was built from: a reload whose origin and upstream settings match keeps the upstream,
	// its idle connections and its health.
	built upstreamKey
	// client is used as a connection pool only; exchange drives each request (see exchange.go).
	client *fasthttp.HostClient
	// downUntil is unix nanoseconds; while in the future the origin is asked only when all others are down too.
	downUntil atomic.Int64
	// tierKey signs every request to this origin when it is a shield ('origins[].shield'); nil otherwise.
	tierKey []byte
}

// callOpts tunes one origin request.
type callOpts struct {
	// attempt bounds each origin's attempt in place of upstream.timeout when set.
	attempt time.Duration
	// blocking marks an LL-HLS blocking playlist reload, which the origin holds until the part exists: its 503 (the
	// hold ran out) and a wait that runs out once the request is sent are the stream's state, answered 503, not an
	// origin failure that marks it down or asks the next origin.
	blocking bool
}

// holdReason is the viewer's one-line answer when an LL-HLS hold ran out.
const holdReason = "the requested part did not appear in time"

// Upstreams is the ordered list of origins with failover.
type Upstreams struct {
	list    []*upstream
	timeout time.Duration
	downFor time.Duration
	now     func() time.Time
	m       *edgeMetrics
}

// maxOrigins bounds the failover order kept on the stack.
const maxOrigins = 16

// upstreamKey is what an upstream's pool depends on.
type upstreamKey struct {
	host, scheme string
	cfg          UpstreamConfig
	tierKey      string // the shield's signing key; a changed key builds a new upstream
}

// newUpstreams builds the origins of cfg; an origin prev already has with the same settings is kept as it is.
func newUpstreams(cfg *Config, m *edgeMetrics, now func() time.Time, prev *Upstreams) *Upstreams {
	u := &Upstreams{timeout: cfg.Upstream.Timeout, downFor: cfg.Upstream.DownFor, now: now, m: m}
	connect := cfg.Upstream.ConnectTimeout
	for _, o := range cfg.Origins {
		var tierKey []byte
		if o.Shield {
			tierKey = cfg.Tier.key
		}
		key := upstreamKey{host: o.host, scheme: o.scheme, cfg: cfg.Upstream, tierKey: string(tierKey)}
		if prev != nil {
			// An origin listed twice gets two upstreams, as it did before the reload.
			i := slices.IndexFunc(prev.list, func(up *upstream) bool { return up.built == key && !slices.Contains(u.list, up) })
			if i >= 0 {
				u.list = append(u.list, prev.list[i])
				continue
			}
		}
		u.list = append(u.list, &upstream{
			host:    o.host,
			built:   key,
			tierKey: tierKey,
			client: &fasthttp.HostClient{
				Addr:  hostWithPort(o.host, o.scheme),
				IsTLS: o.scheme == "https",
				// timeout is what is left of the attempt; 0 when fasthttp dials for a queued waiter.
				DialTimeout: func(addr string, timeout time.Duration) (net.Conn, error) {
					if timeout <= 0 || timeout > connect {
						timeout = connect
					}
					return fasthttp.DialTimeout(addr, timeout)
				},
				MaxConns:           cfg.Upstream.MaxConnsPerOrigin,
				MaxConnWaitTimeout: cfg.Upstream.Timeout,
				// Bounds the TLS handshake; reads and writes get the attempt's deadline from exchange.
				WriteTimeout:        cfg.Upstream.Timeout,
				MaxIdleConnDuration: 30 * time.Second,
				// Requests go through exchange, never through Do; should anything call Do anyway, it must not
				// retry on its own either.
				MaxIdemponentCallAttempts: 1,
				RetryIfErr:                func(*fasthttp.Request, int, error) (bool, bool) { return false, false },
			},
		})
	}
	return u
}

func hostWithPort(host, scheme string) string {
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	if scheme == "https" {
		return host + ":443"
	}
	return host + ":80"
}

// Do asks the origins for req, healthy ones first in configured order, then those marked down (a recovered
// origin is better than a certain error). Each origin is asked at most once, each attempt is bounded by
// upstream.timeout, and the whole call by deadline (upstream.total_timeout): it fails over on a connection
// error, a timeout, a 5xx or a body that use could not read whole, and stops at the first 404 or other answer.
//
// use gets every 200 answer and owns its body: it must Close it, or hand it on. An error from use that is an
// *OriginError (say, not a playlist) ends the call with that error; any other error is the origin's failure
// (body cut short, stalled) and the next origin is asked.
func (u *Upstreams) Do(req *fasthttp.Request, deadline time.Time, opts callOpts, use func(*originResponse) error) error {
	if len(u.list) == 0 {
		return &OriginError{Status: fasthttp.StatusBadGateway, Reason: "no origin configured"}
	}
	// The order is fixed before the first attempt, so that an origin that fails now and is marked down is not
	// asked a second time as one of the down ones.
	now := u.now().UnixNano()
	var order [maxOrigins]*upstream
	n := 0
	for pass := 0; pass < 2; pass++ {
		for _, up := range u.list {
			if down := up.downUntil.Load() > now; down == (pass == 1) && n < len(order) {
				order[n] = up
				n++
			}
		}
	}
	var last error
	for _, up := range order[:n] {
		start := time.Now()
		if !start.Before(deadline) {
			if last == nil {
				last = &OriginError{Status: fasthttp.StatusGatewayTimeout, Reason: "origin timed out", Err: fasthttp.ErrTimeout}
			}
			break
		}
		timeout := u.timeout
		if opts.attempt > 0 {
			timeout = opts.attempt
		}
		attempt := start.Add(timeout)
		if deadline.Before(attempt) {
			attempt = deadline
		}
		failed, err := u.try(up, req, attempt, opts, use)
		u.m.originLatency(up.host).UpdateDuration(start)
		if !failed {
			return err
		}
		last = err
		up.downUntil.Store(u.now().Add(u.downFor).UnixNano())
	}
	return last
}

// try is one attempt on one origin. failed reports an origin failure that calls for the next origin.
func (u *Upstreams) try(up *upstream, req *fasthttp.Request, deadline time.Time, opts callOpts, use func(*originResponse) error) (failed bool, err error) {
	req.SetHost(up.host)
	if up.tierKey != nil {
		// Signed per attempt: the time is the attempt's, and only a shield gets the header.
		signTier(&req.Header, up.tierKey, req.Header.Method(), req.URI().RequestURI(), u.now())
	} else {
		req.Header.Del(tierHeader)
	}
	resp, err := exchange(up.client, req, deadline)
	if err != nil {
		err = classifyOriginErr(err)
		u.m.originFetch(up.host, originResult(err)).Inc()
		var oe *OriginError
		if opts.blocking && errors.As(err, &oe) && oe.Status == fasthttp.StatusGatewayTimeout &&
			!errors.Is(err, fasthttp.ErrDialTimeout) {
			// The request was sent and the origin held it past the hold: no part, and no failure either.
			return false, &OriginError{Status: fasthttp.StatusServiceUnavailable, Reason: holdReason, Err: err}
		}
		return true, err
	}
	switch st := resp.header.StatusCode(); {
	case st == fasthttp.StatusOK:
	case opts.blocking && st == fasthttp.StatusServiceUnavailable:
		// The origin's own answer when the part did not appear within its hold (rfc8216bis 6.2.5.2).
		resp.body.discard(64 << 10)
		u.m.originFetch(up.host, "ok").Inc()
		return false, &OriginError{Status: fasthttp.StatusServiceUnavailable, Reason: holdReason}
	case st == fasthttp.StatusNotFound:
		resp.body.discard(64 << 10)
		up.downUntil.Store(0)
		u.m.originFetch(up.host, "ok").Inc()
		return false, &OriginError{Status: fasthttp.StatusNotFound, Reason: "not found on origin"}
	case st >= 500:
		resp.body.discard(64 << 10)
		u.m.originFetch(up.host, "5xx").Inc()
		return true, &OriginError{Status: fasthttp.StatusBadGateway, Reason: fmt.Sprintf("origin answered %d", st)}
	default:
		// A redirect or a refusal is the origin's considered answer; another origin would say the same.
		resp.body.discard(64 << 10)
		up.downUntil.Store(0)
		u.m.originFetch(up.host, "ok").Inc()
		return false, &OriginError{Status: fasthttp.StatusBadGateway, Reason: fmt.Sprintf("origin answered %d", st)}
	}
	err = use(resp)
	var oe *OriginError
	switch {
	case err == nil:
		up.downUntil.Store(0)
		u.m.originFetch(up.host, "ok").Inc()
		return false, nil
	case errors.As(err, &oe):
		u.m.originFetch(up.host, "ok").Inc()
		return false, err
	}
	err = classifyOriginErr(err)
	u.m.originFetch(up.host, originResult(err)).Inc()
	return true, err
}

func originResult(err error) string {
	var oe *OriginError
	switch {
	case errors.Is(err, errIncomplete):
		return "incomplete"
	case errors.As(err, &oe) && oe.Status == fasthttp.StatusGatewayTimeout:
		return "timeout"
	}
	return "error"
}

// classifyOriginErr maps a client error to the viewer's status: 504 when the origin was too slow, 502 otherwise.
func classifyOriginErr(err error) error {
	var ne net.Error
	switch {
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, fasthttp.ErrDialTimeout),
		errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return &OriginError{Status: fasthttp.StatusGatewayTimeout, Reason: "origin timed out", Err: err}
	case errors.Is(err, errIncomplete):
		return &OriginError{Status: fasthttp.StatusBadGateway, Reason: "origin response incomplete", Err: err}
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		return &OriginError{Status: fasthttp.StatusBadGateway, Reason: "origin connection pool exhausted", Err: err}
	case errors.Is(err, syscall.ECONNREFUSED):
		return &OriginError{Status: fasthttp.StatusBadGateway, Reason: "origin refused connection", Err: err}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
		return &OriginError{Status: fasthttp.StatusBadGateway, Reason: "origin closed the connection", Err: err}
	default:
		return &OriginError{Status: fasthttp.StatusBadGateway, Reason: "origin unreachable", Err: err}
	}
}

// Health reports each origin and whether it is currently marked down.
func (u *Upstreams) Health() []OriginHealth {
	now := u.now().UnixNano()
	out := make([]OriginHealth, 0, len(u.list))
	for _, up := range u.list {
		out = append(out, OriginHealth{Host: up.host, Up: up.downUntil.Load() <= now})
	}
	return out
}

// OriginHealth is one origin's passive health.
type OriginHealth struct {
	Host string `json:"host"`
	Up   bool   `json:"up"`
}

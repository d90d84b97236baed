package proxy

import (
	"errors"
	"fmt"
	"net"
	"os"
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
	host   string
	client *fasthttp.HostClient
	// downUntil is unix nanoseconds; while in the future the origin is asked only when all others are down too.
	downUntil atomic.Int64
}

// Upstreams is the ordered list of origins with failover.
type Upstreams struct {
	list    []*upstream
	timeout time.Duration
	downFor time.Duration
	now     func() time.Time
	m       *edgeMetrics
}

func newUpstreams(cfg *Config, m *edgeMetrics, now func() time.Time) *Upstreams {
	u := &Upstreams{timeout: cfg.Upstream.Timeout, downFor: cfg.Upstream.DownFor, now: now, m: m}
	connect := cfg.Upstream.ConnectTimeout
	for _, o := range cfg.Origins {
		u.list = append(u.list, &upstream{
			host: o.host,
			client: &fasthttp.HostClient{
				Addr:  hostWithPort(o.host, o.scheme),
				IsTLS: o.scheme == "https",
				Dial: func(addr string) (net.Conn, error) {
					return fasthttp.DialTimeout(addr, connect)
				},
				MaxConns:            cfg.Upstream.MaxConnsPerOrigin,
				MaxConnWaitTimeout:  cfg.Upstream.Timeout,
				ReadTimeout:         cfg.Upstream.Timeout,
				WriteTimeout:        cfg.Upstream.Timeout,
				MaxIdleConnDuration: 30 * time.Second,
				// Bodies above the object limit arrive as a stream, so a huge origin answer is never buffered.
				StreamResponseBody:            true,
				MaxResponseBodySize:           int(cfg.Cache.MaxObjectSize),
				NoDefaultUserAgentHeader:      true,
				DisableHeaderNamesNormalizing: false,
				// The edge already validated and built the origin path; fasthttp must not re-interpret it.
				DisablePathNormalizing: true,
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

// Do sends req to the first healthy origin and fails over to the next on a connection error, a timeout or a 5xx.
// On success it returns the answer (its body may be a stream: finish it with releaseResponse or abandonResponse).
func (u *Upstreams) Do(req *fasthttp.Request) (*fasthttp.Response, error) {
	now := u.now().UnixNano()
	var last error
	tried := 0
	// Healthy origins first, in configured order; then, if all of them failed, the ones marked down, because a
	// recovered origin is better than a certain error.
	for pass := 0; pass < 2; pass++ {
		for _, up := range u.list {
			down := up.downUntil.Load() > now
			if down != (pass == 1) {
				continue
			}
			tried++
			req.SetHost(up.host)
			start := u.now()
			// A fresh response per attempt: an abandoned one still owns its closed stream.
			resp := fasthttp.AcquireResponse()
			err := up.client.DoTimeout(req, resp, u.timeout)
			u.m.originLatency(up.host).UpdateDuration(start)
			if err == nil && resp.StatusCode() < 500 {
				up.downUntil.Store(0)
				u.m.originFetch(up.host, "ok").Inc()
				return resp, nil
			}
			if err == nil {
				last = &OriginError{Status: fasthttp.StatusBadGateway, Reason: fmt.Sprintf("origin answered %d", resp.StatusCode())}
				abandonResponse(resp)
				u.m.originFetch(up.host, "5xx").Inc()
			} else {
				fasthttp.ReleaseResponse(resp)
				last = classifyOriginErr(err)
				u.m.originFetch(up.host, originResult(last)).Inc()
			}
			up.downUntil.Store(u.now().Add(u.downFor).UnixNano())
		}
	}
	if tried == 0 {
		return nil, &OriginError{Status: fasthttp.StatusBadGateway, Reason: "no origin configured"}
	}
	return nil, last
}

func originResult(err error) string {
	var oe *OriginError
	if errors.As(err, &oe) && oe.Status == fasthttp.StatusGatewayTimeout {
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
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		return &OriginError{Status: fasthttp.StatusBadGateway, Reason: "origin connection pool exhausted", Err: err}
	case errors.Is(err, syscall.ECONNREFUSED):
		return &OriginError{Status: fasthttp.StatusBadGateway, Reason: "origin refused connection", Err: err}
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

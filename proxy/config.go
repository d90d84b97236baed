package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/hlsedge/hlsedge/authz"
	"github.com/hlsedge/hlsedge/internal/fleet"
	"github.com/hlsedge/hlsedge/proxy/admin"
	"github.com/hlsedge/hlsedge/proxy/certs"
	"github.com/hlsedge/hlsedge/signaling"
)

// Config is the edge's whole configuration, read from YAML. Every field is documented where it is declared and in
// configs/*.yaml. Zero values are replaced by the defaults in Defaults; Validate names the field that is wrong.
type Config struct {
	// Listen is the public address viewers connect to.
	Listen string `yaml:"listen"`
	// TLS serves the public listener over https; omit the section for plain http. See certs.Config.
	TLS *certs.Config `yaml:"tls"`
	// Admin is the operators' listener: status page, /healthz, /metrics, profiles and the admin API; see
	// admin.Config. Keep it on loopback or a private network: it is the only place metrics are served.
	Admin admin.Config `yaml:"admin"`
	// Origins are tried in order; a failing origin is skipped for Upstream.DownFor and the next one is asked.
	Origins []OriginConfig `yaml:"origins"`
	// Upstream bounds every call to an origin.
	Upstream UpstreamConfig `yaml:"upstream"`
	// Routes map public URL layouts onto origin paths. The first route whose prefix matches wins, so list the
	// longer prefixes first. The channel is the first path segment after the prefix. Every route must lie inside
	// 'auth.protected' (unless 'auth.disabled'): a channel is served openly only by a group with `public: true`.
	Routes []RouteConfig `yaml:"routes"`
	// Cache is the shared edge cache of playlists and segments.
	Cache CacheConfig `yaml:"cache"`
	// Server bounds the public listener.
	Server ServerConfig `yaml:"server"`
	// TrustedProxies lists the peers (IPs or CIDRs) whose X-Forwarded-For is believed. Tokens can be bound to the
	// client IP, so a header from anyone else is ignored and the TCP peer is the client.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// CORS headers on playlists and segments. On by default, as in Astra, because browser players on the
	// operator's site fetch cross-origin.
	CORS CORSConfig `yaml:"cors"`
	// Player is the embeddable web player (/{stream}/embed.html) and its iframe allow-list; see PlayerConfig.
	Player PlayerConfig `yaml:"player"`
	// Auth decides which requests are served; see authz.Config. It must be configured, or switched off with
	// 'auth.disabled: true', so that a forgotten section never leaves the edge open.
	Auth authz.Config `yaml:"auth"`
	// Signaling hosts the conference WebSocket on this same listener; omit the section to turn it off. See
	// signaling.Config for every field.
	Signaling *signaling.Config `yaml:"signaling"`
	// Log controls the operator's logs.
	Log LogConfig `yaml:"log"`
	// Node is this edge's name in logs, metrics, the admin API and the fleet. Default: the hostname. Letters,
	// digits, '.', '_' and '-', at most 64 bytes; every node of a fleet needs its own.
	Node string `yaml:"node"`
	// Redis makes the edge a member of a fleet: bans, kicks, per-user session limits and conferences shared with
	// the other edges through Redis. Omit the section for a single edge (nothing is shared). See fleet.Config
	// for every field.
	Redis *fleet.Config `yaml:"redis"`
	// Tier places the node in a tier of hlsedge nodes: a shield that edges use as their origin, or an edge in front
	// of one (see TierConfig and OriginConfig.Shield).
	Tier TierConfig `yaml:"tier"`

	trusted []netip.Prefix
}

// OriginConfig is one HLS origin (an Astra HTTP output, or any HLS server).
type OriginConfig struct {
	// URL is the origin's base, scheme and host only, e.g. http://10.0.0.5:8000.
	URL string `yaml:"url"`
	// Shield marks the origin as another hlsedge in the shield role ('tier.role: shield'): requests to it carry
	// the tier signature made with 'tier.key' instead of any viewer token, and ask for the same cache keys as
	// this edge's. Map the same origin paths on both tiers ('routes').
	Shield bool `yaml:"shield"`

	host   string
	scheme string
}

// UpstreamConfig bounds calls to origins. fasthttp's client has no limits unless they are set, so every one of
// these has a default.
type UpstreamConfig struct {
	// ConnectTimeout bounds the TCP connect. Default 2s: a dead origin must fail fast so failover can act.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// Timeout bounds one attempt on one origin: connect, response headers and, for objects that are cached, the
	// whole body; for a large object that is streamed, the longest pause between two reads. Default 5s, longer
	// than one live segment so a slow but working origin still serves. Each origin gets one attempt per request:
	// the edge never asks the same origin twice, and never retries on its own.
	Timeout time.Duration `yaml:"timeout"`
	// TotalTimeout bounds the whole origin request of a viewer, failover included: no attempt starts or runs
	// past it, and the viewer gets 504 when it is over. Default Timeout + ConnectTimeout: one slow origin's full
	// attempt plus a dead one's failed connect.
	TotalTimeout time.Duration `yaml:"total_timeout"`
	// MaxConnsPerOrigin caps pooled connections to one origin. Default 512.
	MaxConnsPerOrigin int `yaml:"max_conns_per_origin"`
	// DownFor is how long an origin that failed is skipped (passive health). Default 10s.
	DownFor time.Duration `yaml:"down_for"`
	// MaxHold bounds how long the edge waits on an origin for an LL-HLS blocking playlist reload (_HLS_msn). The
	// origin holds such a request until the part it asks for exists, up to three target durations, so the edge
	// waits that long plus a second, from the target duration of the last playlist it saw of that path, instead of
	// Timeout; never longer than MaxHold, which is also the wait for a playlist it has not seen yet. A hold that
	// runs out is answered 503 and not cached. Default 30s.
	MaxHold time.Duration `yaml:"max_hold"`
}

// RouteConfig maps a public prefix to an origin prefix: PREFIX{channel}/rest -> ORIGIN_PREFIX{channel}/rest.
type RouteConfig struct {
	// Prefix is the public path prefix, ending in "/": "/play/" (Astra) or "/" (Flussonic /{stream}/index.m3u8).
	Prefix string `yaml:"prefix"`
	// OriginPrefix replaces Prefix on the way to the origin. Default: the same as Prefix.
	OriginPrefix string `yaml:"origin_prefix"`
}

// CacheConfig bounds the edge cache.
type CacheConfig struct {
	// MaxBytes bounds the bodies held in memory. Default 256 MiB. Accepts 1048576, "512KiB", "256MiB", "2GiB".
	MaxBytes ByteSize `yaml:"max_bytes"`
	// SegmentTTL is how long a segment stays. Live segments never change once published. Default 2m.
	SegmentTTL time.Duration `yaml:"segment_ttl"`
	// PlaylistTTL micro-caches live playlists. 0 means coalesce only: concurrent misses share one origin fetch
	// but nothing is kept. Default 1s, a third of Astra's 3 s segment.
	PlaylistTTL *time.Duration `yaml:"playlist_ttl"`
	// MaxObjectSize is the largest body buffered and cached; larger segments are streamed to the viewers and not
	// cached, but still fetched once for all the viewers who ask while they stream (see StreamBuffer). Default
	// 16 MiB; at most MaxBytes.
	MaxObjectSize ByteSize `yaml:"max_object_size"`
	// StreamBuffer bounds the memory of one large object being streamed: the bytes between its slowest and its
	// fastest viewer. The fastest viewer sets the pace of the origin fetch; a viewer who falls further behind is
	// cut (its connection is aborted and its player asks again), so one slow viewer holds neither the others nor
	// the edge's memory. A viewer's socket buffers alone take a few MiB before it stalls, so keep this well
	// above that. Default 16 MiB, enough for most of a 4K segment; at least 1 MiB.
	StreamBuffer ByteSize `yaml:"stream_buffer"`
	// PlaylistStaleIfError keeps serving the last good copy of a playlist this long after it went stale, while
	// the origin fails (refused, timed out, 5xx, cut short), so players ride out an origin blip instead of
	// stalling; the answer carries an Age header. After the window, the viewer gets 502/504. A 404 is never
	// covered. 0 turns it off. Default 10s, a few target durations of a 3 s live stream.
	PlaylistStaleIfError *time.Duration `yaml:"playlist_stale_if_error"`
	// MaxPlaylistSize is the largest playlist accepted from an origin; a larger one is answered 502, because a
	// playlist must be buffered to be rewritten. Default 4 MiB.
	MaxPlaylistSize ByteSize `yaml:"max_playlist_size"`
}

// ServerConfig bounds the public listener. fasthttp's server has no timeouts unless they are set.
type ServerConfig struct {
	// ReadTimeout bounds reading one request, headers and body. Default 10s.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// WriteTimeout bounds writing one response. Default 60s: a large segment to a slow set-top box takes a while.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// IdleTimeout closes keep-alive connections idle this long. Default 60s.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// MaxConns caps concurrent connections. Default 100000.
	MaxConns int `yaml:"max_conns"`
	// ReadBufferSize is the per-connection read buffer, which also bounds the request line and headers: long
	// JWTs in URLs need room. Every open WebSocket keeps one, so it is also the knob for signaling memory.
	// Default 8192.
	ReadBufferSize int `yaml:"read_buffer_size"`
	// WriteBufferSize is the per-response write buffer, taken from a pool only while a response is being written.
	// Default 64 KiB: on loopback a 220 KB segment went out 50% faster than with fasthttp's 4 KiB default (the
	// writes then match the 64 KiB loopback segment size). Memory is this much per response in flight, so lower
	// it on an edge with many slow viewers and little RAM.
	WriteBufferSize ByteSize `yaml:"write_buffer_size"`
	// MaxConnsPerIP caps connections from one client address; 0 means no cap (the default, since many viewers
	// share one carrier-grade NAT address). A connection over the cap gets a 429 and is closed.
	MaxConnsPerIP int `yaml:"max_conns_per_ip"`
	// ShutdownTimeout bounds the graceful shutdown on SIGTERM. Default 10s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// YieldAfterResponse lets a keep-alive connection yield the processor once after a response that went out
	// in one write, before it reads the next request: on a busy edge a close client's next request has often
	// arrived by then, and one read(2) gets it instead of a failed read, a wait in the poller and a second read.
	// Each connection backs off from yields that do not pay (proxy/yield.go); TLS connections do not yield.
	// Default true; false measures the edge without it.
	YieldAfterResponse *bool `yaml:"yield_after_response"`
}

func (c *ServerConfig) yieldAfterResponse() bool {
	return c.YieldAfterResponse == nil || *c.YieldAfterResponse
}

// CORSConfig is the cross-origin policy of playlists and segments.
type CORSConfig struct {
	// Disabled turns CORS headers off.
	Disabled bool `yaml:"disabled"`
	// AllowOrigins lists the allowed page origins ("https://tv.example.com"); "*" allows any. Default ["*"].
	AllowOrigins []string `yaml:"allow_origins"`
	// MaxAge is how long browsers may cache a preflight answer. Default 10m.
	MaxAge time.Duration `yaml:"max_age"`
}

// LogConfig is the operator's logging.
type LogConfig struct {
	// Level is debug, info, warn or error. Default info.
	Level string `yaml:"level"`
	// Format is json or text. Default json.
	Format string `yaml:"format"`
	// Access turns on one JSON line per request. Tokens are never logged: only the path, never the query.
	Access bool `yaml:"access"`
}

// ByteSize is a size in bytes that YAML may write as a number or with a binary suffix.
type ByteSize int64

// UnmarshalYAML accepts 1048576, "1048576", "512KiB", "256MiB", "2GiB" (and KB/MB/GB as the same binary units).
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// ParseByteSize parses a byte count with an optional binary suffix.
func ParseByteSize(s string) (ByteSize, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a byte size (use a number or e.g. 256MiB)", s)
	}
	return ByteSize(n * mult), nil
}

// LoadConfig reads a YAML file. Unknown fields are errors, because a misspelt field silently taking its default
// is how an edge ends up open.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return ParseConfig(data)
}

// ParseConfig decodes YAML strictly; call SetDefaults and Validate after applying command-line overrides.
func ParseConfig(data []byte) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("parsing config: %w", err)
	}
	return &c, nil
}

// SetDefaults fills every unset field.
func (c *Config) SetDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8080"
	}
	c.Admin.SetDefaults()
	def(&c.Upstream.ConnectTimeout, 2*time.Second)
	def(&c.Upstream.Timeout, 5*time.Second)
	def(&c.Upstream.DownFor, 10*time.Second)
	def(&c.Upstream.MaxHold, 30*time.Second)
	def(&c.Upstream.TotalTimeout, c.Upstream.Timeout+c.Upstream.ConnectTimeout)
	if c.Upstream.MaxConnsPerOrigin == 0 {
		c.Upstream.MaxConnsPerOrigin = 512
	}
	if len(c.Routes) == 0 {
		c.Routes = []RouteConfig{{Prefix: "/play/"}}
	}
	for i := range c.Routes {
		if c.Routes[i].OriginPrefix == "" {
			c.Routes[i].OriginPrefix = c.Routes[i].Prefix
		}
	}
	if c.Cache.MaxBytes == 0 {
		c.Cache.MaxBytes = 256 << 20
	}
	def(&c.Cache.SegmentTTL, 2*time.Minute)
	if c.Cache.PlaylistTTL == nil {
		d := time.Second
		c.Cache.PlaylistTTL = &d
	}
	if c.Cache.MaxObjectSize == 0 {
		c.Cache.MaxObjectSize = 16 << 20
	}
	if c.Cache.MaxPlaylistSize == 0 {
		c.Cache.MaxPlaylistSize = 4 << 20
	}
	if c.Cache.StreamBuffer == 0 {
		c.Cache.StreamBuffer = 16 << 20
	}
	if c.Cache.PlaylistStaleIfError == nil {
		d := 10 * time.Second
		c.Cache.PlaylistStaleIfError = &d
	}
	def(&c.Server.ReadTimeout, 10*time.Second)
	def(&c.Server.WriteTimeout, 60*time.Second)
	def(&c.Server.IdleTimeout, 60*time.Second)
	def(&c.Server.ShutdownTimeout, 10*time.Second)
	if c.Server.YieldAfterResponse == nil {
		// Set rather than read as nil, so that a reload compares the value and not whether it was written.
		c.Server.YieldAfterResponse = new(true)
	}
	if c.Server.ReadBufferSize == 0 {
		c.Server.ReadBufferSize = 8192
	}
	if c.Server.WriteBufferSize == 0 {
		c.Server.WriteBufferSize = 64 << 10
	}
	if c.Signaling != nil {
		c.Signaling.SetDefaults()
	}
	if c.TLS != nil {
		c.TLS.SetDefaults()
	}
	if c.Server.MaxConns == 0 {
		c.Server.MaxConns = 100000
	}
	if len(c.CORS.AllowOrigins) == 0 {
		c.CORS.AllowOrigins = []string{"*"}
	}
	def(&c.CORS.MaxAge, 10*time.Minute)
	c.Player.SetDefaults(c.CORS.AllowOrigins)
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "json"
	}
}

// Validate checks every field and names the first one that is wrong.
func (c *Config) Validate() error {
	positive := func(name string, d time.Duration) error {
		if d <= 0 {
			return fmt.Errorf("'%s' must be greater than zero", name)
		}
		return nil
	}
	if _, err := netip.ParseAddrPort(c.Listen); err != nil && !strings.HasPrefix(c.Listen, ":") {
		return fmt.Errorf("'listen' must be host:port with an IP address, got %q", c.Listen)
	}
	if len(c.Origins) == 0 {
		return errors.New("'origins' must list at least one origin")
	}
	if len(c.Origins) > maxOrigins {
		return fmt.Errorf("'origins' must list at most %d origins", maxOrigins)
	}
	for i := range c.Origins {
		o := &c.Origins[i]
		u, err := url.Parse(o.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("'origins[%d].url' must be an http(s) URL with a host, got %q", i, o.URL)
		}
		if u.Path != "" && u.Path != "/" || u.RawQuery != "" {
			return fmt.Errorf("'origins[%d].url' must be scheme and host only; map paths with 'routes', got %q", i, o.URL)
		}
		o.scheme, o.host = u.Scheme, u.Host
	}
	for _, f := range []struct {
		name string
		d    time.Duration
	}{
		{"upstream.connect_timeout", c.Upstream.ConnectTimeout},
		{"upstream.timeout", c.Upstream.Timeout},
		{"upstream.total_timeout", c.Upstream.TotalTimeout},
		{"upstream.down_for", c.Upstream.DownFor},
		{"upstream.max_hold", c.Upstream.MaxHold},
		{"cache.segment_ttl", c.Cache.SegmentTTL},
		{"server.read_timeout", c.Server.ReadTimeout},
		{"server.write_timeout", c.Server.WriteTimeout},
		{"server.idle_timeout", c.Server.IdleTimeout},
		{"server.shutdown_timeout", c.Server.ShutdownTimeout},
	} {
		if err := positive(f.name, f.d); err != nil {
			return err
		}
	}
	if c.Cache.PlaylistTTL != nil && *c.Cache.PlaylistTTL < 0 {
		return errors.New("'cache.playlist_ttl' must not be negative (0 means coalesce only)")
	}
	if c.Upstream.MaxConnsPerOrigin < 0 {
		return errors.New("'upstream.max_conns_per_origin' must be greater than zero")
	}
	if c.Cache.MaxBytes < 1<<20 {
		return errors.New("'cache.max_bytes' must be at least 1MiB")
	}
	if c.Cache.MaxObjectSize <= 0 || c.Cache.MaxObjectSize > c.Cache.MaxBytes {
		return errors.New("'cache.max_object_size' must be greater than zero and at most 'cache.max_bytes'")
	}
	if c.Cache.MaxPlaylistSize <= 0 {
		return errors.New("'cache.max_playlist_size' must be greater than zero")
	}
	if c.Cache.StreamBuffer < 1<<20 {
		// Less would cut viewers for what their own socket buffers hold.
		return errors.New("'cache.stream_buffer' must be at least 1MiB")
	}
	if c.Cache.PlaylistStaleIfError != nil && *c.Cache.PlaylistStaleIfError < 0 {
		return errors.New("'cache.playlist_stale_if_error' must not be negative (0 turns it off)")
	}
	for i, r := range c.Routes {
		if !strings.HasPrefix(r.Prefix, "/") || !strings.HasSuffix(r.Prefix, "/") {
			return fmt.Errorf("'routes[%d].prefix' must start and end with '/', got %q", i, r.Prefix)
		}
		if !strings.HasPrefix(r.OriginPrefix, "/") || !strings.HasSuffix(r.OriginPrefix, "/") {
			return fmt.Errorf("'routes[%d].origin_prefix' must start and end with '/', got %q", i, r.OriginPrefix)
		}
	}
	c.trusted = c.trusted[:0]
	for i, s := range c.TrustedProxies {
		p, err := parsePrefix(s)
		if err != nil {
			return fmt.Errorf("'trusted_proxies[%d]' must be an IP or CIDR, got %q", i, s)
		}
		c.trusted = append(c.trusted, p)
	}
	if err := c.Admin.Validate(); err != nil {
		return err
	}
	if err := c.Tier.validate(c.Origins); err != nil {
		return err
	}
	if err := c.Auth.Validate(); err != nil {
		return err
	}
	if c.TLS != nil {
		if err := c.TLS.Validate(); err != nil {
			return err
		}
	}
	if err := c.checkRoutesProtected(); err != nil {
		return err
	}
	if err := c.Player.Validate(); err != nil {
		return err
	}
	if c.Server.ReadBufferSize < 1024 {
		return errors.New("'server.read_buffer_size' must be at least 1024")
	}
	if c.Server.WriteBufferSize < 1024 || c.Server.WriteBufferSize > 16<<20 {
		return errors.New("'server.write_buffer_size' must be between 1KiB and 16MiB")
	}
	if c.Signaling != nil {
		if err := c.Signaling.Validate(); err != nil {
			return err
		}
	}
	if c.Node != "" {
		if _, err := fleet.NodeName(c.Node); err != nil {
			return err
		}
	}
	if c.Redis != nil {
		if err := c.Redis.Validate(); err != nil {
			return err
		}
		if !c.Auth.Disabled && c.Auth.Edge.Secret == "" && c.Auth.Edge.SecretFile == "" {
			// A random key per process: one node's child links and session ids would mean nothing to the others.
			return errors.New("'auth.edge.secret' or 'auth.edge.secret_file' must be set with 'redis': every node of a fleet verifies the others' child tokens")
		}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("'log.level' must be debug, info, warn or error, got %q", c.Log.Level)
	}
	switch c.Log.Format {
	case "json", "text":
	default:
		return fmt.Errorf("'log.format' must be json or text, got %q", c.Log.Format)
	}
	return nil
}

// checkRoutesProtected refuses a route that 'auth.protected' does not cover entirely. Such a route used to be
// served without a token and nothing said so; protection is the default, and openness is said per channel with a
// public group, where it shows.
func (c *Config) checkRoutesProtected() error {
	if c.Auth.Disabled {
		return nil
	}
	a := c.Auth
	a.SetDefaults()
	for i, r := range c.Routes {
		covered := false
		for _, p := range a.Protected {
			if strings.HasPrefix(r.Prefix, p) {
				covered = true
				break
			}
		}
		if !covered {
			return fmt.Errorf("'routes[%d].prefix' %q is outside 'auth.protected' %q, so it would be served without a token; "+
				"add it to 'auth.protected' and serve open channels through a group with 'public: true'", i, r.Prefix, a.Protected)
		}
	}
	return nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

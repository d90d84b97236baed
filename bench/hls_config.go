package bench

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/hlsedge/hlsedge/bench/synthorigin"
)

// ErrInvalidConfig is wrapped by every configuration validation error of this package.
var ErrInvalidConfig = errors.New("invalid config")

// Variant choices for viewers that load a master playlist.
const (
	VariantLowest  = "lowest"
	VariantHighest = "highest"
	VariantRandom  = "random"
)

// HLSConfig configures a run of simulated HLS viewers.
type HLSConfig struct {
	// URL is the master or media playlist every viewer opens; any token in it is used as given. With Mint it is
	// a template: "{channel}" is replaced by the viewer's channel and the minted token is added to the query.
	URL string
	// Edges are the base URLs (http://host:port) of several edges: viewer i opens URL on Edges[i % len(Edges)],
	// URL's own scheme and host replaced, and the report shows each edge's share. Empty: URL as it is.
	Edges []string
	// LL makes the viewers low-latency HLS players: after the first playlist each one asks for the next part
	// with a blocking playlist reload (_HLS_msn, _HLS_part) and fetches the hinted part as soon as the playlist
	// names it, and the report gives part delivery latency. A playlist without CAN-BLOCK-RELOAD and parts is
	// played the regular way.
	LL bool
	// Mint, when set, gives every viewer its own token.
	Mint *MintConfig
	// Viewers is the number of simulated viewers. Required.
	Viewers int
	// Ramp spreads the viewers' starts evenly over this long (default 0: all at once).
	Ramp time.Duration
	// Duration is how long the run lasts from the first start, ramp included. Required.
	Duration time.Duration
	// Variant picks a master playlist's variant: lowest (default), highest or random (by BANDWIDTH).
	Variant string
	// Timeout bounds each request (default 10s).
	Timeout time.Duration
	// MaxConns bounds the shared client's connections per host (default Viewers + 16: one per busy viewer; with
	// LL twice that, since a viewer waits for its next part and its next playlist at once).
	MaxConns int
	// OriginStats is the demo origin's /stats URL; when set the report includes origin offload.
	OriginStats string
	// Interval is the period of the progress line and of the time series (default 1s).
	Interval time.Duration
	// Seed makes random variant choices reproducible (default 1).
	Seed uint64
}

// MintConfig gives every viewer its own token.
type MintConfig struct {
	// Kind is jwt, securetoken or edge. Required.
	Kind string
	// Secret is the HMAC key (jwt), the securetoken key, or the edge token key (at least 32 bytes). Required.
	Secret string
	// Channels are dealt to viewers round robin and replace "{channel}" in the URL. Required.
	Channels []string
	// Param is the query parameter that carries the token (default "token").
	Param string
	// TTL is each token's lifetime (default the run's duration plus one hour).
	TTL time.Duration
	// Alg is the JWT algorithm: HS256 (default), HS384 or HS512.
	Alg string
	// IP binds tokens to a client address (securetoken's ip, the JWT ip claim, the edge token IP). Empty: unbound.
	IP string
}

// Validate reports the first invalid field, by its name.
func (c *HLSConfig) Validate() error {
	// Edges first: without --url, the URL is made from the first edge.
	if err := validateEdges(c.Edges, "http", "https"); err != nil {
		return err
	}
	if c.URL == "" {
		return fmt.Errorf("%w: 'url' is required", ErrInvalidConfig)
	}
	if !strings.HasPrefix(c.URL, "http://") && !strings.HasPrefix(c.URL, "https://") {
		return fmt.Errorf("%w: 'url' must be an http:// or https:// URL", ErrInvalidConfig)
	}
	if c.Viewers <= 0 {
		return fmt.Errorf("%w: 'viewers' must be greater than zero", ErrInvalidConfig)
	}
	if c.Duration <= 0 {
		return fmt.Errorf("%w: 'duration' must be greater than zero", ErrInvalidConfig)
	}
	if c.Ramp < 0 || c.Ramp > c.Duration {
		return fmt.Errorf("%w: 'ramp' must be between zero and 'duration'", ErrInvalidConfig)
	}
	switch c.Variant {
	case "", VariantLowest, VariantHighest, VariantRandom:
	default:
		return fmt.Errorf("%w: 'variant' must be one of lowest, highest, random (got %q)", ErrInvalidConfig, c.Variant)
	}
	if c.Timeout < 0 {
		return fmt.Errorf("%w: 'timeout' must be greater than zero", ErrInvalidConfig)
	}
	if c.MaxConns < 0 {
		return fmt.Errorf("%w: 'maxConns' must not be negative", ErrInvalidConfig)
	}
	if c.Interval < 0 || c.Interval > 0 && c.Interval < 10*time.Millisecond {
		return fmt.Errorf("%w: 'interval' must be at least 10ms", ErrInvalidConfig)
	}
	if c.OriginStats != "" && !strings.HasPrefix(c.OriginStats, "http://") && !strings.HasPrefix(c.OriginStats, "https://") {
		return fmt.Errorf("%w: 'originStats' must be an http:// or https:// URL", ErrInvalidConfig)
	}
	if c.Mint != nil {
		return c.Mint.validate(c.URL)
	}
	return nil
}

func (m *MintConfig) validate(url string) error {
	switch m.Kind {
	case "jwt", "securetoken", "edge":
	default:
		return fmt.Errorf("%w: 'mint.kind' must be one of jwt, securetoken, edge (got %q)", ErrInvalidConfig, m.Kind)
	}
	if m.Secret == "" {
		return fmt.Errorf("%w: 'mint.secret' is required", ErrInvalidConfig)
	}
	if m.Kind == "edge" && len(m.Secret) < 32 {
		return fmt.Errorf("%w: 'mint.secret' must be at least 32 bytes for edge tokens", ErrInvalidConfig)
	}
	if len(m.Channels) == 0 {
		return fmt.Errorf("%w: 'mint.channels' must not be empty", ErrInvalidConfig)
	}
	for i, ch := range m.Channels {
		if !synthorigin.ValidChannelID(ch) {
			return fmt.Errorf("%w: 'mint.channels[%d]' %q must be letters, digits, '-' or '_'", ErrInvalidConfig, i, ch)
		}
	}
	if len(m.Channels) > 1 && !strings.Contains(url, "{channel}") {
		return fmt.Errorf("%w: 'url' must contain {channel} when minting for several channels", ErrInvalidConfig)
	}
	if m.TTL < 0 {
		return fmt.Errorf("%w: 'mint.ttl' must be greater than zero", ErrInvalidConfig)
	}
	switch m.Alg {
	case "", "HS256", "HS384", "HS512":
	default:
		return fmt.Errorf("%w: 'mint.alg' must be HS256, HS384 or HS512", ErrInvalidConfig)
	}
	if m.IP != "" {
		if _, err := netip.ParseAddr(m.IP); err != nil {
			return fmt.Errorf("%w: 'mint.ip' %q is not an IP address", ErrInvalidConfig, m.IP)
		}
	}
	return nil
}

func (c HLSConfig) withDefaults() HLSConfig {
	if c.Variant == "" {
		c.Variant = VariantLowest
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	if c.MaxConns == 0 {
		c.MaxConns = c.Viewers + 16
		if c.LL {
			c.MaxConns = 2*c.Viewers + 16
		}
	}
	if c.Interval == 0 {
		c.Interval = time.Second
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Mint != nil {
		m := *c.Mint
		if m.Param == "" {
			m.Param = "token"
		}
		if m.TTL == 0 {
			m.TTL = c.Duration + time.Hour
		}
		if m.Alg == "" {
			m.Alg = "HS256"
		}
		c.Mint = &m
	}
	return c
}

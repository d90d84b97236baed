package fleet

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// Config is the `redis:` section of the edge configuration. Without it an edge is a fleet of one and nothing
// here runs. Zero values take the defaults named on each field; Validate names the first field that is wrong,
// with its full YAML path.
type Config struct {
	// Address is the Redis server, host:port. Required unless Sentinel is set.
	Address string `yaml:"address"`
	// PasswordFile holds the password (AUTH), surrounding whitespace trimmed. Empty: no AUTH. The password is
	// never accepted inline, so that it cannot end up in a config that is pasted somewhere.
	PasswordFile string `yaml:"password_file"`
	// PasswordEnv names an environment variable holding the password instead (systemd's EnvironmentFile, a
	// container's secrets). At most one of password_file and password_env.
	PasswordEnv string `yaml:"password_env"`
	// DB is the database number (SELECT). Default 0.
	DB int `yaml:"db"`
	// Prefix starts every key and channel, so that several fleets or applications can share one Redis.
	// Default "hlsedge:".
	Prefix string `yaml:"prefix"`
	// DialTimeout bounds connecting, TLS handshake and AUTH included. Default 2s.
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// ReadTimeout bounds one command's round trip when the caller set no deadline; a kick of a session another
	// member holds waits two of them for that member's answer. Default 1s.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// WriteTimeout bounds writing to a connection and the keep-alive ping on it; a connection that misses it is
	// closed and dialled again. Default 3s.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// PingInterval is how often the member checks that Redis answers. A missed ping marks the fleet degraded
	// (calls fail fast, callers count locally); the first answer after that re-syncs. Default 1s.
	PingInterval time.Duration `yaml:"ping_interval"`
	// ProbeInterval is how often a probe message is published to the member's own subscription. A probe that
	// has not come back when the next one is due means the subscription stalled silently (publishes succeed,
	// nothing is delivered, as after a Sentinel failover), and it is reconnected. Default 5s.
	ProbeInterval time.Duration `yaml:"probe_interval"`
	// TLS encrypts the connections to Redis (and to the sentinels). Omit it for plain TCP.
	TLS *TLSConfig `yaml:"tls"`
	// Sentinel finds the master through Redis Sentinel; Address is then ignored.
	Sentinel *SentinelConfig `yaml:"sentinel"`
}

// TLSConfig is the client side of TLS to Redis.
type TLSConfig struct {
	// CAFile holds the PEM certificates that sign the server's. Empty: the system roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are the client certificate and key (PEM), for servers that ask for one
	// (tls-auth-clients). Both or neither.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName is the name the server's certificate must carry. Default: the host of the address.
	ServerName string `yaml:"server_name"`
}

// SentinelConfig finds the current master through Redis Sentinel and follows its failovers.
type SentinelConfig struct {
	// MasterName is the name the sentinels monitor the master under. Required.
	MasterName string `yaml:"master_name"`
	// Addresses are the sentinels, host:port each. At least one.
	Addresses []string `yaml:"addresses"`
	// PasswordFile holds the sentinels' own password, surrounding whitespace trimmed. Empty: no AUTH.
	PasswordFile string `yaml:"password_file"`
	// PasswordEnv names an environment variable holding it instead; at most one of the two.
	PasswordEnv string `yaml:"password_env"`
}

// Defaults.
const (
	DefaultPrefix        = "hlsedge:"
	defaultDialTimeout   = 2 * time.Second
	defaultReadTimeout   = time.Second
	defaultWriteTimeout  = 3 * time.Second
	defaultPingInterval  = time.Second
	defaultProbeInterval = 5 * time.Second
	maxPrefixBytes       = 64
	maxNodeBytes         = 64
)

// SetDefaults fills zero values. Validate and New call it on a copy, so callers need not.
func (c *Config) SetDefaults() {
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = defaultDialTimeout
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = defaultReadTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = defaultWriteTimeout
	}
	if c.PingInterval == 0 {
		c.PingInterval = defaultPingInterval
	}
	if c.ProbeInterval == 0 {
		c.ProbeInterval = defaultProbeInterval
	}
}

// Validate checks the section after applying the defaults to a copy.
func (c Config) Validate() error {
	c.SetDefaults()
	return c.validate()
}

func (c *Config) validate() error {
	if c.Sentinel == nil {
		if err := checkHostPort(c.Address); err != nil {
			return fmt.Errorf("'redis.address' must be host:port: %w", err)
		}
	} else {
		s := c.Sentinel
		if s.MasterName == "" || strings.ContainsFunc(s.MasterName, isSpaceOrControl) {
			return errors.New("'redis.sentinel.master_name' must be set, without spaces")
		}
		if len(s.Addresses) == 0 {
			return errors.New("'redis.sentinel.addresses' must list at least one sentinel")
		}
		for i, a := range s.Addresses {
			if err := checkHostPort(a); err != nil {
				return fmt.Errorf("'redis.sentinel.addresses[%d]' must be host:port: %w", i, err)
			}
		}
	}
	if c.PasswordFile != "" && c.PasswordEnv != "" {
		return errors.New("'redis.password_file' and 'redis.password_env' are both set; use one")
	}
	if s := c.Sentinel; s != nil && s.PasswordFile != "" && s.PasswordEnv != "" {
		return errors.New("'redis.sentinel.password_file' and 'redis.sentinel.password_env' are both set; use one")
	}
	if c.DB < 0 || c.DB > 65535 {
		return fmt.Errorf("'redis.db' must be between 0 and 65535, got %d", c.DB)
	}
	if len(c.Prefix) > maxPrefixBytes || strings.ContainsAny(c.Prefix, "{}") || strings.ContainsFunc(c.Prefix, isSpaceOrControl) {
		// Braces would end the hash tag every key starts with, and split a user's keys over slots.
		return fmt.Errorf("'redis.prefix' must be 1 to %d bytes without braces, spaces or control characters", maxPrefixBytes)
	}
	for _, d := range []struct {
		field    string
		v        time.Duration
		min, max time.Duration
	}{
		{"dial_timeout", c.DialTimeout, 10 * time.Millisecond, time.Minute},
		{"read_timeout", c.ReadTimeout, 10 * time.Millisecond, time.Minute},
		{"write_timeout", c.WriteTimeout, 10 * time.Millisecond, time.Minute},
		{"ping_interval", c.PingInterval, 10 * time.Millisecond, time.Minute},
		{"probe_interval", c.ProbeInterval, 10 * time.Millisecond, 10 * time.Minute},
	} {
		if d.v < d.min || d.v > d.max {
			return fmt.Errorf("'redis.%s' must be between %s and %s, got %s", d.field, d.min, d.max, d.v)
		}
	}
	if t := c.TLS; t != nil && (t.CertFile == "") != (t.KeyFile == "") {
		return errors.New("'redis.tls.cert_file' and 'redis.tls.key_file' must be set together")
	}
	return nil
}

func checkHostPort(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return err
	}
	if host == "" {
		return errors.New("missing host")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("bad port %q", port)
	}
	return nil
}

func isSpaceOrControl(r rune) bool { return r <= ' ' || r == 0x7f }

// NodeName returns the name this edge has in the fleet: the top-level `node:` field, or the hostname when it is
// empty. Names appear in logs, metrics, the admin API and Redis client names, so they are kept to letters,
// digits, '.', '_' and '-'.
func NodeName(configured string) (string, error) {
	name := configured
	if name == "" {
		h, err := os.Hostname()
		if err != nil {
			return "", fmt.Errorf("'node' is empty and the hostname is unknown: %w", err)
		}
		name = h
	}
	if !validNode(name) {
		if configured == "" {
			return "", fmt.Errorf("'node' is empty and the hostname %q is not a valid node name; set 'node'", name)
		}
		return "", fmt.Errorf("'node' must be 1 to %d letters, digits, '.', '_' or '-', got %q", maxNodeBytes, name)
	}
	return name, nil
}

func validNode(s string) bool {
	if len(s) == 0 || len(s) > maxNodeBytes {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

package admin

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/hlsedge/hlsedge/authz/token"
)

// Config is the `admin:` section of the edge configuration: the operators' listener.
type Config struct {
	// Listen is the admin address. Unset, it is 127.0.0.1:8090; an explicit empty string ("") disables the admin
	// listener. It is a pointer so that the two stay apart: a default must never switch on a listener the operator
	// switched off.
	Listen *string `yaml:"listen"`
	// Token, when set, is required on every admin path but /healthz and /auth/astra: as "Authorization: Bearer
	// TOKEN" (scrapers, scripts) or as the password of HTTP Basic (browsers, on the status page). Prefer
	// TokenFile or TokenEnv in production.
	Token string `yaml:"token"`
	// TokenFile reads the admin token from a file (surrounding whitespace trimmed).
	TokenFile string `yaml:"token_file"`
	// TokenEnv reads the admin token from the named environment variable.
	TokenEnv string `yaml:"token_env"`
	// MinBanPrefixV4 is the shortest IPv4 prefix POST /api/bans takes without "force": true. A shorter one bans a
	// large part of the internet, and 0.0.0.0/0 every viewer; /0 always needs force. Default 16.
	MinBanPrefixV4 int `yaml:"min_ban_prefix_v4"`
	// MinBanPrefixV6 is the same for IPv6. Default 48, a typical site's allocation.
	MinBanPrefixV6 int `yaml:"min_ban_prefix_v6"`

	// token is the admin token read from whichever source is set, by Validate.
	token []byte
}

// HasToken reports whether an admin token is configured, from any source.
func (c *Config) HasToken() bool { return c.Token != "" || c.TokenFile != "" || c.TokenEnv != "" }

// DefaultListen is the admin address when 'admin.listen' is not set: loopback, since the listener shows origin
// addresses and viewer counts and, without 'admin.token', takes bans from whoever reaches it.
const DefaultListen = "127.0.0.1:8090"

// SetDefaults fills unset fields; an explicit empty 'admin.listen' stays empty.
func (c *Config) SetDefaults() {
	if c.Listen == nil {
		l := DefaultListen
		c.Listen = &l
	}
	if c.MinBanPrefixV4 == 0 {
		c.MinBanPrefixV4 = 16
	}
	if c.MinBanPrefixV6 == 0 {
		c.MinBanPrefixV6 = 48
	}
}

// Enabled reports whether the admin listener runs.
func (c *Config) Enabled() bool { return c.Listen != nil && *c.Listen != "" }

// Addr is the admin address, "" when the listener is off.
func (c *Config) Addr() string {
	if c.Listen == nil {
		return ""
	}
	return *c.Listen
}

// Validate names the first field that is wrong.
func (c *Config) Validate() error {
	if l := c.Addr(); l != "" {
		if _, err := netip.ParseAddrPort(l); err != nil && !strings.HasPrefix(l, ":") {
			return fmt.Errorf("'admin.listen' must be host:port with an IP address, or \"\" to turn the listener off, got %q", l)
		}
	}
	if c.MinBanPrefixV4 < 1 || c.MinBanPrefixV4 > 32 {
		return fmt.Errorf("'admin.min_ban_prefix_v4' must be between 1 and 32, got %d", c.MinBanPrefixV4)
	}
	if c.MinBanPrefixV6 < 1 || c.MinBanPrefixV6 > 128 {
		return fmt.Errorf("'admin.min_ban_prefix_v6' must be between 1 and 128, got %d", c.MinBanPrefixV6)
	}
	tok, err := token.LoadSecret("admin.token", c.Token, c.TokenFile, c.TokenEnv)
	if err != nil {
		return err
	}
	c.token = tok
	return nil
}

package authz

import (
	"errors"
	"fmt"
	"time"

	"github.com/hlsedge/hlsedge/authz/token"
)

// Config is the `auth:` section of the edge configuration. Zero values take the defaults named on each field;
// Validate names the first field that is wrong, with its full YAML path.
type Config struct {
	// Disabled turns authorization off: every path is served without a token. It must be said explicitly, so that
	// a missing or misspelt `auth:` section never silently opens the edge.
	Disabled bool `yaml:"disabled"`
	// Protected lists the path prefixes that need a token. Default ["/"]: everything except /healthz, which the
	// edge answers itself.
	Protected []string `yaml:"protected"`
	// Sources are the places a token is looked for, in order; the first one present is used. Default: the query
	// parameter `token`, then the cookie `token`, then `Authorization: Bearer`. Set-top boxes and Smart TVs can
	// only send the query parameter.
	Sources []SourceConfig `yaml:"sources"`
	// ChildParam is the query parameter child URIs in rewritten playlists carry. Default: the first query source,
	// or `token` when there is none.
	ChildParam string `yaml:"child_param"`
	// MaxTokenBytes refuses longer tokens before any parsing. Default 4096.
	MaxTokenBytes int `yaml:"max_token_bytes"`
	// Cache holds recent decisions so that segment requests skip signature checks.
	Cache CacheConfig `yaml:"cache"`
	// JWT verifies JSON Web Tokens. Omit it to refuse JWTs.
	JWT *JWTConfig `yaml:"jwt"`
	// SecureToken verifies Flussonic/Astra securetoken links. Omit it to refuse them.
	SecureToken *token.SecureTokenConfig `yaml:"securetoken"`
	// Edge is the edge's own child token, minted into rewritten playlists.
	Edge EdgeConfig `yaml:"edge"`
	// Groups give channels their own settings. The first group whose channel globs match decides; a channel no
	// group matches is refused. Default: one group `default` for every channel.
	Groups []GroupConfig `yaml:"groups"`
	// Sessions infers HLS viewing sessions from requests, for the sessions view and per-user limits.
	Sessions SessionsConfig `yaml:"sessions"`
	// Bans bounds the operator's bans and kicks (admin API).
	Bans BansConfig `yaml:"bans"`
}

// SourceConfig is one place a token may come from. Exactly one field is set.
type SourceConfig struct {
	// Query names a query parameter. It is stripped before the request goes to the origin.
	Query string `yaml:"query"`
	// Cookie names a cookie, for browser players on the operator's own domain.
	Cookie string `yaml:"cookie"`
	// Bearer reads `Authorization: Bearer TOKEN`, for players that can add headers (hls.js xhrSetup).
	Bearer bool `yaml:"bearer"`
}

// CacheConfig bounds the decision cache. The cache is an optimisation only: a decision that is dropped or
// evicted is simply verified again.
type CacheConfig struct {
	// Disabled verifies every request from scratch; for debugging only.
	Disabled bool `yaml:"disabled"`
	// MaxEntries bounds the number of decisions kept. Default 100000 (about a viewer-channel each).
	MaxEntries int64 `yaml:"max_entries"`
	// MaxTTL caps how long an allow is reused. The token's own expiry always wins when it is sooner, and bans
	// and kicks apply to cached decisions from the next request on. Default 5m.
	MaxTTL time.Duration `yaml:"max_ttl"`
	// DenyTTL is how long a refusal is reused, so a flood of bad tokens costs one verification each. Default 2s.
	DenyTTL time.Duration `yaml:"deny_ttl"`
}

// JWTConfig verifies the JSON Web Tokens viewers bring: the keys and registered claims (the fields
// signaling.jwt shares), and what a token must claim to open a channel.
type JWTConfig struct {
	token.JWTConfig    `yaml:",inline"`
	token.AccessConfig `yaml:",inline"`
}

// EdgeConfig is the edge's own compact child token.
type EdgeConfig struct {
	// Secret is the HMAC-SHA256 key (at least 32 bytes). Every edge node behind one balancer needs the same one.
	// Empty: a random key per process, so child links die with a restart; a warning is logged.
	Secret string `yaml:"secret"`
	// SecretFile reads the key from a file instead (surrounding whitespace trimmed).
	SecretFile string `yaml:"secret_file"`
	// SecretEnv reads the key from the named environment variable instead.
	SecretEnv string `yaml:"secret_env"`
	// Secrets lists several keys, for rotation, instead of the one above: child tokens are minted with the first
	// and carry its kid, and a child token minted with any of them is accepted. Rotate by adding the new key
	// last and reloading every node, then moving it first and reloading every node, then removing the old one
	// after 'auth.edge.max_ttl'.
	Secrets []token.SecretConfig `yaml:"secrets"`
	// MaxTTL caps a child token's life when the parent token lives longer or has no expiry. The child never
	// outlives its parent. This is the life of the tokens on the media-playlist URIs of a master playlist: a
	// player never fetches the master again and keeps reloading those URLs for the whole viewing. Default 24h.
	MaxTTL time.Duration `yaml:"max_ttl"`
	// BindIP binds child tokens to the viewer's IP even when the parent token was not bound.
	BindIP bool `yaml:"bind_ip"`
	// SegmentTTLTargets is how long the tokens on the segment, part, key and init-section URIs of a live media
	// playlist (no EXT-X-ENDLIST) live, in target durations (EXT-X-TARGETDURATION): they are minted afresh on
	// every reload, so a player that keeps reloading always holds live ones, while a segment URL copied out of
	// the playlist is refused (410) once its window is over. The expiry is rounded up to a grid of half the
	// window, so that reloads within it carry the same URLs: a window lasts between 1 and 1.5 times its
	// length. Default 3; 0 gives these tokens max_ttl like the others. Groups with child_token: same pass the
	// viewer's token unchanged and get no windows.
	SegmentTTLTargets *int `yaml:"segment_ttl_targets"`
	// SegmentTTLMin is the shortest such window, for playlists with very short target durations. Default 10s.
	SegmentTTLMin time.Duration `yaml:"segment_ttl_min"`
	// VODTTLMargin is added to a VOD media playlist's presentation (the sum of its EXTINF durations) to give
	// the life of its segment tokens, for pauses and seeking: players never reload such a playlist. Default 1h.
	VODTTLMargin time.Duration `yaml:"vod_ttl_margin"`
}

// GroupConfig is the auth policy of a set of channels.
type GroupConfig struct {
	// Name appears in logs and metrics. Default `group<N>`.
	Name string `yaml:"name"`
	// Channels are channel names or globs (`*` any run of characters, `?` one). Default ["*"].
	Channels []string `yaml:"channels"`
	// Public serves these channels without any token.
	Public bool `yaml:"public"`
	// Accept lists the token kinds accepted: jwt, securetoken, edge. Default: every kind configured. A group
	// with backends accepts edge tokens whatever it lists: they carry the viewers its middlewares let in
	// without a token.
	Accept []string `yaml:"accept"`
	// ChildToken is what rewritten playlists carry: `edge` (a short edge token; the viewer's JWT never appears in
	// segment URLs) or `same` (the incoming token unchanged, as Flussonic does for securetoken). Default edge.
	ChildToken string `yaml:"child_token"`
	// JWT replaces the top-level auth.jwt for this group.
	JWT *JWTConfig `yaml:"jwt"`
	// SecureToken replaces the top-level auth.securetoken for this group.
	SecureToken *token.SecureTokenConfig `yaml:"securetoken"`
	// Rules are checked on every request before any token verification, in Flussonic's order: allow/deny token,
	// allow/deny IP, allow/deny user agent, then the domain lock. The first match decides.
	Rules RulesConfig `yaml:"rules"`
	// Backends are the operator's middlewares (Astra or Flussonic protocol), asked in parallel when no local
	// verifier accepts the token; the first allow wins. Their answers are cached like local decisions.
	Backends []BackendConfig `yaml:"backends"`
	// OnBackendError is what happens when every backend fails and no stale decision is left: `deny` (default)
	// or `allow`, which is Astra's own behaviour and is logged as a warning at start.
	OnBackendError string `yaml:"on_backend_error"`
	// BackendStale is how long past its expiry a backend decision may stand in while every backend fails.
	// Default 5m.
	BackendStale time.Duration `yaml:"backend_stale"`
	// BackendKey lists what a middleware's decision is cached on besides the channel and the token: `query`
	// (the viewer's query string without LL-HLS `_HLS_*` directives, for requests without a token: a token
	// stands for the query, since child URIs carry it alone), `ip` (the viewer's address; a token a local
	// verifier accepts is always keyed on it) and `ua` (the User-Agent). Default [query, ip]: a player keeps
	// both for its whole session, so the middleware is asked once per viewer per X-AuthDuration or cache_for,
	// and a login in the query or an address rule always runs. Add `ua` when the middleware has User-Agent
	// rules: each device is then asked once more.
	BackendKey []string `yaml:"backend_key"`
	// Default decides a request that no rule, verifier or backend decided, which only happens without a
	// token in a group without backends: `deny` (default, 401) or `allow` (a channel protected by rules alone,
	// e.g. a domain lock). In a group with backends the backends decide requests without a token too.
	Default string `yaml:"default"`
	// ExpiredStatus is the status of an authentic token that ran out: 410 (default; the link is gone for
	// good, as nginx secure_link answers) or 403, which Flussonic answers and which suits players that treat
	// 410 oddly.
	ExpiredStatus int `yaml:"expired_status"`
}

// Defaults.
const (
	defaultParam         = "token"
	defaultMaxTokenBytes = 4096
	defaultMaxEntries    = 100000
	defaultMaxTTL        = 5 * time.Minute
	defaultDenyTTL       = 2 * time.Second
	defaultEdgeMaxTTL    = 24 * time.Hour
	defaultSegTargets    = 3
	defaultSegMin        = 10 * time.Second
	defaultVODMargin     = time.Hour
)

// Child token modes.
const (
	ChildEdge = "edge"
	ChildSame = "same"
)

// SetDefaults fills zero values. Validate and New call it on a copy, so callers need not.
func (c *Config) SetDefaults() {
	if len(c.Protected) == 0 {
		c.Protected = []string{"/"}
	}
	if len(c.Sources) == 0 {
		c.Sources = []SourceConfig{{Query: defaultParam}, {Cookie: defaultParam}, {Bearer: true}}
	}
	if c.ChildParam == "" {
		c.ChildParam = defaultParam
		for _, s := range c.Sources {
			if s.Query != "" {
				c.ChildParam = s.Query
				break
			}
		}
	}
	if c.MaxTokenBytes == 0 {
		c.MaxTokenBytes = defaultMaxTokenBytes
	}
	if c.Cache.MaxEntries == 0 {
		c.Cache.MaxEntries = defaultMaxEntries
	}
	if c.Cache.MaxTTL == 0 {
		c.Cache.MaxTTL = defaultMaxTTL
	}
	if c.Cache.DenyTTL == 0 {
		c.Cache.DenyTTL = defaultDenyTTL
	}
	if c.Edge.MaxTTL == 0 {
		c.Edge.MaxTTL = defaultEdgeMaxTTL
	}
	if c.Edge.SegmentTTLTargets == nil {
		n := defaultSegTargets
		c.Edge.SegmentTTLTargets = &n
	}
	if c.Edge.SegmentTTLMin == 0 {
		c.Edge.SegmentTTLMin = defaultSegMin
	}
	if c.Edge.VODTTLMargin == 0 {
		c.Edge.VODTTLMargin = defaultVODMargin
	}
	c.Sessions.setDefaults()
	c.Bans.setDefaults()
	if len(c.Groups) == 0 {
		c.Groups = []GroupConfig{{Name: "default"}}
	} else {
		// The caller's slice is not ours to modify.
		c.Groups = append([]GroupConfig(nil), c.Groups...)
	}
	c.JWT = c.JWT.withDefaults()
	for i := range c.Groups {
		g := &c.Groups[i]
		if g.Name == "" {
			g.Name = fmt.Sprintf("group%d", i)
		}
		if len(g.Channels) == 0 {
			g.Channels = []string{"*"}
		}
		if g.ChildToken == "" {
			g.ChildToken = ChildEdge
			if len(g.Backends) > 0 {
				// Segments must carry the middleware's token so that its decisions are re-checked when they
				// run out (X-AuthDuration); an edge child would stay valid for edge.max_ttl.
				g.ChildToken = ChildSame
			}
		}
		g.setGroupPolicyDefaults(i)
		g.JWT = g.JWT.withDefaults()
		if g.JWT == nil {
			g.JWT = c.JWT
		}
		if g.SecureToken == nil {
			g.SecureToken = c.SecureToken
		}
		if len(g.Accept) == 0 {
			if g.JWT != nil {
				g.Accept = append(g.Accept, token.KindJWT.String())
			}
			if g.SecureToken != nil {
				g.Accept = append(g.Accept, token.KindSecureToken.String())
			}
			g.Accept = append(g.Accept, token.KindEdge.String())
		}
	}
}

// withDefaults returns a defaulted copy: one JWTConfig may be shared by several groups.
func (j *JWTConfig) withDefaults() *JWTConfig {
	if j == nil {
		return nil
	}
	c := *j
	c.JWTConfig.SetDefaults()
	c.AccessConfig.SetDefaults()
	return &c
}

// Validate checks the section without touching the file system beyond reading the secret files' sizes; key
// files are parsed by New. Errors name the field by its YAML path under `auth`.
func (c *Config) Validate() error {
	cc := *c
	cc.SetDefaults()
	return cc.validate()
}

func (c *Config) validate() error {
	if c.Disabled {
		return nil
	}
	for i, p := range c.Protected {
		if p == "" || p[0] != '/' {
			return fmt.Errorf("'auth.protected[%d]' must start with '/', got %q", i, p)
		}
	}
	for i, s := range c.Sources {
		n := 0
		if s.Query != "" {
			n++
		}
		if s.Cookie != "" {
			n++
		}
		if s.Bearer {
			n++
		}
		if n != 1 {
			return fmt.Errorf("'auth.sources[%d]' must set exactly one of query, cookie or bearer", i)
		}
		if s.Query != "" && !validParamName(s.Query) {
			return fmt.Errorf("'auth.sources[%d].query' must be a plain parameter name, got %q", i, s.Query)
		}
		if s.Cookie != "" && !validParamName(s.Cookie) {
			return fmt.Errorf("'auth.sources[%d].cookie' must be a plain cookie name, got %q", i, s.Cookie)
		}
	}
	if !validParamName(c.ChildParam) {
		return fmt.Errorf("'auth.child_param' must be a plain parameter name, got %q", c.ChildParam)
	}
	if c.MaxTokenBytes < 64 || c.MaxTokenBytes > 65535 {
		return fmt.Errorf("'auth.max_token_bytes' must be between 64 and 65535, got %d", c.MaxTokenBytes)
	}
	if c.Cache.MaxEntries < 0 {
		return errors.New("'auth.cache.max_entries' must be greater than zero")
	}
	if c.Cache.MaxTTL < 0 {
		return errors.New("'auth.cache.max_ttl' must be greater than zero")
	}
	if c.Cache.DenyTTL < 0 || c.Cache.DenyTTL > c.Cache.MaxTTL {
		return errors.New("'auth.cache.deny_ttl' must be greater than zero and at most 'auth.cache.max_ttl'")
	}
	if c.JWT == nil && c.SecureToken == nil && !c.Edge.hasKey() && !c.anyGroupVerifier() {
		return errors.New("'auth' must configure 'auth.jwt', 'auth.securetoken' or 'auth.edge.secret', or set 'auth.disabled: true' to serve without tokens")
	}
	if c.JWT != nil {
		if err := c.JWT.Validate("auth.jwt"); err != nil {
			return err
		}
	}
	if c.SecureToken != nil {
		if err := c.SecureToken.Validate("auth.securetoken"); err != nil {
			return err
		}
	}
	if _, err := c.Edge.Keys(); err != nil {
		return err
	}
	if c.Edge.MaxTTL < 0 {
		return errors.New("'auth.edge.max_ttl' must be greater than zero")
	}
	if n := *c.Edge.SegmentTTLTargets; n < 0 || n > 100 {
		return fmt.Errorf("'auth.edge.segment_ttl_targets' must be between 0 (off) and 100, got %d", n)
	}
	if c.Edge.SegmentTTLMin < time.Second || c.Edge.SegmentTTLMin > c.Edge.MaxTTL {
		return errors.New("'auth.edge.segment_ttl_min' must be between 1s and 'auth.edge.max_ttl'")
	}
	if c.Edge.VODTTLMargin < 0 {
		return errors.New("'auth.edge.vod_ttl_margin' must be greater than zero")
	}
	for i := range c.Groups {
		g := &c.Groups[i]
		f := fmt.Sprintf("auth.groups[%d]", i)
		for j, ch := range g.Channels {
			if ch == "" || len(ch) > token.MaxChannelBytes {
				return fmt.Errorf("'%s.channels[%d]' must be a channel name or glob of 1 to %d bytes", f, j, token.MaxChannelBytes)
			}
		}
		if g.ChildToken != ChildEdge && g.ChildToken != ChildSame {
			return fmt.Errorf("'%s.child_token' must be edge or same, got %q", f, g.ChildToken)
		}
		if g.Public {
			continue
		}
		if err := g.validatePolicy(f); err != nil {
			return err
		}
		for j, k := range g.Accept {
			switch token.ParseKind(k) {
			case token.KindJWT:
				if g.JWT == nil {
					return fmt.Errorf("'%s.accept[%d]' is jwt but neither 'auth.jwt' nor '%s.jwt' is configured", f, j, f)
				}
			case token.KindSecureToken:
				if g.SecureToken == nil {
					return fmt.Errorf("'%s.accept[%d]' is securetoken but neither 'auth.securetoken' nor '%s.securetoken' is configured", f, j, f)
				}
			case token.KindEdge:
			default:
				return fmt.Errorf("'%s.accept[%d]' must be jwt, securetoken or edge, got %q", f, j, k)
			}
		}
		if g.JWT != nil && g.JWT != c.JWT {
			if err := g.JWT.Validate(f + ".jwt"); err != nil {
				return err
			}
		}
		if g.SecureToken != nil && g.SecureToken != c.SecureToken {
			if err := g.SecureToken.Validate(f + ".securetoken"); err != nil {
				return err
			}
		}
		if g.JWT == nil && g.SecureToken == nil && !c.Edge.hasKey() && len(g.Backends) == 0 && g.Default != PolicyAllow {
			return fmt.Errorf("'%s' must be public or accept a configured verifier: set 'auth.jwt', 'auth.securetoken', 'auth.edge.secret' or '%s.backends'", f, f)
		}
	}
	if err := c.Sessions.validate(); err != nil {
		return err
	}
	return c.Bans.validate()
}

// hasKey reports whether an edge key is configured in any of the ways.
func (e *EdgeConfig) hasKey() bool {
	return e.Secret != "" || e.SecretFile != "" || e.SecretEnv != "" || len(e.Secrets) > 0
}

// Keys loads the edge keys, minting key first; none when no key is configured.
func (e *EdgeConfig) Keys() ([]token.Key, error) {
	return token.LoadKeys("auth.edge", token.SecretConfig{Secret: e.Secret, SecretFile: e.SecretFile, SecretEnv: e.SecretEnv},
		e.Secrets, token.MinSecretBytes)
}

// anyGroupVerifier reports whether some group brings its own verifier or is public, which makes an otherwise
// empty section meaningful.
func (c *Config) anyGroupVerifier() bool {
	for _, g := range c.Groups {
		if g.Public || g.JWT != nil || g.SecureToken != nil || len(g.Backends) > 0 || g.Default == PolicyAllow {
			return true
		}
	}
	return false
}

// validParamName accepts names that need no escaping in a query string or cookie header.
func validParamName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

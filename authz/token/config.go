package token

import (
	"fmt"
	"net/url"
	"time"
)

// JWTConfig is how JSON Web Tokens (RFC 7519) are verified: an explicit algorithm allow-list, the keys, and the
// registered claims every token must satisfy. auth.jwt and signaling.jwt both take it, with the same fields.
type JWTConfig struct {
	// Algorithms is the allow-list: HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384,
	// ES512, EdDSA. Required; `none` is never accepted. Each algorithm only ever uses a key of its own type.
	Algorithms []string `yaml:"algorithms"`
	// Secret is the HMAC key for HS* (at least 32 bytes): the shorthand for one key without an id. Prefer
	// SecretFile or SecretEnv in production.
	Secret string `yaml:"secret"`
	// SecretFile reads the HMAC key from a file (surrounding whitespace trimmed).
	SecretFile string `yaml:"secret_file"`
	// SecretEnv reads the HMAC key from the named environment variable.
	SecretEnv string `yaml:"secret_env"`
	// Secrets lists several HMAC keys, for rotation: a token whose `kid` names one is checked against that key
	// only, a token without a kid against each. Use it instead of the shorthand fields above.
	Secrets []SecretConfig `yaml:"secrets"`
	// PublicKeys are PEM files (PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE) for RS*, PS*, ES* and EdDSA.
	PublicKeys []PublicKeyConfig `yaml:"public_keys"`
	// JWKSFile is a JSON Web Key Set file, re-read every JWKSRefresh.
	JWKSFile string `yaml:"jwks_file"`
	// JWKSURL is a JSON Web Key Set URL (http or https), fetched at start and every JWKSRefresh. A token with an
	// unknown `kid` also triggers a fetch, at most once per 30s, so key rotation needs no restart.
	JWKSURL string `yaml:"jwks_url"`
	// JWKSRefresh is how often the key set is reloaded. Default 10m.
	JWKSRefresh time.Duration `yaml:"jwks_refresh"`
	// JWKSTimeout bounds one JWKS fetch. Default 5s.
	JWKSTimeout time.Duration `yaml:"jwks_timeout"`
	// Issuer, when set, must equal the `iss` claim.
	Issuer string `yaml:"issuer"`
	// Audience, when set, must be one of the `aud` claim's values.
	Audience string `yaml:"audience"`
	// Leeway absorbs clock skew between the issuer and the edge for `exp`, `nbf` and `iat` (a token issued
	// further in the future than this is refused). Default 30s.
	Leeway *time.Duration `yaml:"leeway"`
}

// PublicKeyConfig is one PEM public key.
type PublicKeyConfig struct {
	// File is the PEM file.
	File string `yaml:"file"`
	// KeyID is the `kid` this key answers to. Empty: the key is tried for any token of a matching algorithm.
	KeyID string `yaml:"kid"`
}

// AccessConfig is what a JWT must claim to open a channel, beyond the registered claims JWTConfig checks.
type AccessConfig struct {
	// AllowNoExp accepts tokens without `exp`; they are then trusted for at most cache.max_ttl at a time. Off by
	// default: a token without expiry can never be revoked.
	AllowNoExp bool `yaml:"allow_no_exp"`
	// AllowMissingStreams lets a token without the streams claim open every channel of the group. Off by default.
	AllowMissingStreams bool `yaml:"allow_missing_streams"`
	// RequireIP refuses tokens without the IP claim.
	RequireIP bool `yaml:"require_ip"`
	// Claims renames the claims the edge reads.
	Claims ClaimNames `yaml:"claims"`
}

// ClaimNames names the claims that grant access.
type ClaimNames struct {
	// Streams lists the channels the token opens: a string or an array of names or globs (`sport/*`, `*`).
	// Default `streams`.
	Streams string `yaml:"streams"`
	// IP binds the token to a client IP or CIDR. Default `ip`.
	IP string `yaml:"ip"`
	// User is the user id, for logs and session limits. Default `sub`.
	User string `yaml:"user"`
	// MaxSessions is the user's concurrent session limit. Default `max_sessions`.
	MaxSessions string `yaml:"max_sessions"`
}

// SecureTokenConfig verifies Flussonic/Astra securetoken links:
// sha1(stream + ip + start + end + secret + salt) + "-" + salt + "-" + end + "-" + start.
type SecureTokenConfig struct {
	// Secret is the key shared with the website (Flussonic `securetoken://SECRET`). Required, in this field,
	// SecretFile, SecretEnv or Secrets.
	Secret string `yaml:"secret"`
	// SecretFile reads the key from a file instead (surrounding whitespace trimmed).
	SecretFile string `yaml:"secret_file"`
	// SecretEnv reads the key from the named environment variable.
	SecretEnv string `yaml:"secret_env"`
	// Secrets lists several keys, for rotation: a token is accepted when it verifies with any of them (the
	// protocol names no key, so kid is unused here).
	Secrets []SecretConfig `yaml:"secrets"`
	// NoCheckIP leaves the client IP out of the hash, as Flussonic's `no_check_ip=true`; the website must then
	// leave it out too.
	NoCheckIP bool `yaml:"no_check_ip"`
	// Desync is the allowed clock difference with the website, applied to both ends of the window. Default 0,
	// because the reference PHP already starts the window 300s early.
	Desync time.Duration `yaml:"desync"`
	// MaxLifetime refuses a token whose window (end - start) is longer, whatever its hash says: the hash runs
	// the fields together, so a respelled token could otherwise stretch its own window. Default 24h; set it to
	// the longest link the website mints (its lifetime plus the 300 s it starts early).
	MaxLifetime time.Duration `yaml:"max_lifetime"`
}

// DefaultSecureTokenMaxLifetime is securetoken.max_lifetime when it is not set.
const DefaultSecureTokenMaxLifetime = 24 * time.Hour

func (c *SecureTokenConfig) maxLifetime() time.Duration {
	if c.MaxLifetime == 0 {
		return DefaultSecureTokenMaxLifetime
	}
	return c.MaxLifetime
}

// Limits and defaults.
const (
	// MinSecretBytes is the shortest HMAC key accepted for JWTs and edge tokens, so that tags resist offline
	// guessing of the key.
	MinSecretBytes = 32
	// MaxUserIDBytes bounds a user id, which edge tokens carry.
	MaxUserIDBytes = 255
	// MaxChannelBytes bounds a channel name, which edge tokens carry.
	MaxChannelBytes = 255

	defaultJWKSRefresh = 10 * time.Minute
	defaultJWKSTimeout = 5 * time.Second
	defaultLeeway      = 30 * time.Second
)

// SetDefaults fills zero values.
func (c *JWTConfig) SetDefaults() {
	if c.JWKSRefresh == 0 {
		c.JWKSRefresh = defaultJWKSRefresh
	}
	if c.JWKSTimeout == 0 {
		c.JWKSTimeout = defaultJWKSTimeout
	}
	if c.Leeway == nil {
		l := defaultLeeway
		c.Leeway = &l
	}
}

// SetDefaults fills the claim names left empty.
func (c *AccessConfig) SetDefaults() {
	setDefault(&c.Claims.Streams, "streams")
	setDefault(&c.Claims.IP, "ip")
	setDefault(&c.Claims.User, "sub")
	setDefault(&c.Claims.MaxSessions, "max_sessions")
}

func setDefault(p *string, v string) {
	if *p == "" {
		*p = v
	}
}

// Validate checks a defaulted config without parsing key files, which NewJWTVerifier does. Errors name the
// field under f, the section's YAML path (`auth.jwt`, `signaling.jwt`).
func (c *JWTConfig) Validate(f string) error {
	if len(c.Algorithms) == 0 {
		return fmt.Errorf("'%s.algorithms' must list at least one algorithm", f)
	}
	var needSecret, needKeys bool
	for i, a := range c.Algorithms {
		switch algFamilyOf(a) {
		case famHMAC:
			needSecret = true
		case famNone:
			return fmt.Errorf("'%s.algorithms[%d]' must be one of HS256 HS384 HS512 RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 ES512 EdDSA, got %q", f, i, a)
		default:
			needKeys = true
		}
	}
	hmac := c.hmacShorthand()
	if needSecret {
		if !hmac.set() && len(c.Secrets) == 0 {
			return fmt.Errorf("'%s.secret' must be set when an HS* algorithm is allowed", f)
		}
		if _, err := c.HMACKeys(f); err != nil {
			return err
		}
	} else if hmac.set() || len(c.Secrets) > 0 {
		return fmt.Errorf("'%s.secret' must be empty when no HS* algorithm is allowed", f)
	}
	if needKeys && len(c.PublicKeys) == 0 && c.JWKSFile == "" && c.JWKSURL == "" {
		return fmt.Errorf("'%s.public_keys', '%s.jwks_file' or '%s.jwks_url' must be set for RS*/PS*/ES*/EdDSA", f, f, f)
	}
	for i, k := range c.PublicKeys {
		if k.File == "" {
			return fmt.Errorf("'%s.public_keys[%d].file' must be a PEM file", f, i)
		}
	}
	if c.JWKSFile != "" && c.JWKSURL != "" {
		return fmt.Errorf("'%s.jwks_file' and '%s.jwks_url' must not both be set", f, f)
	}
	if c.JWKSURL != "" {
		u, err := url.Parse(c.JWKSURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("'%s.jwks_url' must be an http(s) URL", f)
		}
	}
	if c.JWKSRefresh < time.Second {
		return fmt.Errorf("'%s.jwks_refresh' must be at least 1s", f)
	}
	if c.JWKSTimeout <= 0 {
		return fmt.Errorf("'%s.jwks_timeout' must be greater than zero", f)
	}
	if c.Leeway != nil && (*c.Leeway < 0 || *c.Leeway > 10*time.Minute) {
		return fmt.Errorf("'%s.leeway' must be between 0 and 10m", f)
	}
	return nil
}

// hmacShorthand is the one-key form of the HMAC secret.
func (c *JWTConfig) hmacShorthand() SecretConfig {
	return SecretConfig{Secret: c.Secret, SecretFile: c.SecretFile, SecretEnv: c.SecretEnv}
}

// HMACKeys loads the HMAC keys, from the shorthand fields or the list; errors name the field under f.
func (c *JWTConfig) HMACKeys(f string) ([]Key, error) {
	return LoadKeys(f, c.hmacShorthand(), c.Secrets, MinSecretBytes)
}

// Validate checks the section; errors name the field under f.
func (c *SecureTokenConfig) Validate(f string) error {
	if c.Secret == "" && c.SecretFile == "" && c.SecretEnv == "" && len(c.Secrets) == 0 {
		return fmt.Errorf("'%s.secret' must be set", f)
	}
	if c.Desync < 0 || c.Desync > time.Hour {
		return fmt.Errorf("'%s.desync' must be between 0 and 1h", f)
	}
	if c.MaxLifetime != 0 && (c.MaxLifetime < time.Minute || c.MaxLifetime > 366*24*time.Hour) {
		return fmt.Errorf("'%s.max_lifetime' must be between 1m and 8784h (366 days)", f)
	}
	_, err := c.Keys(f)
	return err
}

// Keys loads the keys, from the shorthand fields or the list; errors name the field under f. Flussonic keys
// are often short words, so only an empty one is refused.
func (c *SecureTokenConfig) Keys(f string) ([]Key, error) {
	return LoadKeys(f, SecretConfig{Secret: c.Secret, SecretFile: c.SecretFile, SecretEnv: c.SecretEnv}, c.Secrets, 1)
}

package authz

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/hlsedge/hlsedge/authz/token"
)

func TestConfigValidate(t *testing.T) {
	f := func(name string, mutate func(c *Config), want string) {
		t.Helper()
		c := hsConfig()
		mutate(&c)
		err := c.Validate()
		if want == "" {
			if err != nil {
				t.Errorf("%s: unexpected %v", name, err)
			}
			return
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", name, err, want)
		}
		if err != nil && (strings.Contains(err.Error(), string(hmacSecret)) || strings.Contains(err.Error(), stSecret)) {
			t.Errorf("%s: error leaks a secret: %v", name, err)
		}
	}
	neg := -time.Second
	f("valid", func(c *Config) {}, "")
	f("disabled needs nothing", func(c *Config) { *c = Config{Disabled: true} }, "")
	f("nothing configured", func(c *Config) { *c = Config{} }, "or set 'auth.disabled: true'")
	f("public only", func(c *Config) { *c = Config{Groups: []GroupConfig{{Public: true}}} }, "")
	f("group without verifier", func(c *Config) {
		*c = Config{Groups: []GroupConfig{{Channels: []string{"free"}, Public: true}, {Name: "rest"}}}
	}, "'auth.groups[1]' must be public or accept a configured verifier")
	f("edge only", func(c *Config) { *c = Config{Edge: EdgeConfig{Secret: edgeSecret}} }, "")
	f("protected", func(c *Config) { c.Protected = []string{"play/"} }, "'auth.protected[0]' must start with '/'")
	f("source none", func(c *Config) { c.Sources = []SourceConfig{{}} }, "'auth.sources[0]' must set exactly one")
	f("source two", func(c *Config) { c.Sources = []SourceConfig{{Query: "t", Bearer: true}} }, "'auth.sources[0]' must set exactly one")
	f("source name", func(c *Config) { c.Sources = []SourceConfig{{Query: "a b"}} }, "'auth.sources[0].query' must be a plain parameter name")
	f("child param", func(c *Config) { c.ChildParam = "a&b" }, "'auth.child_param'")
	f("max token", func(c *Config) { c.MaxTokenBytes = 10 }, "'auth.max_token_bytes' must be between")
	f("deny ttl", func(c *Config) { c.Cache.DenyTTL = time.Hour }, "'auth.cache.deny_ttl'")
	f("jwt algs", func(c *Config) { c.JWT.Algorithms = nil }, "'auth.jwt.algorithms' must list")
	f("jwt none", func(c *Config) { c.JWT.Algorithms = []string{"none"} }, "'auth.jwt.algorithms[0]' must be one of")
	f("jwt hs short secret", func(c *Config) { c.JWT.Secret = "short" }, "'auth.jwt.secret' must be at least 32 bytes")
	f("jwt hs no secret", func(c *Config) { c.JWT.Secret = "" }, "'auth.jwt.secret' must be set")
	f("jwt secret without hs", func(c *Config) {
		c.JWT.Algorithms = []string{"RS256"}
		c.JWT.PublicKeys = []token.PublicKeyConfig{{File: "x.pem"}}
	}, "'auth.jwt.secret' must be empty")
	f("jwt rs no keys", func(c *Config) { c.JWT.Algorithms = []string{"HS256", "RS256"} }, "'auth.jwt.public_keys', 'auth.jwt.jwks_file' or 'auth.jwt.jwks_url' must be set")
	f("jwt key file", func(c *Config) {
		c.JWT.Algorithms = []string{"HS256", "RS256"}
		c.JWT.PublicKeys = []token.PublicKeyConfig{{}}
	}, "'auth.jwt.public_keys[0].file'")
	f("jwks url", func(c *Config) {
		c.JWT.Algorithms = []string{"HS256", "ES256"}
		c.JWT.JWKSURL = "ftp://x"
	}, "'auth.jwt.jwks_url' must be an http(s) URL")
	f("jwks both", func(c *Config) {
		c.JWT.Algorithms = []string{"HS256", "ES256"}
		c.JWT.JWKSURL, c.JWT.JWKSFile = "http://127.0.0.1/j", "j.json"
	}, "must not both be set")
	f("jwt leeway", func(c *Config) { c.JWT.Leeway = &neg }, "'auth.jwt.leeway'")
	f("st secret", func(c *Config) { c.SecureToken.Secret = "" }, "'auth.securetoken.secret' must be set")
	f("st desync", func(c *Config) { c.SecureToken.Desync = 2 * time.Hour }, "'auth.securetoken.desync'")
	f("edge short", func(c *Config) { c.Edge.Secret = "short" }, "'auth.edge.secret' must be at least 32 bytes")
	f("edge file missing", func(c *Config) { c.Edge.Secret, c.Edge.SecretFile = "", "/nonexistent/edge.key" }, "'auth.edge.secret_file' must be readable")
	f("edge env unset", func(c *Config) { c.Edge.Secret, c.Edge.SecretEnv = "", "HLSEDGE_TEST_UNSET_EDGE_KEY" }, "'auth.edge.secret_env' names an environment variable that is not set")
	f("edge two sources", func(c *Config) { c.Edge.SecretEnv = "HOME" }, "'auth.edge.secret', 'auth.edge.secret_file' and 'auth.edge.secret_env' are sources of one key")
	f("edge shorthand and list", func(c *Config) { c.Edge.Secrets = []token.SecretConfig{{KeyID: "e2", Secret: edgeSecret}} }, "'auth.edge.secret' and 'auth.edge.secrets' must not both be set")
	f("edge list only", func(c *Config) {
		c.Edge = EdgeConfig{Secrets: []token.SecretConfig{{KeyID: "e2", Secret: edgeSecret}, {KeyID: "e1", Secret: edgeSecret + "1"}}}
	}, "")
	f("edge list short", func(c *Config) { c.Edge = EdgeConfig{Secrets: []token.SecretConfig{{KeyID: "e2", Secret: "x"}}} }, "'auth.edge.secrets[0].secret' must be at least 32 bytes")
	f("jwt secrets", func(c *Config) {
		c.JWT.Secret, c.JWT.Secrets = "", []token.SecretConfig{{KeyID: "k1", Secret: string(hmacSecret)}, {KeyID: "k1", Secret: string(hmacSecret)}}
	}, "'auth.jwt.secrets[1].kid' \"k1\" is listed twice")
	f("st secrets", func(c *Config) {
		c.SecureToken.Secret, c.SecureToken.Secrets = "", []token.SecretConfig{{Secret: "A"}, {}}
	}, "'auth.securetoken.secrets[1]' must set one of")
	f("group child", func(c *Config) { c.Groups = []GroupConfig{{ChildToken: "jwt"}} }, "'auth.groups[0].child_token' must be edge or same")
	f("group accept", func(c *Config) { c.Groups = []GroupConfig{{Accept: []string{"basic"}}} }, "'auth.groups[0].accept[0]' must be jwt, securetoken or edge")
	f("group accept unconfigured", func(c *Config) {
		c.SecureToken = nil
		c.Groups = []GroupConfig{{Accept: []string{"securetoken"}}}
	}, "'auth.groups[0].accept[0]' is securetoken but neither")
	f("group own jwt", func(c *Config) {
		c.Groups = []GroupConfig{{Name: "x"}, {JWT: jwtConfig("short")}}
	}, "'auth.groups[1].jwt.secret' must be at least 32 bytes")
	f("group channel", func(c *Config) { c.Groups = []GroupConfig{{Channels: []string{""}}} }, "'auth.groups[0].channels[0]'")
	f("backend protocol", func(c *Config) {
		c.Groups = []GroupConfig{{Backends: []BackendConfig{{Protocol: "ldap", URL: "http://127.0.0.1/"}}}}
	}, "'auth.groups[0].backends[0].protocol' must be astra or flussonic")
	f("backend url", func(c *Config) {
		c.Groups = []GroupConfig{{Backends: []BackendConfig{{Protocol: "astra", URL: "127.0.0.1/check"}}}}
	}, "'auth.groups[0].backends[0].url' must be an http(s) URL")
	f("backend timeout", func(c *Config) {
		c.Groups = []GroupConfig{{Backends: []BackendConfig{{Protocol: "astra", URL: "http://127.0.0.1/", Timeout: time.Hour}}}}
	}, "'auth.groups[0].backends[0].timeout' must be between")
	f("backend only group", func(c *Config) {
		*c = Config{Groups: []GroupConfig{{Backends: []BackendConfig{{Protocol: "flussonic", URL: "http://127.0.0.1/auth"}}}}}
	}, "")
	mw := []BackendConfig{{Protocol: "astra", URL: "http://127.0.0.1/check"}}
	f("backend_key", func(c *Config) { c.Groups = []GroupConfig{{Backends: mw, BackendKey: []string{"ua", "query"}}} }, "")
	f("backend_key name", func(c *Config) { c.Groups = []GroupConfig{{Backends: mw, BackendKey: []string{"ip", "cookie"}}} },
		"'auth.groups[0].backend_key[1]' must be query, ip or ua, got \"cookie\"")
	f("backend_key twice", func(c *Config) { c.Groups = []GroupConfig{{Backends: mw, BackendKey: []string{"ip", "ip"}}} },
		"'auth.groups[0].backend_key[1]' repeats \"ip\"")
	f("backend_key without backends", func(c *Config) { c.Groups = []GroupConfig{{BackendKey: []string{"ip"}}} },
		"'auth.groups[0].backend_key' needs 'auth.groups[0].backends'")
	f("default allow with backends", func(c *Config) { c.Groups = []GroupConfig{{Backends: mw, Default: PolicyAllow}} },
		"'auth.groups[0].default' must be deny in a group with backends")
	f("expired_status", func(c *Config) { c.Groups = []GroupConfig{{ExpiredStatus: 404}} }, "'auth.groups[0].expired_status' must be 403 or 410, got 404")
	f("expired_status 403", func(c *Config) { c.Groups = []GroupConfig{{ExpiredStatus: 403}} }, "")
	f("on_backend_error", func(c *Config) { c.Groups = []GroupConfig{{OnBackendError: "maybe"}} }, "'auth.groups[0].on_backend_error' must be deny or allow")
	f("default", func(c *Config) { c.Groups = []GroupConfig{{Default: "open"}} }, "'auth.groups[0].default' must be deny or allow")
	f("rules ip", func(c *Config) { c.Groups = []GroupConfig{{Rules: RulesConfig{DenyIPs: []string{"10.0.0.0/33"}}}} }, "'auth.groups[0].rules.deny_ips[0]' must be an IP address or CIDR")
	f("rules domain", func(c *Config) {
		c.Groups = []GroupConfig{{Rules: RulesConfig{Domains: []string{"https://tv.example.com"}}}}
	}, "'auth.groups[0].rules.domains[0]' must be a host name")
	f("sessions idle", func(c *Config) { c.Sessions.IdleTimeout = time.Millisecond }, "'auth.sessions.idle_timeout' must be at least 1s")
	f("sessions limit", func(c *Config) { c.Sessions.MaxPerUser = -1 }, "'auth.sessions.max_per_user'")
	f("webhook url", func(c *Config) { c.Sessions.Webhook.URL = "ftp://x" }, "'auth.sessions.webhook.url' must be an http(s) URL")
	f("bans max", func(c *Config) { c.Bans.MaxEntries = -1 }, "'auth.bans.max_entries'")
}

func TestConfigSecretFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, v string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a := newAuthz(t, Config{
		JWT:         &JWTConfig{JWTConfig: token.JWTConfig{Algorithms: []string{"HS256"}, SecretFile: write("jwt", string(hmacSecret)+"\n")}},
		SecureToken: &token.SecureTokenConfig{SecretFile: write("st", stSecret+"\n")},
		Edge:        EdgeConfig{SecretFile: write("edge", edgeSecret+"\n")},
	})
	if d := a.Authorize(req("a001", clientIP), q(mintHS(t, []string{"a001"}, time.Hour)), testNow); !d.Allowed() {
		t.Fatalf("jwt with secret_file: %d %q", d.Status, d.Reason)
	}
	if d := a.Authorize(req("bbc", clientIP), q(mintST(stSecret, "bbc")), testNow); !d.Allowed() {
		t.Fatalf("securetoken with secret_file: %d %q", d.Status, d.Reason)
	}
}

// The YAML example in the report parses strictly into Config and validates.
func TestConfigYAMLExample(t *testing.T) {
	b, err := os.ReadFile("testdata/auth.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Auth Config `yaml:"auth"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	c := doc.Auth
	if c.JWT == nil || c.JWT.Leeway == nil || *c.JWT.Leeway != 30*time.Second || len(c.Groups) != 3 || c.Groups[1].ChildToken != ChildSame ||
		strings.Join(c.Groups[1].BackendKey, ",") != "query,ip" || c.Groups[1].ExpiredStatus != 403 || c.Groups[2].ExpiredStatus != 410 {
		t.Fatalf("parsed %+v", c)
	}
	// Key files in the example are placeholders; check everything else.
	c.JWT.PublicKeys, c.JWT.JWKSURL = nil, ""
	c.JWT.Algorithms = []string{"HS256"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

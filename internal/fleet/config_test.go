package fleet_test

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hlsedge/hlsedge/internal/fleet"
	"github.com/hlsedge/hlsedge/internal/fleet/fleettest"
	"gopkg.in/yaml.v3"
)

func TestConfigDefaults(t *testing.T) {
	var c fleet.Config
	if err := yaml.Unmarshal([]byte("address: 127.0.0.1:6379\n"), &c); err != nil {
		t.Fatal(err)
	}
	c.SetDefaults()
	if c.Prefix != "hlsedge:" || c.DialTimeout != 2*time.Second || c.ReadTimeout != time.Second ||
		c.WriteTimeout != 3*time.Second || c.PingInterval != time.Second || c.ProbeInterval != 5*time.Second {
		t.Fatalf("defaults %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestConfigValidate(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		var c fleet.Config
		dec := yaml.NewDecoder(strings.NewReader(in))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		err := c.Validate()
		switch {
		case want == "" && err != nil:
			t.Fatalf("%s: %v", in, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Fatalf("%s: error %v, want it to say %q", in, err, want)
		}
	}
	f("address: localhost:6379", "")
	f("address: '[::1]:6379'", "")
	f("{}", "'redis.address' must be host:port")
	f("address: localhost", "'redis.address' must be host:port")
	f("address: ':6379'", "'redis.address' must be host:port")
	f("address: 'h:0'", "'redis.address' must be host:port")
	f("address: 'h:70000'", "'redis.address' must be host:port")
	f("{address: 'h:1', db: -1}", "'redis.db'")
	f("{address: 'h:1', prefix: 'a{b'}", "'redis.prefix'")
	f("{address: 'h:1', prefix: 'a b'}", "'redis.prefix'")
	f("{address: 'h:1', dial_timeout: 1ms}", "'redis.dial_timeout'")
	f("{address: 'h:1', read_timeout: 2m}", "'redis.read_timeout'")
	f("{address: 'h:1', write_timeout: 1ms}", "'redis.write_timeout'")
	f("{address: 'h:1', ping_interval: 1h}", "'redis.ping_interval'")
	f("{address: 'h:1', probe_interval: 1ms}", "'redis.probe_interval'")
	f("{address: 'h:1', tls: {cert_file: c.pem}}", "'redis.tls.cert_file' and 'redis.tls.key_file'")
	f("{address: 'h:1', tls: {ca_file: ca.pem, server_name: redis}}", "")
	f("sentinel: {master_name: mymaster, addresses: ['s1:26379', 's2:26379']}", "")
	f("sentinel: {addresses: ['s1:26379']}", "'redis.sentinel.master_name'")
	f("sentinel: {master_name: m}", "'redis.sentinel.addresses'")
	f("sentinel: {master_name: m, addresses: ['s1']}", "'redis.sentinel.addresses[0]' must be host:port")
}

func TestNodeName(t *testing.T) {
	f := func(in, want, wantErr string) {
		t.Helper()
		got, err := fleet.NodeName(in)
		if wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), wantErr) {
				t.Fatalf("NodeName(%q) error %v, want %q", in, err, wantErr)
			}
			return
		}
		if err != nil || got != want {
			t.Fatalf("NodeName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	host, err := os.Hostname()
	if err != nil {
		t.Fatalf("os.Hostname: %v", err)
	}
	f("", host, "")
	f("edge-1.eu_west", "edge-1.eu_west", "")
	f("edge 1", "", "'node' must be")
	f(strings.Repeat("n", 65), "", "'node' must be")
	if _, err := fleet.New(fleet.Config{Address: "127.0.0.1:1"}, "bad node", nil, nil); err == nil ||
		!strings.Contains(err.Error(), "'node'") {
		t.Fatalf("New with a bad node name: %v", err)
	}
}

func TestNewRefusesUnreadableFiles(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := func(c fleet.Config, want string) {
		t.Helper()
		c.Address = "127.0.0.1:1"
		_, err := fleet.New(c, "n", nil, nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("%+v: error %v, want %q", c, err, want)
		}
	}
	f(fleet.Config{PasswordFile: filepath.Join(dir, "missing")}, "'redis.password_file'")
	f(fleet.Config{PasswordFile: empty}, "'redis.password_file': file is empty")
	f(fleet.Config{PasswordEnv: "HLSEDGE_TEST_UNSET_PASSWORD"}, "'redis.password_env': the variable is unset or empty")
	f(fleet.Config{PasswordFile: empty, PasswordEnv: "X"}, "'redis.password_file' and 'redis.password_env' are both set")
	f(fleet.Config{TLS: &fleet.TLSConfig{CAFile: empty}}, "'redis.tls.ca_file' holds no PEM certificate")
	f(fleet.Config{TLS: &fleet.TLSConfig{CertFile: empty, KeyFile: empty}}, "'redis.tls.cert_file'")
}

// The password comes from its file; a wrong one leaves the member degraded, and the password appears in
// neither its health nor its log.
func TestPasswordFile(t *testing.T) {
	const secret = "s3cret-fleet-password"
	srv := fleettest.Start(t, "--requirepass", secret)
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "good"), filepath.Join(dir, "bad")
	if err := os.WriteFile(good, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("wrong-"+secret), 0o600); err != nil {
		t.Fatal(err)
	}

	cfg := testConfig(srv.Addr)
	cfg.PasswordFile = good
	c := newMember(t, cfg, "node-a")
	waitHealth(t, c, func(h fleet.Health) bool { return !h.Degraded })
	if _, err := c.AdmitSession(ctx(t), "u", "m", fleet.SessionLimit{Idle: time.Minute}, now()); err != nil {
		t.Fatal(err)
	}

	// The same password from an environment variable.
	t.Setenv("HLSEDGE_TEST_REDIS_PASSWORD", secret)
	envCfg := testConfig(srv.Addr)
	envCfg.PasswordEnv = "HLSEDGE_TEST_REDIS_PASSWORD"
	e := newMember(t, envCfg, "node-e")
	waitHealth(t, e, func(h fleet.Health) bool { return !h.Degraded })

	var logs bytes.Buffer
	cfg.PasswordFile = bad
	w, err := fleet.New(cfg, "node-b", slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})), nil)
	if err != nil {
		t.Fatal(err)
	}
	waitHealth(t, w, func(h fleet.Health) bool { return strings.Contains(h.Reason, "WRONGPASS") })
	w.Close()
	if h := w.Health(); strings.Contains(h.Reason, secret) || strings.Contains(logs.String(), secret) {
		t.Fatalf("the password leaked: %q\n%s", h.Reason, logs.String())
	}
}

// TLS to Redis: the member trusts the configured CA only.
func TestTLS(t *testing.T) {
	files := fleettest.NewTLSFiles(t)
	srv := fleettest.StartTLS(t, files)
	if out := srv.MustDo("PING"); out != "PONG" {
		t.Fatalf("PING over TLS: %q", out)
	}
	cfg := testConfig(srv.Addr)
	cfg.TLS = &fleet.TLSConfig{CAFile: files.CA}
	c := newMember(t, cfg, "node-a")
	waitHealth(t, c, func(h fleet.Health) bool { return !h.Degraded })
	echo(t, c, events(t, c), "over tls")

	// Without the CA the server's certificate is not trusted: degraded, with the reason.
	cfg.TLS = &fleet.TLSConfig{}
	u := newMember(t, cfg, "node-b")
	waitHealth(t, u, func(h fleet.Health) bool { return strings.Contains(h.Reason, "certificate") })

	// A client certificate and key are loaded when configured (the server accepts it, signed by its CA).
	cfg.TLS = &fleet.TLSConfig{CAFile: files.CA, CertFile: files.Cert, KeyFile: files.Key, ServerName: "localhost"}
	m := newMember(t, cfg, "node-c")
	waitHealth(t, m, func(h fleet.Health) bool { return !h.Degraded })
}

// Through Sentinel: the member asks the sentinel for the master and works on it.
func TestSentinel(t *testing.T) {
	master := fleettest.Start(t)
	sentinel := fleettest.StartSentinel(t, master)
	cfg := testConfig("")
	cfg.Sentinel = &fleet.SentinelConfig{MasterName: fleettest.SentinelMaster, Addresses: []string{sentinel.Addr}}
	c := newMember(t, cfg, "node-a")
	waitHealth(t, c, func(h fleet.Health) bool { return !h.Degraded })
	echo(t, c, events(t, c), "via sentinel")
	if _, err := c.AdmitSession(ctx(t), "alice", "tv", fleet.SessionLimit{Idle: time.Minute}, now()); err != nil {
		t.Fatal(err)
	}
	if n := master.MustDo("ZCARD", c.UserKey("alice", "sessions")); n != "1" {
		t.Fatalf("the master holds %s sessions of alice, want 1", n)
	}
}

package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"

	"github.com/hlsedge/hlsedge/authz"
	"github.com/hlsedge/hlsedge/authz/token"
	"github.com/hlsedge/hlsedge/internal/fleet"
	"github.com/hlsedge/hlsedge/proxy"
)

// runCheck is `hlsedge check --config FILE`, like `nginx -t`: the file is validated as serve would validate it,
// keys and key files are loaded, and a summary of what the edge would run is printed with warnings about
// risky choices. Secrets are never printed. The exit status is 1 with the first error, naming its field.
func runCheck(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "YAML config file to check (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *configPath == "" {
		return fmt.Errorf("--config FILE is required")
	}
	cfg, err := loadEdgeConfig(*configPath, "", "", "")
	if err != nil {
		return err
	}
	// Building the authorizer loads every key, key file and JWKS source, which validation alone does not read;
	// it starts nothing that outlives Close.
	auth, err := authz.New(cfg.Auth, slog.New(slog.NewTextHandler(io.Discard, nil)), authz.WithoutJanitor())
	if err != nil {
		return fmt.Errorf("building authorizer: %w", err)
	}
	auth.Close()
	summarize(stdout, *configPath, cfg)
	return nil
}

// summarize prints listeners, routes and origins, verifiers and groups, then the warnings.
func summarize(w io.Writer, path string, cfg *proxy.Config) {
	fmt.Fprintf(w, "config ok: %s\n", path)
	fmt.Fprintf(w, "listen:     %s\n", cfg.Listen)
	if cfg.Admin.Enabled() {
		fmt.Fprintf(w, "admin:      %s (token %s)\n", cfg.Admin.Addr(), setOrNot(cfg.Admin.HasToken()))
	} else {
		fmt.Fprintln(w, "admin:      off")
	}
	origins := make([]string, len(cfg.Origins))
	for i, o := range cfg.Origins {
		origins[i] = o.URL
	}
	fmt.Fprintf(w, "origins:    %s (tried in this order)\n", strings.Join(origins, ", "))
	for _, r := range cfg.Routes {
		fmt.Fprintf(w, "route:      %s{channel}/... -> origin %s{channel}/...\n", r.Prefix, r.OriginPrefix)
	}
	var warnings []string
	warn := func(format string, a ...any) { warnings = append(warnings, fmt.Sprintf(format, a...)) }
	a := &cfg.Auth
	if a.Disabled {
		fmt.Fprintln(w, "auth:       DISABLED")
		warn("auth.disabled: every channel is served without a token")
	} else {
		var v []string
		if a.JWT != nil {
			src := "secret"
			if len(a.JWT.Secrets) > 0 {
				src = keyList("HMAC key", a.JWT.Secrets)
			}
			switch {
			case a.JWT.JWKSURL != "":
				src = "jwks_url " + a.JWT.JWKSURL
			case a.JWT.JWKSFile != "":
				src = "jwks_file " + a.JWT.JWKSFile
			case len(a.JWT.PublicKeys) > 0:
				src = fmt.Sprintf("%d public key file(s)", len(a.JWT.PublicKeys))
			}
			v = append(v, fmt.Sprintf("jwt (%s; %s)", strings.Join(a.JWT.Algorithms, ","), src))
		}
		if a.SecureToken != nil {
			st := "securetoken"
			if len(a.SecureToken.Secrets) > 0 {
				st += " (" + keyList("key", a.SecureToken.Secrets) + ")"
			}
			v = append(v, st)
		}
		edge := "edge (child tokens)"
		if len(a.Edge.Secrets) > 0 {
			edge = "edge (child tokens; " + keyList("key", a.Edge.Secrets) + ", minting with the first)"
		}
		v = append(v, edge)
		fmt.Fprintf(w, "verifiers:  %s\n", strings.Join(v, ", "))
		if len(a.Groups) == 0 {
			fmt.Fprintln(w, "group:      default channels=* (every verifier)")
		}
		for _, g := range a.Groups {
			line := fmt.Sprintf("group:      %s channels=%s", g.Name, strings.Join(g.Channels, ","))
			if g.Public {
				line += " PUBLIC"
				warn("group %q is public: its channels are served without a token", g.Name)
			} else {
				line += fmt.Sprintf(" accept=%s child_token=%s default=%s", strings.Join(g.Accept, ","), g.ChildToken, g.Default)
			}
			for _, b := range g.Backends {
				line += fmt.Sprintf(" backend=%s:%s", b.Protocol, redactURL(b.URL))
			}
			if len(g.Backends) > 0 {
				line += " on_backend_error=" + g.OnBackendError
				if g.OnBackendError == "allow" {
					warn("group %q: on_backend_error: allow lets every viewer in while its backends are down (Astra's fail-open)", g.Name)
				}
			}
			fmt.Fprintln(w, line)
		}
	}
	if cfg.Signaling != nil {
		fmt.Fprintf(w, "signaling:  %s, socket.io %s\n", cfg.Signaling.Path, cfg.Signaling.SocketIOPath)
	} else {
		fmt.Fprintln(w, "signaling:  off")
	}
	node, err := fleet.NodeName(cfg.Node)
	if err != nil {
		node = "(none: " + err.Error() + ")"
	}
	if r := cfg.Redis; r != nil {
		where := r.Address
		if r.Sentinel != nil {
			where = "sentinel " + r.Sentinel.MasterName + " via " + strings.Join(r.Sentinel.Addresses, ",")
		}
		prefix := r.Prefix
		if prefix == "" {
			prefix = fleet.DefaultPrefix
		}
		fmt.Fprintf(w, "fleet:      node %s, redis %s db %d prefix %q, tls %s, password %s\n", node, where, r.DB, prefix,
			setOrNot(r.TLS != nil), setOrNot(r.PasswordFile != ""))
		if r.TLS == nil && r.Sentinel == nil && !loopback(r.Address) {
			warn("redis %s is reached without TLS: bans, user ids and session fingerprints cross the network in clear", r.Address)
		}
	} else {
		fmt.Fprintf(w, "fleet:      off (a single edge), node %s\n", node)
	}
	if cfg.Admin.Enabled() && !cfg.Admin.HasToken() {
		if loopback(cfg.Admin.Addr()) {
			warn("admin listener has no admin.token: anyone on this host can ban, kick and read sessions")
		} else {
			warn("admin listener %s is not on loopback and has no admin.token: anyone who reaches it can ban, kick and read sessions", cfg.Admin.Addr())
		}
	}
	if len(warnings) == 0 {
		fmt.Fprintln(w, "warnings:   none")
		return
	}
	fmt.Fprintln(w, "warnings:")
	for _, s := range warnings {
		fmt.Fprintf(w, "  - %s\n", s)
	}
}

// keyList says how many keys a list has and their ids, which are not secret.
func keyList(what string, keys []token.SecretConfig) string {
	ids := make([]string, 0, len(keys))
	for _, k := range keys {
		if k.KeyID != "" {
			ids = append(ids, k.KeyID)
		}
	}
	s := fmt.Sprintf("%d %ss", len(keys), what)
	if len(keys) == 1 {
		s = "1 " + what
	}
	if len(ids) > 0 {
		s += " kid " + strings.Join(ids, ",")
	}
	return s
}

func setOrNot(set bool) string {
	if set {
		return "set"
	}
	return "NOT set"
}

// loopback reports whether addr listens on loopback only; an empty host listens everywhere.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// redactURL drops userinfo and the query from a backend URL, which may carry credentials.
func redactURL(u string) string {
	if i := strings.Index(u, "://"); i >= 0 {
		if at := strings.LastIndex(u[i+3:], "@"); at >= 0 {
			u = u[:i+3] + "…@" + u[i+3+at+1:]
		}
	}
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		u = u[:i] + "?…"
	}
	return u
}

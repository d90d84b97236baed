package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/hlsedge/hlsedge/authz"
	"github.com/hlsedge/hlsedge/bench/synthorigin"
	"github.com/hlsedge/hlsedge/proxy"
)

// runDemo is what `make run` starts: the synthetic origin and the edge in one process, on the embedded config.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	originAddr := fs.String("origin-listen", "127.0.0.1:8081", "address of the synthetic origin")
	channels := fs.String("channels", "a001,a002", "channels the origin serves")
	variants := fs.Int("variants", 2, "variants per channel (a master playlist when > 1)")
	configPath := fs.String("config", "", "edge config (default: the embedded configs/demo.yaml)")
	listen := fs.String("listen", "", "edge address, overrides the config's 'listen'")
	admin := fs.String("admin", "", "admin address, overrides the config's 'admin.listen'")
	if err := fs.Parse(args); err != nil {
		return err
	}
	origin, err := synthorigin.New(synthorigin.Config{Channels: strings.Split(*channels, ","), URIs: synthorigin.URIsAbsolute, Variants: *variants})
	if err != nil {
		return fmt.Errorf("building demo origin: %w", err)
	}
	oln, err := net.Listen("tcp", *originAddr)
	if err != nil {
		return fmt.Errorf("listening for the demo origin: %w", err)
	}
	go origin.Serve(oln)
	defer origin.Shutdown()

	cfg, err := loadEdgeConfig(*configPath, *listen, "http://"+oln.Addr().String(), *admin)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	srv, err := proxy.New(cfg, proxy.Options{Log: log})
	if err != nil {
		return err
	}
	// Bound before anything is printed: the links carry the real ports (port 0 lets the kernel pick them), and
	// whoever follows one at once finds the edge accepting.
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listening on 'listen' %s: %w", cfg.Listen, err)
	}
	adminURL := "off"
	var adminLn net.Listener
	if cfg.Admin.Listen != "" {
		if adminLn, err = net.Listen("tcp", cfg.Admin.Listen); err != nil {
			ln.Close()
			return fmt.Errorf("listening on 'admin.listen' %s: %w", cfg.Admin.Listen, err)
		}
		adminURL = "http://" + adminLn.Addr().String()
	}
	links, err := demoLinks(cfg, ln.Addr().String(), strings.Split(*channels, ",")[0])
	if err != nil {
		ln.Close()
		if adminLn != nil {
			adminLn.Close()
		}
		return err
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln, adminLn) }()
	fmt.Fprintf(stdout, "hlsedge demo: origin http://%s, edge http://%s, admin %s\n%sstop with Ctrl-C\n", oln.Addr(), ln.Addr(), adminURL, links)

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutting down: %w", err)
	}
	return <-served
}

// demoLinks mints a day-long token with the demo's own secrets, so that the printed URL plays as it is.
func demoLinks(cfg *proxy.Config, edge, ch string) (string, error) {
	if cfg.Auth.Disabled || cfg.Auth.JWT == nil || cfg.Auth.JWT.Secret == "" {
		return fmt.Sprintf("play:  ffplay 'http://%s/play/%s/index.m3u8'\n", edge, ch), nil
	}
	tok, err := authz.MintJWT(authz.JWTMint{Alg: "HS256", Key: []byte(cfg.Auth.JWT.Secret), Streams: []string{"*"},
		Subject: "demo", TTL: 24 * time.Hour})
	if err != nil {
		return "", fmt.Errorf("minting the demo token: %w", err)
	}
	return fmt.Sprintf("play:  ffplay 'http://%s/play/%s/index.m3u8?token=%s'\npage:  http://%s/%s/embed.html?token=%s\n",
		edge, ch, tok, edge, ch, tok), nil
}

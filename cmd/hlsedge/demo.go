package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/hlsedge/hlsedge/authz/token"
	"github.com/hlsedge/hlsedge/bench/synthorigin"
	"github.com/hlsedge/hlsedge/proxy"
)

// runDemo is what `make run` starts: the synthetic origin and the edge in one process, on the embedded config.
// With --nodes 2 or more (`make run-fleet`) it also starts redis-server and runs that many edges as a fleet; with
// --tiers (`make run-tiers`) it runs two edges behind one shield instead.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	originAddr := fs.String("origin-listen", "127.0.0.1:8081", "address of the synthetic origin")
	channels := fs.String("channels", "a001,a002", "channels the origin serves")
	variants := fs.Int("variants", 2, "variants per channel (a master playlist when > 1)")
	configPath := fs.String("config", "", "edge config (default: the embedded configs/demo.yaml)")
	listen := fs.String("listen", "", "edge address, overrides the config's 'listen'")
	admin := fs.String("admin", "", "admin address, overrides the config's 'admin.listen'")
	nodes := fs.Int("nodes", 1, "edges to run; 2 or more form a fleet on a redis-server the demo starts (node k listens on the ports plus 100*(k-1))")
	tiers := fs.Bool("tiers", false, "run two edges behind one shield in front of the origin (edges on the ports plus 0 and 100, the shield plus 200)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *nodes < 1 || *nodes > 9 {
		return fmt.Errorf("--nodes must be between 1 and 9, got %d", *nodes)
	}
	if *tiers && *nodes > 1 {
		return fmt.Errorf("--tiers runs its own edges: it does not take --nodes %d", *nodes)
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
	ch := strings.Split(*channels, ",")[0]
	d := &demoNodes{configPath: *configPath, listen: *listen, admin: *admin, stderr: stderr}
	switch {
	case *tiers:
		return runDemoTiers(ctx, d, "http://"+oln.Addr().String(), ch, stdout)
	case *nodes > 1:
		return runDemoFleet(ctx, *nodes, d, "http://"+oln.Addr().String(), ch, stdout)
	}

	cfg, err := loadEdgeConfig(*configPath, *listen, "http://"+oln.Addr().String(), *admin)
	if err != nil {
		return err
	}
	log, level := newLevelLogger(cfg, stderr)
	n, err := startNode(cfg, log, nil)
	if err != nil {
		return err
	}
	n.src, n.level = &configSource{path: *configPath, listen: *listen, origins: "http://" + oln.Addr().String(), admin: *admin}, level
	// The addresses the listeners got, which differ from the config's when it asks for port 0.
	edgeAddr := n.ln.Addr().String()
	fmt.Fprintf(stdout, "hlsedge demo: origin http://%s, edge http://%s, admin http://%s\n", oln.Addr(), edgeAddr, n.adminAddr())
	if err := printDemoLinks(stdout, cfg, edgeAddr, ch); err != nil {
		_ = n.stop(context.Background())
		return err
	}
	fmt.Fprintln(stdout, "stop with Ctrl-C")
	return n.serve(ctx)
}

// printDemoLinks mints a day-long token with the demo's own secrets, so the printed URL plays as it is.
func printDemoLinks(w io.Writer, cfg *proxy.Config, edgeAddr, ch string) error {
	if cfg.Auth.Disabled || cfg.Auth.JWT == nil || cfg.Auth.JWT.Secret == "" {
		fmt.Fprintf(w, "play:  ffplay 'http://%s/play/%s/index.m3u8'\n", edgeAddr, ch)
		return nil
	}
	tok, err := token.MintJWT(token.JWTMint{Alg: "HS256", Key: []byte(cfg.Auth.JWT.Secret), Streams: []string{"*"},
		Subject: "demo", TTL: 24 * time.Hour})
	if err != nil {
		return fmt.Errorf("minting the demo token: %w", err)
	}
	fmt.Fprintf(w, "play:  ffplay 'http://%s/play/%s/index.m3u8?token=%s'\n", edgeAddr, ch, tok)
	fmt.Fprintf(w, "page:  http://%s/%s/embed.html?token=%s\n", edgeAddr, ch, tok)
	return nil
}

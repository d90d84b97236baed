package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"

	"github.com/hlsedge/hlsedge/proxy"
)

// demoNodes are the hlsedge nodes of a demo that runs several (the fleet, the tiers): each is built from the
// demo's config and flags like `hlsedge demo`'s single edge, they are served together, and a failure to start one
// stops those already started.
type demoNodes struct {
	// configPath, listen and admin are the demo's flags; each node applies them before its own changes.
	configPath, listen, admin string
	stderr                    io.Writer
	started                   []*node
}

// start builds and starts the node name in front of originURL. It listens on the configured ports plus 100*slot
// (8080, 8180... and 8090, 8190...), or on port 0, a free port it binds itself, when so asked; set makes the
// node's own changes to the config (its fleet, its tier) before it is validated again.
func (d *demoNodes) start(name string, slot int, originURL string, set func(*proxy.Config)) (*node, error) {
	cfg, err := loadEdgeConfig(d.configPath, d.listen, originURL, d.admin)
	if err != nil {
		return nil, err
	}
	cfg.Node = name
	if set != nil {
		set(cfg)
	}
	if cfg.Listen, err = shiftPort(cfg.Listen, 100*slot); err == nil && cfg.Admin.Enabled() {
		var a string
		a, err = shiftPort(cfg.Admin.Addr(), 100*slot)
		cfg.Admin.Listen = &a
	}
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		return nil, fmt.Errorf("%s: invalid config: %w", name, err)
	}
	log, _ := newLevelLogger(cfg, d.stderr)
	n, err := startNode(cfg, log, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	d.started = append(d.started, n)
	return n, nil
}

// stop releases every node started so far: the way out when a later step fails before serve.
func (d *demoNodes) stop() {
	for _, n := range d.started {
		_ = n.stop(context.Background())
	}
}

// printLinks prints a node's addresses and a URL that plays through it as it is.
func (d *demoNodes) printLinks(w io.Writer, n *node, channel string) error {
	fmt.Fprintf(w, "%s: edge http://%s, admin http://%s\n", n.name, n.ln.Addr(), n.adminAddr())
	return printDemoLinks(w, n.cfg, n.ln.Addr().String(), channel)
}

// serve serves every node until ctx is done or one of them stops on its own (a listener failed): then every node
// stops all its parts (node.serve), rather than leave the demo half alive.
func (d *demoNodes) serve(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, len(d.started))
	for _, n := range d.started {
		go func() {
			if err := n.serve(ctx); err != nil {
				errc <- fmt.Errorf("%s: %w", n.name, err)
				return
			}
			errc <- nil
		}()
	}
	var errs []error
	for range d.started {
		errs = append(errs, <-errc)
		cancel()
	}
	return errors.Join(errs...)
}

// shiftPort adds d to addr's port unless it is 0 (any free port).
func shiftPort(addr string, d int) (string, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", err
	}
	if port == 0 || d == 0 {
		return addr, nil
	}
	return net.JoinHostPort(host, strconv.Itoa(port+d)), nil
}

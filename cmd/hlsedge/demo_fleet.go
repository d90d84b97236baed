package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/hlsedge/hlsedge/internal/fleet"
	"github.com/hlsedge/hlsedge/internal/redisproc"
	"github.com/hlsedge/hlsedge/proxy"
)

// demoRedis is the redis-server `hlsedge demo --nodes N` runs for its fleet: Debian's binary, on a free
// loopback port, with its files in a temporary directory, and no persistence.
type demoRedis struct {
	addr string
	dir  string
	proc *redisproc.Process
}

// startDemoRedis starts redis-server and returns once it logged that it accepts connections.
func startDemoRedis() (*demoRedis, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errors.New("redis-server not found: install the Debian package redis-server (make run-fleet does)")
	}
	dir, err := os.MkdirTemp("", "hlsedge-demo-redis-")
	if err != nil {
		return nil, err
	}
	for range 10 {
		r, err := runDemoRedis(bin, dir)
		if err == nil {
			return r, nil
		}
		if !errors.Is(err, redisproc.ErrAddrInUse) {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	os.RemoveAll(dir)
	return nil, errors.New("redis-server: no free port found")
}

func runDemoRedis(bin, dir string) (*demoRedis, error) {
	port, err := redisproc.FreePort()
	if err != nil {
		return nil, err
	}
	proc, err := redisproc.Start(bin, append(redisproc.Args(port, dir), "--protected-mode", "yes"), redisproc.Ready, 30*time.Second)
	if err != nil {
		return nil, err
	}
	return &demoRedis{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), dir: dir, proc: proc}, nil
}

// stop kills redis-server and removes its directory.
func (r *demoRedis) stop() {
	r.proc.Kill()
	os.RemoveAll(r.dir)
}

// runDemoFleet is `hlsedge demo --nodes N`: redis-server, the origin (already started by runDemo) and N edges
// sharing bans, kicks, session limits and conferences through it. Node k listens on the configured ports plus
// 100*(k-1) (8080, 8180... and 8090, 8190...), or on port 0 when so asked.
func runDemoFleet(ctx context.Context, nodes int, d *demoNodes, originURL, channel string, stdout io.Writer) error {
	rs, err := startDemoRedis()
	if err != nil {
		return err
	}
	defer rs.stop()
	for k := 1; k <= nodes; k++ {
		if _, err := d.start("node"+strconv.Itoa(k), k-1, originURL, func(cfg *proxy.Config) {
			cfg.Redis = &fleet.Config{Address: rs.addr}
		}); err != nil {
			d.stop()
			return err
		}
	}
	fmt.Fprintf(stdout, "hlsedge demo: origin %s, redis %s, %d edges sharing bans, kicks, session limits and conferences\n",
		originURL, rs.addr, nodes)
	for _, n := range d.started {
		if err := d.printLinks(stdout, n, channel); err != nil {
			d.stop()
			return err
		}
	}
	if err := printConferenceLinks(stdout, d.started); err != nil {
		d.stop()
		return err
	}
	if len(d.started) > 1 && d.started[0].adminAddr() != "" {
		a, b := d.started[0], d.started[1]
		fmt.Fprintf(stdout, "kick:  play on %s, then find the session with curl http://%s/api/sessions (node column) and\n"+
			"       curl -X DELETE -H 'Content-Type: application/json' http://%s/api/sessions/ID on %s: %s stops the viewer\n",
			b.name, a.adminAddr(), a.adminAddr(), a.name, b.name)
	}
	fmt.Fprintln(stdout, "stop with Ctrl-C")
	return d.serve(ctx)
}

// printConferenceLinks prints one conference room reachable on every node: the moderator on the first node,
// a participant on the last, each with the cookie the signaling server reads its token from.
func printConferenceLinks(w io.Writer, nodes []*node) error {
	cfg := nodes[0].cfg.Signaling
	if cfg == nil || cfg.JWT.Secret == "" {
		return nil
	}
	const room, contentID = "demo", "demo-run-1"
	for i, n := range []*node{nodes[0], nodes[len(nodes)-1]} {
		moderator := i == 0
		who := "participant"
		if moderator {
			who = "moderator"
		}
		claims := jwt.MapClaims{
			"context": map[string]any{"user": map[string]any{"name": "demo " + who, "email": who + "@demo.invalid", "id": who}},
			"aud":     "socketio", "room": room, "content_id": contentID, "moderator": moderator,
			"exp": time.Now().Add(24 * time.Hour).Unix(),
		}
		if cfg.JWT.Issuer != "" {
			claims["iss"] = cfg.JWT.Issuer
		}
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(cfg.JWT.Secret))
		if err != nil {
			return fmt.Errorf("minting the demo conference token: %w", err)
		}
		fmt.Fprintf(w, "conference (%s on %s): websocat -H 'Cookie: socket_io_token_%s=%s' 'ws://%s%s?room=%s'\n",
			who, n.name, contentID, tok, n.ln.Addr(), cfg.Path, url.QueryEscape(room))
	}
	return nil
}

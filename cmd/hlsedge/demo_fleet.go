package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/hlsedge/hlsedge/internal/fleet"
)

// demoRedis is the redis-server `hlsedge demo --nodes N` runs for its fleet: Debian's binary, on a free
// loopback port, with its files in a temporary directory, and no persistence.
type demoRedis struct {
	addr string
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
}

// errPortTaken is a port found free that something took before redis-server bound it.
var errPortTaken = errors.New("port taken")

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
		if !errors.Is(err, errPortTaken) {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	os.RemoveAll(dir)
	return nil, errors.New("redis-server: no free port found")
}

func runDemoRedis(bin, dir string) (*demoRedis, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--daemonize", "no", "--logfile", "", "--loglevel", "notice", "--protected-mode", "yes")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting redis-server: %w", err)
	}
	r := &demoRedis{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), dir: dir, cmd: cmd, done: make(chan struct{})}
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(out)
		sent := false
		var last []string
		for sc.Scan() {
			line := sc.Text()
			if !sent {
				last = append(last, line)
				switch {
				case strings.Contains(line, "Ready to accept connections"):
					ready <- nil
					sent = true
				case strings.Contains(line, "Address already in use"):
					ready <- errPortTaken
					sent = true
				}
			}
		}
		_, _ = io.Copy(io.Discard, out)
		_ = cmd.Wait()
		if !sent {
			ready <- fmt.Errorf("redis-server exited before it was ready:\n%s", strings.Join(last, "\n"))
		}
		close(r.done)
	}()
	t := time.NewTimer(30 * time.Second)
	defer t.Stop()
	select {
	case err = <-ready:
	case <-t.C:
		err = errors.New("redis-server did not start within 30 s")
	}
	if err != nil {
		_ = cmd.Process.Kill()
		<-r.done
		return nil, err
	}
	return r, nil
}

// stop kills redis-server and removes its directory.
func (r *demoRedis) stop() {
	_ = r.cmd.Process.Kill()
	<-r.done
	os.RemoveAll(r.dir)
}

// runDemoFleet is `hlsedge demo --nodes N`: redis-server, the origin (already started by runDemo) and N edges
// sharing bans, kicks, session limits and conferences through it. Node k listens on the configured ports plus
// 100*(k-1) (8080, 8180... and 8090, 8190...), or on port 0 when so asked.
func runDemoFleet(ctx context.Context, nodes int, configPath, listen, originURL, adminAddr, channel string, stdout, stderr io.Writer) error {
	rs, err := startDemoRedis()
	if err != nil {
		return err
	}
	defer rs.stop()
	var started []*node
	stopAll := func() {
		for _, n := range started {
			_ = n.stop(context.Background())
		}
	}
	for k := 1; k <= nodes; k++ {
		cfg, err := loadEdgeConfig(configPath, listen, originURL, adminAddr)
		if err != nil {
			stopAll()
			return err
		}
		cfg.Node = "node" + strconv.Itoa(k)
		cfg.Redis = &fleet.Config{Address: rs.addr}
		if cfg.Listen, err = shiftPort(cfg.Listen, 100*(k-1)); err == nil && cfg.Admin.Enabled() {
			var a string
			a, err = shiftPort(cfg.Admin.Addr(), 100*(k-1))
			cfg.Admin.Listen = &a
		}
		if err == nil {
			err = cfg.Validate()
		}
		if err != nil {
			stopAll()
			return fmt.Errorf("node %d: invalid config: %w", k, err)
		}
		log, _ := newLevelLogger(cfg, stderr)
		n, err := startNode(cfg, log, nil)
		if err != nil {
			stopAll()
			return fmt.Errorf("node %d: %w", k, err)
		}
		started = append(started, n)
	}
	fmt.Fprintf(stdout, "hlsedge demo: origin %s, redis %s, %d edges sharing bans, kicks, session limits and conferences\n",
		originURL, rs.addr, nodes)
	for _, n := range started {
		fmt.Fprintf(stdout, "%s: edge http://%s, admin http://%s\n", n.name, n.ln.Addr(), n.adminAddr())
		if err := printDemoLinks(stdout, n.cfg, n.ln.Addr().String(), channel); err != nil {
			stopAll()
			return err
		}
	}
	if err := printConferenceLinks(stdout, started); err != nil {
		stopAll()
		return err
	}
	if len(started) > 1 && started[0].adminAddr() != "" {
		a, b := started[0], started[1]
		fmt.Fprintf(stdout, "kick:  play on %s, then find the session with curl http://%s/api/sessions (node column) and\n"+
			"       curl -X DELETE -H 'Content-Type: application/json' http://%s/api/sessions/ID on %s: %s stops the viewer\n",
			b.name, a.adminAddr(), a.adminAddr(), a.name, b.name)
	}
	fmt.Fprintln(stdout, "stop with Ctrl-C")
	errc := make(chan error, len(started))
	for _, n := range started {
		go func() { errc <- n.serve(ctx) }()
	}
	var errs []error
	for range started {
		errs = append(errs, <-errc)
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

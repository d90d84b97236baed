package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"syscall"

	"github.com/hlsedge/hlsedge/authz/token"
	"github.com/hlsedge/hlsedge/bench"
	"github.com/hlsedge/hlsedge/signaling"
)

// runBenchWS simulates conference participants against a signaling socket: `bench ws --url ws://edge/ws
// --secret S`, or `--self` to start a signaling server in this process (no edge needed), or `--serve ADDR` to run
// only that server, so that its memory can be measured in a process of its own.
func runBenchWS(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench ws", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg bench.WSConfig
	fs.StringVar(&cfg.URL, "url", "", "signaling socket URL, ws://host:port/ws")
	fs.Func("edge", "an edge's base URL, ws://host:port; repeat it or separate with commas to spread the sockets over several edges round robin (the URL's host is replaced; --url defaults to the first edge's /ws)", func(v string) error {
		cfg.Edges = append(cfg.Edges, bench.SplitList(v)...)
		return nil
	})
	fs.StringVar(&cfg.Secret, "secret", "", "HS256 secret the server verifies tokens with (signaling.jwt.secret)")
	fs.StringVar(&cfg.Issuer, "issuer", "", "iss claim, if the server checks one")
	fs.StringVar(&cfg.Origin, "origin", "", "Origin header to send (must be on the server's allow-list)")
	fs.IntVar(&cfg.Participants, "participants", 100, "participants (non-moderator sockets)")
	fs.IntVar(&cfg.Rooms, "rooms", 1, "conferences the participants are spread over")
	fs.IntVar(&cfg.Moderators, "moderators", 1, "moderators per conference")
	fs.DurationVar(&cfg.Duration, "duration", 10e9, "chat phase duration, after everyone is admitted")
	fs.Float64Var(&cfg.ChatRate, "chat-rate", 1, "chat messages per second per conference")
	fs.DurationVar(&cfg.AdmitInterval, "admit-interval", 200e6, "how often moderators admit everyone waiting")
	fs.IntVar(&cfg.Concurrency, "concurrency", 64, "dials in flight")
	fs.StringVar(&cfg.MetricsURL, "metrics", "", "the server's Prometheus /metrics URL, for its memory per socket")
	fs.DurationVar(&cfg.Timeout, "timeout", 30e9, "bound on one dial and on the wait for admissions")
	jsonPath := fs.String("json", "", "write the report as JSON to this file")
	self := fs.Bool("self", false, "start a signaling server in this process and run against it")
	serve := fs.String("serve", "", "only run a signaling server on this address (with /metrics) until interrupted")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %v", fs.Args())
	}
	raiseNoFile(stderr)
	if len(cfg.Edges) > 0 && (*self || *serve != "") {
		return errors.New("--edge runs against edges already running; it does not go with --self or --serve")
	}
	if cfg.URL == "" && len(cfg.Edges) > 0 {
		cfg.URL = strings.TrimSuffix(cfg.Edges[0], "/") + "/ws"
	}

	if *self || *serve != "" {
		hint := "as given by --secret"
		if cfg.Secret == "" {
			b := make([]byte, 32)
			_, _ = rand.Read(b)
			cfg.Secret = hex.EncodeToString(b)
			hint = cfg.Secret // generated: a separate `bench ws --secret` needs it
		}
		scfg := signaling.Config{
			JWT: token.JWTConfig{Secret: cfg.Secret, Issuer: cfg.Issuer},
			// The simulated conferences may be larger than the default limit.
			MaxConnsPerConference: max(cfg.Participants/max(cfg.Rooms, 1)+cfg.Moderators+16, 5000),
		}
		if cfg.Origin != "" {
			scfg.AllowedOrigins = []string{cfg.Origin}
		}
		addr := *serve
		if addr == "" {
			addr = "127.0.0.1:0"
		}
		srv, err := bench.StartWSServer(addr, scfg, bench.WSServerOptions{
			Log:        slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
			GCOnScrape: true,
		})
		if err != nil {
			return err
		}
		defer srv.Close()
		if *serve != "" {
			fmt.Fprintf(stdout, "signaling server on %s, metrics on %s; secret %s\n", srv.URL(), srv.MetricsURL(), hint)
			<-ctx.Done()
			return nil
		}
		cfg.URL = srv.URL()
		if cfg.MetricsURL == "" {
			// In-process: the memory includes this harness's own client sockets.
			cfg.MetricsURL = srv.MetricsURL()
			fmt.Fprintln(stderr, "note: --self measures server and clients in one process; use --serve and --metrics for the server alone")
		}
	}
	if cfg.URL == "" {
		return errors.New("--url or --self is required")
	}
	rep, err := bench.RunWS(ctx, cfg, stderr)
	if rep != nil {
		if werr := rep.WriteSummary(stdout); werr != nil && err == nil {
			err = werr
		}
		if *jsonPath != "" {
			if werr := rep.WriteJSON(*jsonPath); werr != nil && err == nil {
				err = werr
			}
		}
	}
	if errors.Is(err, context.Canceled) {
		return nil // interrupted: the summary of what ran is the result
	}
	return err
}

// raiseNoFile lifts the open-file soft limit to the hard one: each simulated participant is a socket.
func raiseNoFile(stderr io.Writer) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil || l.Cur >= l.Max {
		return
	}
	l.Cur = l.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		fmt.Fprintf(stderr, "note: open-file limit stays at its soft value: %v\n", err)
	}
}

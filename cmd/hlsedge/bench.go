package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hlsedge/hlsedge/bench"
)

// runBench dispatches `bench hls` (simulated HLS viewers) and `bench ws` (simulated conference participants).
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: hlsedge bench hls|ws [flags]")
		return flag.ErrHelp
	}
	switch args[0] {
	case "hls":
		return runBenchHLS(ctx, args[1:], stdout, stderr)
	case "ws":
		return runBenchWS(ctx, args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprintln(stderr, "usage: hlsedge bench hls|ws [flags]")
		return flag.ErrHelp
	}
	return fmt.Errorf("unknown bench %q (want hls or ws)", args[0])
}

func runBenchHLS(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench hls", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg bench.HLSConfig
	fs.StringVar(&cfg.URL, "url", "", "master or media playlist URL (tokens used as given); with --mint a template where {channel} is replaced")
	var edges []string
	fs.Func("edge", "an edge's base URL, http://host:port; repeat it or separate with commas to spread the viewers over several edges round robin (the URL's host is replaced)", func(v string) error {
		edges = append(edges, bench.SplitList(v)...)
		return nil
	})
	fs.BoolVar(&cfg.LL, "ll", false, "play low-latency HLS: blocking playlist reloads, hinted parts, part delivery latency")
	fs.IntVar(&cfg.Viewers, "viewers", 100, "simulated viewers")
	fs.DurationVar(&cfg.Ramp, "ramp", 0, "spread the viewers' starts over this long")
	fs.DurationVar(&cfg.Duration, "duration", 30*time.Second, "length of the run, ramp included")
	fs.StringVar(&cfg.Variant, "variant", bench.VariantLowest, "variant choice in a master playlist: lowest, highest or random")
	fs.DurationVar(&cfg.Timeout, "timeout", 10*time.Second, "per-request timeout")
	fs.IntVar(&cfg.MaxConns, "max-conns", 0, "connections per host (default viewers+16)")
	fs.StringVar(&cfg.OriginStats, "origin-stats", "", "the demo origin's /stats URL, to report origin offload")
	fs.DurationVar(&cfg.Interval, "interval", time.Second, "progress line and time series period")
	mintKind := fs.String("mint", "", "mint a token per viewer: jwt, securetoken or edge")
	secret := fs.String("secret", "", "secret for --mint")
	channels := fs.String("channels", "a001", "channels for --mint, dealt to viewers round robin")
	param := fs.String("token-param", "token", "query parameter that carries a minted token")
	mintTTL := fs.Duration("mint-ttl", 0, "minted token lifetime (default duration + 1h)")
	mintAlg := fs.String("mint-alg", "HS256", "JWT algorithm for --mint jwt: HS256, HS384 or HS512")
	mintIP := fs.String("mint-ip", "", "bind minted tokens to this client IP (default unbound)")
	jsonPath := fs.String("json", "", "write the report as JSON to this file")
	htmlPath := fs.String("report", "", "write a self-contained HTML report to this file")
	quiet := fs.Bool("quiet", false, "no progress line")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	cfg.Edges = edges
	base := "http://127.0.0.1:8080"
	if len(edges) > 0 {
		base = strings.TrimSuffix(edges[0], "/")
	}
	if *mintKind != "" {
		cfg.Mint = &bench.MintConfig{Kind: *mintKind, Secret: *secret, Channels: bench.SplitList(*channels), Param: *param,
			TTL: *mintTTL, Alg: *mintAlg, IP: *mintIP}
		if cfg.URL == "" {
			cfg.URL = base + "/play/{channel}/index.m3u8"
		}
	} else if cfg.URL == "" && len(edges) > 0 {
		cfg.URL = base + "/play/a001/index.m3u8"
	}
	var progress io.Writer = stderr
	if *quiet {
		progress = nil
	}
	rep, err := bench.RunHLS(ctx, cfg, progress)
	if rep == nil {
		return err
	}
	if werr := rep.WriteSummary(stdout); werr != nil {
		return werr
	}
	if *jsonPath != "" {
		if werr := rep.WriteJSON(*jsonPath); werr != nil {
			return werr
		}
	}
	if *htmlPath != "" {
		if werr := rep.WriteHTML(*htmlPath); werr != nil {
			return werr
		}
	}
	// An interrupt ends the run early; the partial report is still worth printing and is not a failure.
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/hlsedge/hlsedge/bench/synthorigin"
)

// runOrigin serves the synthetic Astra-like live origin until ctx is done.
func runOrigin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("origin", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8081", "address to listen on")
	channels := fs.String("channels", "a001,a002", "comma-separated channel ids served under /play/{channel}/")
	uris := fs.String("uris", synthorigin.URIsAbsolute, "segment URI style in playlists: absolute (like Astra), path or relative")
	variants := fs.Int("variants", 1, "variants per channel; above 1 index.m3u8 is a master playlist")
	segDur := fs.Duration("segment-duration", 3*time.Second, "live segment duration")
	window := fs.Int("window", 0, "segments per media playlist (0: 4, or with --ll enough for delta updates to skip some)")
	delay := fs.Duration("delay", 0, "artificial latency before each segment response")
	ll := fs.Bool("ll", false, "serve low-latency HLS: fMP4 parts, preload hints, blocking playlist reload")
	parts := fs.Int("parts", 0, "parts per segment with --ll: 1, 3, 5 or 15 (default 5)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var chs []string
	for _, c := range strings.Split(*channels, ",") {
		if c = strings.TrimSpace(c); c != "" {
			chs = append(chs, c)
		}
	}
	o, err := synthorigin.New(synthorigin.Config{
		Channels: chs, URIs: *uris, Variants: *variants,
		SegmentDuration: *segDur, WindowSize: *window, Delay: *delay, LL: *ll, Parts: *parts,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", *listen, err)
	}
	errc := make(chan error, 1)
	go func() { errc <- o.Serve(ln) }()
	fmt.Fprintf(stdout, "hlsedge origin: http://%s/play/%s/index.m3u8 (stats: http://%s/stats)\n", ln.Addr(), chs[0], ln.Addr())
	select {
	case <-ctx.Done():
		o.Shutdown()
		if err := <-errc; err != nil && !errors.Is(err, net.ErrClosed) {
			return fmt.Errorf("serving: %w", err)
		}
		return nil
	case err := <-errc:
		o.Shutdown()
		if err != nil {
			return fmt.Errorf("serving: %w", err)
		}
		return nil
	}
}

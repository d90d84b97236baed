package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/hlsedge/hlsedge/configs"
	"github.com/hlsedge/hlsedge/proxy"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "YAML config file (default: the embedded configs/demo.yaml)")
	listen := fs.String("listen", "", "public address, overrides 'listen'")
	origin := fs.String("origin", "", "origin URL(s), comma-separated, override 'origins'")
	admin := fs.String("admin", "", "admin address, overrides 'admin.listen'")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadEdgeConfig(*configPath, *listen, *origin, *admin)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	srv, err := proxy.New(cfg, proxy.Options{Log: log})
	if err != nil {
		return err
	}
	log.Info("edge starting", "listen", cfg.Listen, "admin", cfg.Admin.Listen, "origins", len(cfg.Origins))
	if err := srv.ListenAndServe(ctx); err != nil {
		return err
	}
	log.Info("edge stopped")
	return nil
}

// loadEdgeConfig reads the file (or the embedded demo), applies flag overrides, then defaults and validation, so
// that an override is validated like a file value.
func loadEdgeConfig(path, listen, origins, admin string) (*proxy.Config, error) {
	var (
		cfg *proxy.Config
		err error
	)
	if path == "" {
		cfg, err = proxy.ParseConfig(configs.Demo)
	} else {
		cfg, err = proxy.LoadConfig(path)
	}
	if err != nil {
		return nil, err
	}
	if listen != "" {
		cfg.Listen = listen
	}
	if admin != "" {
		cfg.Admin.Listen = admin
	}
	if origins != "" {
		cfg.Origins = nil
		for _, o := range strings.Split(origins, ",") {
			cfg.Origins = append(cfg.Origins, proxy.OriginConfig{URL: strings.TrimSpace(o)})
		}
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid config: %w", err)
	}
	return cfg, nil
}

func newLogger(cfg *proxy.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: level}
	if w == nil {
		w = os.Stderr
	}
	if cfg.Log.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

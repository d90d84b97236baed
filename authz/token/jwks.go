package token

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// kickInterval is the least time between two fetches that unknown key ids ask for (or jwks_refresh when
// shorter), so a flood of tokens with made-up kids cannot turn the edge into a load generator against the issuer.
const kickInterval = 30 * time.Second

// keySource holds a JWT verifier's public keys: the configured PEM files plus, when set, a JWKS file or URL that
// a background goroutine reloads. Readers only ever do one atomic load.
type keySource struct {
	static  []*pubKey
	file    string
	url     string
	refresh time.Duration
	timeout time.Duration
	client  *http.Client
	log     *slog.Logger

	cur       atomic.Pointer[keySet]
	kick      chan struct{}
	lastFetch atomic.Int64 // unix nanos of the last fetch attempt
	stop      chan struct{}
	wg        sync.WaitGroup
	// loaded, when set, hears of every background load attempt once its outcome is in place; tests wait on it
	// instead of on the clock.
	loaded chan<- struct{}
}

func newKeySource(cfg *JWTConfig, log *slog.Logger, loaded chan<- struct{}) (*keySource, error) {
	s := &keySource{
		loaded:  loaded,
		file:    cfg.JWKSFile,
		url:     cfg.JWKSURL,
		refresh: cfg.JWKSRefresh,
		timeout: cfg.JWKSTimeout,
		log:     log,
		kick:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
	}
	for i, pk := range cfg.PublicKeys {
		data, err := os.ReadFile(pk.File)
		if err != nil {
			return nil, fmt.Errorf("public_keys[%d]: %w", i, err)
		}
		keys, err := parsePublicKeyPEM(data)
		if err != nil {
			return nil, fmt.Errorf("public_keys[%d] %s: %w", i, pk.File, err)
		}
		for _, k := range keys {
			fam, err := familyOfKey(k)
			if err != nil {
				return nil, fmt.Errorf("public_keys[%d] %s: %w", i, pk.File, err)
			}
			s.static = append(s.static, newPubKey(pk.KeyID, "", fam, k))
		}
	}
	s.cur.Store(newKeySet(s.static))
	if s.file != "" {
		// A broken file at start is a config error the operator must see now, unlike a URL that may be down.
		if err := s.load(context.Background()); err != nil {
			return nil, err
		}
	}
	if s.url != "" {
		s.client = &http.Client{Timeout: s.timeout}
		ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
		if err := s.load(ctx); err != nil {
			s.log.Warn("token: jwks not loaded at start; tokens signed with its keys are refused until it loads", "err", err)
		}
		cancel()
	}
	if s.file != "" || s.url != "" {
		s.wg.Add(1)
		go s.loop()
	}
	return s, nil
}

func (s *keySource) keys() *keySet { return s.cur.Load() }

// wantRefresh asks the loop for an early fetch; it never blocks the request path.
func (s *keySource) wantRefresh() {
	if s.url == "" {
		return
	}
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *keySource) close() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	s.wg.Wait()
}

func (s *keySource) loop() {
	defer s.wg.Done()
	t := time.NewTicker(s.refresh)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		case <-s.kick:
			if time.Since(time.Unix(0, s.lastFetch.Load())) < min(kickInterval, s.refresh) {
				continue
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
		go func() {
			// Close() must not wait for a slow issuer.
			select {
			case <-s.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		if err := s.load(ctx); err != nil {
			s.log.Warn("token: jwks refresh failed; keeping the previous keys", "err", err)
		}
		cancel()
		if s.loaded != nil {
			select {
			case s.loaded <- struct{}{}:
			default:
			}
		}
	}
}

// load reads the JWKS and swaps in a new key set. On any failure the previous set stays.
func (s *keySource) load(ctx context.Context) error {
	s.lastFetch.Store(time.Now().UnixNano())
	var (
		data []byte
		err  error
		src  = s.file
	)
	if s.file != "" {
		data, err = readLimited(s.file)
	} else {
		src = s.url
		data, err = s.fetch(ctx)
	}
	if err != nil {
		return err
	}
	keys, skipped, err := parseJWKS(data)
	if err != nil {
		return err
	}
	if len(keys) == 0 {
		return errors.New("jwks holds no usable signature key")
	}
	if skipped > 0 {
		s.log.Info("token: jwks keys skipped (unsupported, encryption or weak)", "skipped", skipped, "source", src)
	}
	s.cur.Store(newKeySet(s.static, keys))
	return nil
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("jwks file: %w", err)
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, maxJWKSBytes+1))
}

func (s *keySource) fetch(ctx context.Context) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, fmt.Errorf("jwks url: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("jwks fetch: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jwks fetch: status %d", resp.StatusCode)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("jwks fetch: %w", err)
	}
	return data, nil
}

package authz

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// WebhookConfig posts session events, in batches, as a JSON array.
type WebhookConfig struct {
	// URL receives POSTs; empty disables the webhook.
	URL string `yaml:"url"`
	// Timeout bounds one POST. Default 5s.
	Timeout time.Duration `yaml:"timeout"`
	// QueueSize bounds the events waiting to be sent; when it is full, new events are dropped and counted, so a
	// slow receiver never holds up viewers. Default 4096.
	QueueSize int `yaml:"queue_size"`
	// BatchSize is the most events in one POST. Default 100.
	BatchSize int `yaml:"batch_size"`
}

func (c *WebhookConfig) setDefaults() {
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Second
	}
	if c.QueueSize == 0 {
		c.QueueSize = 4096
	}
	if c.BatchSize == 0 {
		c.BatchSize = 100
	}
}

func (c *WebhookConfig) validate() error {
	if c.URL == "" {
		return nil
	}
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("'auth.sessions.webhook.url' must be an http(s) URL")
	}
	if c.Timeout <= 0 || c.Timeout > time.Minute {
		return errors.New("'auth.sessions.webhook.timeout' must be between 0 and 1m")
	}
	if c.QueueSize < 1 || c.QueueSize > 1_000_000 {
		return errors.New("'auth.sessions.webhook.queue_size' must be between 1 and 1000000")
	}
	if c.BatchSize < 1 || c.BatchSize > 10000 {
		return errors.New("'auth.sessions.webhook.batch_size' must be between 1 and 10000")
	}
	return nil
}

// webhook is a bounded queue and one sender goroutine.
type webhook struct {
	url    string
	client *http.Client
	batch  int
	q      chan SessionEvent
	stop   chan struct{}
	wg     sync.WaitGroup
	log    *slog.Logger

	sent, dropped, failed atomic.Uint64
}

func newWebhook(c WebhookConfig, log *slog.Logger) *webhook {
	w := &webhook{
		url:    c.URL,
		client: &http.Client{Timeout: c.Timeout},
		batch:  c.BatchSize,
		q:      make(chan SessionEvent, c.QueueSize),
		stop:   make(chan struct{}),
		log:    log,
	}
	w.wg.Add(1)
	go w.run()
	return w
}

// send never blocks.
func (w *webhook) send(e SessionEvent) {
	select {
	case w.q <- e:
	default:
		w.dropped.Add(1)
	}
}

func (w *webhook) run() {
	defer w.wg.Done()
	buf := make([]SessionEvent, 0, w.batch)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	flush := func() {
		if len(buf) == 0 {
			return
		}
		if err := w.post(buf); err != nil {
			w.failed.Add(uint64(len(buf)))
			w.log.Warn("authz: session webhook failed", "events", len(buf), "err", err)
		} else {
			w.sent.Add(uint64(len(buf)))
		}
		buf = buf[:0]
	}
	for {
		select {
		case e := <-w.q:
			buf = append(buf, e)
			if len(buf) >= w.batch {
				flush()
			}
		case <-tick.C:
			flush()
		case <-w.stop:
			// Send what is queued, once, within one timeout.
			for len(w.q) > 0 && len(buf) < cap(buf)*4 {
				buf = append(buf, <-w.q)
			}
			flush()
			return
		}
	}
}

func (w *webhook) post(evs []SessionEvent) error {
	body, err := json.Marshal(evs)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), w.client.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := w.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook answered %d", resp.StatusCode)
	}
	return nil
}

func (w *webhook) close() {
	close(w.stop)
	w.wg.Wait()
}

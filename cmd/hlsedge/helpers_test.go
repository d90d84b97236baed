package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hlsedge/hlsedge/internal/testkit"
)

// guard only turns a hang into a failure; no test waits on it to make progress.
const guard = 30 * time.Second

// lockedBuffer is written by the command's goroutine while the test reads it; every write is signalled, so a
// test waits for output instead of polling.
type lockedBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	written chan struct{}
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.written == nil {
		l.written = make(chan struct{}, 1)
	}
	select {
	case l.written <- struct{}{}:
	default:
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *lockedBuffer) writes() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.written == nil {
		l.written = make(chan struct{}, 1)
	}
	return l.written
}

// waitFor returns the first match of re in what was written, waiting for writes until the command exits. The
// deadline only keeps a hung command from hanging the test run.
func (l *lockedBuffer) waitFor(t *testing.T, re *regexp.Regexp, exited <-chan int) []string {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		if m := re.FindStringSubmatch(l.String()); m != nil {
			return m
		}
		select {
		case <-l.writes():
		case code := <-exited:
			t.Fatalf("the command exited (%d) before printing %s; it printed %q", code, re, l.String())
		case <-deadline:
			t.Fatalf("nothing matching %s after 60 s; printed %q", re, l.String())
		}
	}
}

// startDemo runs `hlsedge demo` with args and every listener on port 0 until the test ends; then it cancels the
// demo, as SIGTERM does, and expects it to exit 0. It returns what the demo prints and where its exit code
// arrives, for waitFor.
func startDemo(t *testing.T, args ...string) (*lockedBuffer, <-chan int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut lockedBuffer
	args = append(append([]string{"demo"}, args...), "--origin-listen", "127.0.0.1:0", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0")
	done := make(chan int, 1)
	go func() { done <- run(ctx, args, &out, &errOut) }()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("demo exited %d after SIGTERM-like cancel; stderr: %s", code, errOut.String())
			}
		case <-time.After(guard):
			t.Errorf("demo did not shut down within %v", guard)
		}
	})
	return &out, done
}

// refusesToServe runs serve on yaml and expects it to exit non-zero naming want.
func refusesToServe(t *testing.T, yaml, want string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "edge.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut lockedBuffer
	code := run(context.Background(), []string{"serve", "--config", path}, &out, &errOut)
	if code == 0 || !strings.Contains(errOut.String(), want) {
		t.Fatalf("exit %d, stderr %q; want non-zero and %s", code, errOut.String(), want)
	}
}

const testJWTSecret = "cmd-jwt-secret-0123456789abcdef0123"

// stopLog records the parts a node releases, in order.
type stopLog struct {
	mu    sync.Mutex
	parts []string
}

func (s *stopLog) stopped(part string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.parts = append(s.parts, part)
}

func (s *stopLog) get() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.parts)
}

var httpClient = &http.Client{Timeout: 20 * time.Second}

// fetch sends a GET; hdr is name, value pairs.
func fetch(t *testing.T, url string, hdr ...string) (int, string) {
	t.Helper()
	code, _, b := testkit.Do(t, httpClient, http.MethodGet, url, "", hdr...)
	return code, string(b)
}

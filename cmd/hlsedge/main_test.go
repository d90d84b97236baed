package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is written by the command's goroutine while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestServeRefusesABadConfigNamingTheField(t *testing.T) {
	f := func(yaml, want string) {
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
	f("origins: [{url: 'http://127.0.0.1:1'}]\nauth: {disabled: true}\nupstream: {timeout: -1s}\n", "'upstream.timeout' must be greater than zero")
	f("origins: []\nauth: {disabled: true}\n", "'origins' must list at least one origin")
	f("origins: [{url: 'http://127.0.0.1:1'}]\nauth: {jwt: {algorithms: [HS256], secret: short}}\n", "'auth.jwt.secret'")
	f("origins: [{url: 'http://127.0.0.1:1'}]\nauth: {disabled: true}\ncache: {max_byte: 1}\n", "max_byte")
	if code := run(context.Background(), []string{"nonsense"}, &lockedBuffer{}, &lockedBuffer{}); code != 2 {
		t.Fatalf("unknown command: exit %d, want 2", code)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestDemoPrintsAPlayableURL is `make run` in-process: the printed URL plays in the real ffprobe.
func TestDemoPrintsAPlayableURL(t *testing.T) {
	if _, err := exec.LookPath("ffprobe"); err != nil {
		t.Fatal("ffprobe is missing: `make test` installs ffmpeg")
	}
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut lockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"demo", "--origin-listen", freeAddr(t), "--listen", freeAddr(t), "--admin", freeAddr(t)}, &out, &errOut)
	}()
	defer func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("demo exited %d after SIGTERM-like cancel; stderr: %s", code, errOut.String())
			}
		case <-time.After(15 * time.Second):
			t.Error("demo did not shut down within 15 s")
		}
	}()
	re := regexp.MustCompile(`play:\s+ffplay '([^']+)'`)
	var url string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && url == ""; time.Sleep(50 * time.Millisecond) {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			url = m[1]
		}
	}
	if url == "" {
		t.Fatalf("demo printed no URL; stdout %q stderr %q", out.String(), errOut.String())
	}
	pctx, pcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer pcancel()
	probe, err := exec.CommandContext(pctx, "ffprobe", "-v", "error", "-show_streams", url).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe %s: %v\n%s", url, err, probe)
	}
	if !strings.Contains(string(probe), "codec_name=h264") || !strings.Contains(string(probe), "codec_name=aac") {
		t.Fatalf("ffprobe found no h264 + aac:\n%s", probe)
	}
}

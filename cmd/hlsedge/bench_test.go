package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hlsedge/hlsedge/bench/synthorigin"
)

// TestBenchHLSLLOverTwoEdges runs `hlsedge bench hls --ll` with two --edge URLs (two LL origins standing in for
// edges) on the wall clock: the viewers are spread over both and play parts at the live edge.
func TestBenchHLSLLOverTwoEdges(t *testing.T) {
	var bases []string
	for range 2 {
		o, err := synthorigin.New(synthorigin.Config{Channels: []string{"a001"}, LL: true})
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() { _ = o.Serve(ln) }()
		t.Cleanup(o.Shutdown)
		bases = append(bases, "http://"+ln.Addr().String())
	}
	var out, errOut lockedBuffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a safety net, not a measure
	defer cancel()
	code := run(ctx, []string{"bench", "hls", "--ll", "--edge", bases[0], "--edge", bases[1] + ",", "--viewers", "4",
		"--duration", "2s", "--quiet", "--origin-stats", bases[0] + "/stats"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d; stderr %s", code, errOut.String())
	}
	s := out.String()
	for _, want := range []string{"low-latency", "part delivery", "edge " + bases[0] + ": 2 viewers", "edge " + bases[1] + ": 2 viewers", "origin LL: "} {
		if !strings.Contains(s, want) {
			t.Fatalf("no %q in\n%s", want, s)
		}
	}
	if m := regexp.MustCompile(`part delivery\s+(\d+)`).FindStringSubmatch(s); m == nil || m[1] == "0" {
		t.Fatalf("no part delivery timed:\n%s", s)
	}
	if code := run(ctx, []string{"bench", "hls", "--edge", "ftp://x"}, io.Discard, &errOut); code != 1 || !strings.Contains(errOut.String(), "'edges[0]'") {
		t.Fatalf("a bad edge: exit %d, stderr %s", code, errOut.String())
	}
}

// TestOriginCommandLL serves `hlsedge origin --ll --parts 3` and reads its playlist.
func TestOriginCommandLL(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	stdout, w := io.Pipe()
	var errOut lockedBuffer
	done := make(chan int, 1)
	go func() {
		code := run(ctx, []string{"origin", "--ll", "--parts", "3", "--listen", "127.0.0.1:0"}, w, &errOut)
		w.Close()
		done <- code
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("no line from the origin: %v; stderr %s", err, errOut.String())
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	url := regexp.MustCompile(`http://\S+/index\.m3u8`).FindString(line)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "#EXT-X-PART-INF:PART-TARGET=1.000\n") || !strings.Contains(string(b), "#EXT-X-PRELOAD-HINT:TYPE=PART,") {
		t.Fatalf("not an LL playlist with 1 s parts:\n%s", b)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("origin exited %d: %s", code, errOut.String())
		}
	case <-time.After(15 * time.Second): // a safety net for a hung shutdown
		t.Fatal("origin did not stop")
	}
}

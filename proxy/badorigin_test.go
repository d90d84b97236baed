package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// rawOrigin is an HTTP/1.1 origin written on raw TCP, so that a test can make it misbehave in ways net/http
// never would: cut a chunked body between two chunks, close short of its Content-Length, hang, or close without
// answering. It keeps connections alive as long as the handler says so, and counts what it is asked.
type rawOrigin struct {
	uriCounter
	url string
	ln  net.Listener
	// arrived receives each request's URI as the origin reads it, for tests that wait for a request.
	arrived chan string
	handle  func(w *bufio.Writer, c net.Conn, r *http.Request) (keepAlive bool)
	conns   sync.WaitGroup
}

func startRawOrigin(t testing.TB, handle func(w *bufio.Writer, c net.Conn, r *http.Request) bool) *rawOrigin {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &rawOrigin{uriCounter: uriCounter{uris: map[string]int{}}, url: "http://" + ln.Addr().String(), ln: ln,
		handle: handle, arrived: make(chan string, 4096)}
	var open sync.Map
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			open.Store(c, nil)
			o.conns.Add(1)
			go func() {
				defer o.conns.Done()
				defer open.Delete(c)
				defer c.Close()
				o.serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		open.Range(func(c, _ any) bool { c.(net.Conn).Close(); return true })
		o.conns.Wait()
	})
	return o
}

func (o *rawOrigin) serve(c net.Conn) {
	br := bufio.NewReader(c)
	bw := bufio.NewWriter(c)
	for {
		r, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		o.mu.Lock()
		o.uris[r.RequestURI]++
		o.mu.Unlock()
		select {
		case o.arrived <- r.RequestURI:
		default:
		}
		keep := o.handle(bw, c, r)
		if bw.Flush() != nil || !keep {
			return
		}
	}
}

// writeHead writes a 200's status line and headers; length < 0 means chunked.
func writeHead(w *bufio.Writer, length int) {
	w.WriteString("HTTP/1.1 200 OK\r\nContent-Type: video/MP2T\r\n")
	if length < 0 {
		w.WriteString("Transfer-Encoding: chunked\r\n\r\n")
	} else {
		fmt.Fprintf(w, "Content-Length: %d\r\n\r\n", length)
	}
}

// writeChunks writes body as chunks of size bytes; with end it adds the terminating chunk.
func writeChunks(w *bufio.Writer, body []byte, size int, end bool) {
	for len(body) > 0 {
		n := min(size, len(body))
		fmt.Fprintf(w, "%x\r\n", n)
		w.Write(body[:n])
		w.WriteString("\r\n")
		body = body[n:]
	}
	if end {
		w.WriteString("0\r\n\r\n")
	}
}

// hang blocks until the peer closes the connection (the edge gave up) or the test ends.
func hang(c net.Conn) {
	io.Copy(io.Discard, c)
}

// eventually waits for cond, which tracks an event (a counter, a waiter count), not a clock; the bound only
// turns a hang into a failure.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		runtime.Gosched()
	}
}

// pattern is a body whose bytes differ by position, so a misplaced or repeated piece shows.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>10)
	}
	return b
}

// metricsText scrapes the edge's /metrics.
func metricsText(t *testing.T, srv *Server) string {
	t.Helper()
	_, _, body := get(t, adminURL(srv)+"/metrics")
	return string(body)
}

func wantMetrics(t *testing.T, srv *Server, lines ...string) {
	t.Helper()
	text := metricsText(t, srv)
	for _, l := range lines {
		if !strings.Contains(text, l+"\n") {
			t.Errorf("/metrics lacks %q", l)
		}
	}
}

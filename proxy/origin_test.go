package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A body cut short is never a complete 200, is never cached, and the next request after the origin recovers
// gets the whole segment: for a chunked body cut between two chunks (the clean end of stream fasthttp's client
// took for the body's end) and for one closed short of its Content-Length.
func TestIncompleteBodyIsNeverCachedOrServedWhole(t *testing.T) {
	seg := pattern(200 << 10)
	f := func(name string, cut func(w *bufio.Writer)) {
		t.Run(name, func(t *testing.T) {
			var broken atomic.Bool
			broken.Store(true)
			o := startRawOrigin(t, func(w *bufio.Writer, c net.Conn, r *http.Request) bool {
				if broken.Load() {
					cut(w)
					return false
				}
				writeHead(w, -1)
				writeChunks(w, seg, 16<<10, true)
				return true
			})
			base, _ := startEdge(t, nil, o.url)
			code, _, body := get(t, base+"/play/a001/seg1.ts")
			if code != 502 || !strings.Contains(string(body), "origin response incomplete") {
				t.Fatalf("cut body: %d, %d bytes %.40q; want 502 origin response incomplete", code, len(body), body)
			}
			broken.Store(false)
			code, _, body = get(t, base+"/play/a001/seg1.ts")
			if code != 200 || !bytes.Equal(body, seg) {
				t.Fatalf("after the origin recovered: %d, %d bytes; want 200 and the whole %d bytes (nothing cut may be cached)",
					code, len(body), len(seg))
			}
		})
	}
	f("chunked, closed between chunks", func(w *bufio.Writer) {
		writeHead(w, -1)
		writeChunks(w, seg[:128<<10], 16<<10, false)
	})
	f("short of content-length", func(w *bufio.Writer) {
		writeHead(w, len(seg))
		w.Write(seg[:128<<10])
	})
	f("playlist-sized, chunked, closed between chunks", func(w *bufio.Writer) {
		writeHead(w, -1)
		writeChunks(w, seg[:100], 50, false)
	})
}

// On the streamed path (above cache.max_object_size) a body cut short aborts the viewer's connection: its
// player sees a failed request, not a short segment that looks whole.
func TestStreamedBodyCutShortAbortsTheViewer(t *testing.T) {
	seg := pattern(3 << 20)
	f := func(name string, cut func(w *bufio.Writer)) {
		t.Run(name, func(t *testing.T) {
			o := startRawOrigin(t, func(w *bufio.Writer, c net.Conn, r *http.Request) bool {
				cut(w)
				return false
			})
			base, srv := startEdge(t, func(c *Config) { c.Cache.MaxObjectSize = 1 << 20 }, o.url)
			resp, err := client.Get(base + "/play/a001/big.ts")
			if err != nil {
				t.Fatal(err)
			}
			n, err := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err == nil {
				t.Fatalf("the viewer read %d of %d bytes and a clean end: a cut stream must abort the connection", n, len(seg))
			}
			wantMetrics(t, srv, `hlsedge_stream_origin_failures_total 1`)
		})
	}
	f("chunked, closed between chunks", func(w *bufio.Writer) {
		writeHead(w, -1)
		writeChunks(w, seg[:2<<20], 64<<10, false)
	})
	f("short of content-length", func(w *bufio.Writer) {
		writeHead(w, len(seg))
		w.Write(seg[:2<<20])
	})
}

// Each origin is asked at most once per request, and the client never retries on its own: not a slow origin
// (it was asked twice, so a viewer waited 2 x upstream.timeout), not a 5xx, not a body cut short (fasthttp's
// client retried it up to 5 times on each pass), not a connection closed without an answer.
func TestOneAttemptPerOrigin(t *testing.T) {
	// timeout is upstream.timeout: short only for the origin that hangs, where the edge timing out is what is
	// tested; the others answer, and a loaded machine must not turn their answer into a timeout.
	f := func(name string, wantCode int, wantReason string, timeout time.Duration, misbehave func(w *bufio.Writer, c net.Conn) bool) {
		t.Run(name, func(t *testing.T) {
			a := startRawOrigin(t, func(w *bufio.Writer, c net.Conn, r *http.Request) bool { return misbehave(w, c) })
			b := startRawOrigin(t, func(w *bufio.Writer, c net.Conn, r *http.Request) bool { return misbehave(w, c) })
			base, _ := startEdge(t, func(c *Config) {
				c.Upstream.Timeout = timeout
				c.Upstream.TotalTimeout = time.Minute
			}, a.url, b.url)
			code, _, body := get(t, base+"/play/a001/seg1.ts")
			if code != wantCode || !strings.Contains(string(body), wantReason) {
				t.Fatalf("%d %.60q, want %d %s", code, body, wantCode, wantReason)
			}
			// An origin that never answers may read the request after the edge gave up on it: the count is
			// taken once each origin has read one.
			for _, o := range []*rawOrigin{a, b} {
				select {
				case <-o.arrived:
				case <-time.After(30 * time.Second): // a bound on a hang, not a measure
					t.Fatalf("origins asked %d and %d times, want once each", a.total(), b.total())
				}
			}
			if a.total() != 1 || b.total() != 1 {
				t.Fatalf("origins asked %d and %d times, want once each", a.total(), b.total())
			}
		})
	}
	f("hangs", 504, "origin timed out", 300*time.Millisecond, func(w *bufio.Writer, c net.Conn) bool {
		hang(c)
		return false
	})
	const long = 20 * time.Second
	f("answers 503", 502, "origin answered 503", long, func(w *bufio.Writer, c net.Conn) bool {
		w.WriteString("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy")
		return true
	})
	f("cuts short of content-length", 502, "origin response incomplete", long, func(w *bufio.Writer, c net.Conn) bool {
		writeHead(w, 1000)
		w.WriteString("short")
		return false
	})
	f("closes without answering", 502, "origin closed the connection", long, func(w *bufio.Writer, c net.Conn) bool {
		return false
	})
}

// The whole request, failover included, ends by upstream.total_timeout: once it is over no further origin is
// asked, however long upstream.timeout would let each one take.
func TestTotalTimeoutBoundsFailover(t *testing.T) {
	hangs := func(w *bufio.Writer, c net.Conn, r *http.Request) bool { hang(c); return false }
	a, b := startRawOrigin(t, hangs), startRawOrigin(t, hangs)
	base, _ := startEdge(t, func(c *Config) {
		c.Upstream.Timeout = time.Minute
		c.Upstream.TotalTimeout = 300 * time.Millisecond
	}, a.url, b.url)
	start := time.Now()
	code, _, body := get(t, base+"/play/a001/seg1.ts")
	if code != 504 || !strings.Contains(string(body), "origin timed out") {
		t.Fatalf("%d %.60q, want 504 origin timed out", code, body)
	}
	// The first origin may read the request after the edge gave up on it: the count is taken once it has.
	select {
	case <-a.arrived:
	case <-time.After(30 * time.Second): // a bound on a hang, not a measure
	}
	if a.total() != 1 || b.total() != 0 {
		t.Fatalf("origins asked %d and %d times; the total deadline was spent on the first", a.total(), b.total())
	}
	// Not a performance bound: the answer must come from total_timeout, not from the minute-long timeout.
	if el := time.Since(start); el > 30*time.Second {
		t.Fatalf("504 after %v", el)
	}
}

// A connection that ended badly never goes back to the pool: after a flight of viewers got a streamed body the
// origin cut short, later requests for healthy segments all succeed. The dead connections used to be pooled,
// and requests that drew them got 502 "origin unreachable".
func TestDeadConnectionIsNeverReused(t *testing.T) {
	seg := pattern(64 << 10)
	big := pattern(1 << 20)
	release := make(chan struct{})
	o := startRawOrigin(t, func(w *bufio.Writer, c net.Conn, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, "/big.ts") {
			writeHead(w, -1)
			writeChunks(w, big[:512<<10], 32<<10, false)
			w.Flush()
			<-release
			return false // closed between two chunks
		}
		writeHead(w, len(seg))
		w.Write(seg)
		return true
	})
	base, _ := startEdge(t, func(c *Config) {
		c.Cache.MaxObjectSize = 64 << 10
		c.Upstream.Timeout = 20 * time.Second
	}, o.url)
	const viewers = 8
	var started, wg sync.WaitGroup
	errs := make([]error, viewers)
	for i := range viewers {
		started.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := client.Get(base + "/play/a001/big.ts")
			started.Done()
			if err != nil {
				errs[i] = err
				return
			}
			_, errs[i] = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}()
	}
	started.Wait() // every viewer has its response headers: the origin is mid-body on every connection it has
	close(release)
	wg.Wait()
	for i, err := range errs {
		if err == nil {
			t.Fatalf("viewer %d read a cut stream to a clean end", i)
		}
	}
	for i := range 12 {
		code, _, body := get(t, fmt.Sprintf("%s/play/a001/ok%d.ts", base, i))
		if code != 200 || !bytes.Equal(body, seg) {
			t.Fatalf("healthy segment %d after the cut streams: %d, %d bytes %.40q", i, code, len(body), body)
		}
	}
}

// A pooled connection the origin closed while idle is not an origin failure: the request goes out again on a
// new connection (the origin never saw it), and the viewer gets its segment.
func TestIdleConnectionClosedByOriginIsNotAFailure(t *testing.T) {
	seg := pattern(1000)
	var closeIdle atomic.Bool
	o := startRawOrigin(t, func(w *bufio.Writer, c net.Conn, r *http.Request) bool {
		writeHead(w, len(seg))
		w.Write(seg)
		// Keep-alive as far as the edge can tell, but the connection is closed right after the answer, as an
		// origin's idle timeout would close it.
		return !closeIdle.Load()
	})
	base, _ := startEdge(t, nil, o.url)
	closeIdle.Store(true)
	for i := range 3 {
		code, _, body := get(t, fmt.Sprintf("%s/play/a001/s%d.ts", base, i))
		if code != 200 || !bytes.Equal(body, seg) {
			t.Fatalf("request %d: %d %.60q", i, code, body)
		}
	}
}

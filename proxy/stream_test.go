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
	"syscall"
	"testing"
	"time"
)

// Objects above cache.max_object_size are coalesced too: one origin fetch streams to every viewer who asks
// while it streams, both those who queued behind the leader's flight and those who arrive once the body is
// already flowing.
func TestLargeObjectIsFetchedOnceForEveryViewer(t *testing.T) {
	big := pattern(3 << 20)
	headers, middle := make(chan struct{}), make(chan struct{})
	o := startRawOrigin(t, func(w *bufio.Writer, c net.Conn, r *http.Request) bool {
		<-headers
		writeHead(w, len(big))
		w.Write(big[:1<<20])
		w.Flush()
		<-middle
		w.Write(big[1<<20:])
		return true
	})
	base, srv := startEdge(t, func(c *Config) {
		c.Cache.MaxObjectSize = 512 << 10
		c.Upstream.Timeout = 30 * time.Second
	}, o.url)
	const first, second = 30, 20
	var wg, gotHeaders sync.WaitGroup
	bodies := make([][]byte, first+second)
	view := func(i int) {
		defer wg.Done()
		resp, err := client.Get(base + "/play/a001/big.ts?token=viewer" + fmt.Sprint(i))
		gotHeaders.Done()
		if err != nil {
			t.Error(err)
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("viewer %d: %d", i, resp.StatusCode)
		}
		bodies[i], err = io.ReadAll(resp.Body)
		if err != nil {
			t.Errorf("viewer %d: %v", i, err)
		}
	}
	wg.Add(first)
	gotHeaders.Add(first)
	for i := range first {
		go view(i)
	}
	<-o.arrived
	eventually(t, "every first viewer queued on the flight", func() bool {
		return srv.fetches.Waiters("/play/a001/big.ts") == first-1
	})
	close(headers)
	gotHeaders.Wait()
	// The flight is over and the origin is holding the rest of the body: later viewers join the stream.
	wg.Add(second)
	gotHeaders.Add(second)
	for i := first; i < first+second; i++ {
		go view(i)
	}
	gotHeaders.Wait()
	close(middle)
	wg.Wait()
	for i, b := range bodies {
		if !bytes.Equal(b, big) {
			t.Fatalf("viewer %d got %d bytes, want the whole %d", i, len(b), len(big))
		}
	}
	if n := o.total(); n != 1 {
		t.Fatalf("%d viewers of a large object cost %d origin fetches, want 1", first+second, n)
	}
	// The last viewer's reader is closed by the edge once its response is written, which the viewer may see
	// a moment before.
	eventually(t, "the finished stream to be released", func() bool { return srv.fetches.InFlight() == 0 })
}

// A viewer too slow for cache.stream_buffer is cut, documented behaviour: its connection is aborted once it is
// further behind the fastest viewer than the buffer holds, while the fast viewer gets the whole object from the
// same, single origin fetch.
func TestViewerTooSlowForTheStreamBufferIsCut(t *testing.T) {
	big := pattern(32 << 20)
	headers := make(chan struct{})
	o := startRawOrigin(t, func(w *bufio.Writer, c net.Conn, r *http.Request) bool {
		<-headers
		writeHead(w, len(big))
		w.Write(big)
		return true
	})
	base, srv := startEdge(t, func(c *Config) {
		c.Cache.MaxObjectSize = 256 << 10
		// More than the slow viewer's socket buffers take in before it stalls (a few MiB on loopback), so that
		// the fast viewer is not cut by the slow one's head start, and far less than the object.
		c.Cache.StreamBuffer = 10 << 20
		c.Upstream.Timeout = 30 * time.Second
	}, o.url)
	// The slow viewer reads nothing until the end, through a receive buffer too small to hide that.
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	slow, err := d.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fmt.Fprintf(slow, "GET /play/a001/big.ts HTTP/1.1\r\nHost: edge\r\n\r\n")
	<-o.arrived
	fast := make(chan []byte, 1)
	go func() {
		resp, err := client.Get(base + "/play/a001/big.ts")
		if err != nil {
			t.Error(err)
			fast <- nil
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		fast <- b
	}()
	eventually(t, "the fast viewer queued on the slow one's flight", func() bool {
		return srv.fetches.Waiters("/play/a001/big.ts") == 1
	})
	close(headers)
	if b := <-fast; !bytes.Equal(b, big) {
		t.Fatalf("fast viewer got %d bytes, want the whole %d", len(b), len(big))
	}
	slow.SetDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(slow), nil)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	if err == nil || n >= int64(len(big)) {
		t.Fatalf("slow viewer read %d bytes, err %v; want its connection cut short", n, err)
	}
	if o.total() != 1 {
		t.Fatalf("origin asked %d times, want 1", o.total())
	}
	wantMetrics(t, srv, `hlsedge_stream_viewers_cut_total 1`)
}

// A HEAD, or a viewer who leaves at once, releases its place in the stream; the last one out closes the
// origin connection instead of reading the rest of a body nobody wants.
func TestLeavingViewersReleaseTheStream(t *testing.T) {
	big := pattern(4 << 20)
	o := startRawOrigin(t, func(w *bufio.Writer, c net.Conn, r *http.Request) bool {
		writeHead(w, len(big))
		w.Write(big)
		return true
	})
	base, srv := startEdge(t, func(c *Config) { c.Cache.MaxObjectSize = 256 << 10 }, o.url)
	resp, err := client.Head(base + "/play/a001/big.ts")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ContentLength != int64(len(big)) {
		t.Fatalf("HEAD: %d, length %d", resp.StatusCode, resp.ContentLength)
	}
	eventually(t, "the abandoned stream to be released", func() bool { return srv.fetches.InFlight() == 0 })
	code, _, body := get(t, base+"/play/a001/big.ts")
	if code != 200 || !bytes.Equal(body, big) {
		t.Fatalf("GET after HEAD: %d, %d bytes", code, len(body))
	}
}

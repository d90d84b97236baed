package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// With server.max_conns_per_ip set, the handler still gets the listener's own connection: fasthttp's
// MaxConnsPerIP wrapped it in a type of its own, which switched off the connection's decision memo and parsed
// peer address for every request without a word. The edge counts what it refuses.
func TestMaxConnsPerIPKeepsTheTimedConn(t *testing.T) {
	srv := newEdge(t, func(c *Config) { c.Server.MaxConnsPerIP = 2 }, "http://127.0.0.1:9")
	timed := make(chan bool, 2)
	serve := srv.public.Handler
	srv.public.Handler = func(ctx *fasthttp.RequestCtx) {
		_, ok := ctx.Conn().(*timedConn)
		timed <- ok
		serve(ctx)
	}
	ln := serveEdge(t, srv)
	// Two connections, each answered (so the listener has counted it), then a third over the cap.
	for i := 0; i < 2; i++ {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: edge\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("connection %d: %v %v", i+1, resp, err)
		}
		if !<-timed {
			t.Fatal("the handler got a connection other than the listener's timedConn")
		}
	}
	over, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer over.Close()
	over.SetReadDeadline(time.Now().Add(time.Minute)) // only turns a hang into a failure
	resp, err := http.ReadResponse(bufio.NewReader(over), nil)
	if err != nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third connection: %v %v, want a 429", resp, err)
	}
	// The refusal is counted before it is written.
	if n := srv.m.connsRefused.Get(); n != 1 {
		t.Fatalf("hlsedge_connections_refused_total = %d, want 1", n)
	}
}

// The listener refuses a connection over the cap with a 429 and gives a place back when a connection closes.
// Every step waits on an event (an Accept returning, a response read), never on time.
func TestMaxConnsPerIPRefusesOverTheCapAndReleasesOnClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refusals := make(chan netip.Addr, 2)
	l := timedListener(ln, 0, 0, 0, newPerIPLimit(2, func(a netip.Addr) { refusals <- a }), false).(*connListener)
	defer l.Close()
	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	accepted := make(chan net.Conn)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	dial()
	a1 := <-accepted
	dial()
	a2 := <-accepted

	// The third is answered and closed by the listener itself; Accept does not return it.
	refused := func() {
		t.Helper()
		over := dial()
		over.SetReadDeadline(time.Now().Add(time.Minute)) // only turns a hang into a failure
		got, err := io.ReadAll(over)
		if err != nil {
			t.Fatalf("reading the refusal: %v", err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(got)), nil)
		if err != nil {
			t.Fatalf("refusal %q: %v", got, err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusTooManyRequests || string(body) != tooManyConnsReason {
			t.Fatalf("refusal = %d %q (%v), want 429 %q", resp.StatusCode, body, err, tooManyConnsReason)
		}
	}
	refused()

	// Closing one gives its place back, once however often it is closed: one more is accepted, the next refused.
	a1.Close()
	a1.Close()
	dial()
	var a3 net.Conn
	select {
	case a3 = <-accepted:
	case <-time.After(time.Minute): // only turns a hang into a failure
		t.Fatal("the closed connection's place was not given back")
	}
	if _, ok := a3.(*timedConn); !ok {
		t.Fatalf("accepted %T, want *timedConn", a3)
	}
	refused()
	if n := len(refusals); n != 2 {
		t.Fatalf("%d refusals reported, want 2", n)
	}
	if a := <-refusals; a.String() != "127.0.0.1" {
		t.Fatalf("refusal reported for %s, want 127.0.0.1", a)
	}
	a2.Close()
	a3.Close()
	l.perIP.mu.Lock()
	n := len(l.perIP.open)
	l.perIP.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d addresses still counted after every connection closed", n)
	}
}

func TestNoPerIPLimitByDefault(t *testing.T) {
	if newPerIPLimit(0, nil) != nil {
		t.Fatal("max_conns_per_ip 0 must mean no cap")
	}
}

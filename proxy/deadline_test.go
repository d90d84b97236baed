package proxy

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The deadlines in these tests are either in the past (they have fired before the operation starts) or hours
// ahead (they cannot fire during the test), and the listener's coarse clock is set by the test rather than
// ticked, so no outcome depends on how fast the machine is.
func longAgo() time.Time  { return time.Unix(1, 0) }
func inAnHour() time.Time { return time.Now().Add(time.Hour) }

// ages is a timeout that, counted from longAgo, has not run out yet.
const ages = 100 * 365 * 24 * time.Hour

// timedPair is a real loopback connection accepted by a connListener whose clock the test sets; the timeouts are
// those of the listener (0: none).
func timedPair(t *testing.T, read, idle, write time.Duration, now time.Time) (srv *timedConn, peer net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	l := &connListener{Listener: ln, read: read, idle: idle, write: write}
	l.now.Store(now.UnixNano())
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	peer, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := <-accepted
	if c == nil {
		t.FailNow()
	}
	t.Cleanup(func() { c.Close(); peer.Close() })
	return c.(*timedConn), peer
}

func readOne(c net.Conn) (string, error) {
	b := make([]byte, 1)
	_, err := io.ReadFull(c, b)
	return string(b), err
}

func send(t *testing.T, c net.Conn, s string) {
	t.Helper()
	if _, err := c.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
}

func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

func TestTimedConnKnowsItsPeer(t *testing.T) {
	c, _ := timedPair(t, 0, 0, 0, time.Now())
	if c.peer != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("peer %v", c.peer)
	}
}

// A new connection that sends nothing, or too slowly, is cut at read_timeout from its accept.
func TestTimedConnReadTimeoutFromAccept(t *testing.T) {
	c, _ := timedPair(t, time.Second, time.Hour, time.Hour, longAgo())
	if _, err := readOne(c); !isTimeout(err) {
		t.Fatalf("read: %v, want the read timeout", err)
	}
}

// After a response the connection waits idle_timeout for the next request; once its first bytes came, the
// rest of it must come within read_timeout; the response must go out within write_timeout.
func TestTimedConnPhases(t *testing.T) {
	f := func(name string, read, idle, write time.Duration, wantWrite, wantIdle, wantRead bool) {
		t.Helper()
		c, peer := timedPair(t, time.Hour, time.Hour, time.Hour, time.Now())
		send(t, peer, "a")
		if _, err := readOne(c); err != nil {
			t.Fatalf("%s: first request: %v", name, err)
		}
		// From here on the timeouts are the case's, counted from long ago: those that apply have run out.
		c.l.now.Store(longAgo().UnixNano())
		c.l.read, c.l.idle, c.l.write = read, idle, write
		_, err := c.Write([]byte("b"))
		if isTimeout(err) != wantWrite {
			t.Fatalf("%s: response write: %v", name, err)
		}
		if wantWrite {
			return
		}
		if _, err := readOne(peer); err != nil {
			t.Fatal(err)
		}
		send(t, peer, "cd")
		_, err = readOne(c)
		if isTimeout(err) != wantIdle {
			t.Fatalf("%s: waiting for the next request: %v", name, err)
		}
		if wantIdle {
			return
		}
		_, err = readOne(c)
		if isTimeout(err) != wantRead {
			t.Fatalf("%s: reading the rest of the request: %v", name, err)
		}
	}
	f("write timeout", ages, ages, time.Second, true, false, false)
	f("idle timeout", ages, time.Second, ages, false, true, false)
	// The rest of the request was sent with its first byte, but the read timeout applies once that came.
	f("read timeout", time.Second, ages, ages, false, false, true)
	f("none run out", ages, ages, ages, false, false, false)
}

// While the connection times itself, the timeouts of later requests only move the deadlines later, and the
// runtime's timer is left alone.
func TestTimedConnLaterDeadlinesAreOnlyRecorded(t *testing.T) {
	c, peer := timedPair(t, 10*time.Second, time.Minute, time.Minute, time.Now())
	armed := c.rd.armed
	for i := 0; i < 3; i++ {
		send(t, peer, "r")
		if _, err := readOne(c); err != nil {
			t.Fatal(err)
		}
		c.l.now.Add(int64(time.Second))
		if _, err := c.Write([]byte("w")); err != nil {
			t.Fatal(err)
		}
		if _, err := readOne(peer); err != nil {
			t.Fatal(err)
		}
	}
	if c.rd.armed != armed || c.rd.want <= armed {
		t.Fatalf("read deadline armed %d (was %d), wanted %d: a later deadline must not touch the timer",
			c.rd.armed, armed, c.rd.want)
	}
}

func TestTimedConnExplicitDeadlineMovingLaterIsOnlyRecorded(t *testing.T) {
	c, _ := timedPair(t, 0, 0, 0, time.Now())
	first := inAnHour()
	if err := c.SetReadDeadline(first); err != nil {
		t.Fatal(err)
	}
	if err := c.SetReadDeadline(first.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if c.rd.armed != first.UnixNano() || c.rd.want != first.Add(time.Minute).UnixNano() {
		t.Fatalf("armed %d want %d: a later deadline must not touch the timer", c.rd.armed, c.rd.want)
	}
	if err := c.SetReadDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	if c.rd.armed != first.UnixNano() || c.rd.want != 0 {
		t.Fatalf("armed %d want %d: clearing must not touch the timer either", c.rd.armed, c.rd.want)
	}
}

func TestTimedConnExplicitDeadlineMovingEarlierAppliesAtOnce(t *testing.T) {
	c, _ := timedPair(t, 0, 0, 0, time.Now())
	c.SetReadDeadline(inAnHour())
	c.SetReadDeadline(longAgo())
	if _, err := readOne(c); !isTimeout(err) {
		t.Fatalf("read: %v, want the deadline exceeded", err)
	}
	c.SetWriteDeadline(inAnHour())
	c.SetWriteDeadline(longAgo())
	if _, err := c.Write([]byte("x")); !isTimeout(err) {
		t.Fatalf("write: %v, want the deadline exceeded", err)
	}
}

func TestTimedConnBlockedReadEndsWhenTheDeadlineMovesEarlier(t *testing.T) {
	c, _ := timedPair(t, 0, 0, 0, time.Now())
	c.SetReadDeadline(inAnHour())
	done := make(chan error, 1)
	go func() {
		_, err := readOne(c)
		done <- err
	}()
	// Whether the read is already blocked or not yet started, it must end with the deadline.
	c.SetReadDeadline(longAgo())
	if err := <-done; !isTimeout(err) {
		t.Fatalf("read: %v, want the deadline exceeded", err)
	}
}

// The armed timer fires (here: it is already past) while the wanted deadline is ahead or cleared: the operation
// carries on as if the earlier deadline had never been set.
func TestTimedConnEarlyTimerIsRearmed(t *testing.T) {
	f := func(name string, later time.Time) {
		t.Helper()
		c, peer := timedPair(t, 0, 0, 0, time.Now())
		c.SetReadDeadline(longAgo())
		c.SetReadDeadline(later)
		send(t, peer, "r")
		if got, err := readOne(c); err != nil || got != "r" {
			t.Fatalf("%s: read %q, %v", name, got, err)
		}
		if c.rd.armed != c.rd.want {
			t.Fatalf("%s: armed %d, want %d after the re-arm", name, c.rd.armed, c.rd.want)
		}
		c.SetWriteDeadline(longAgo())
		c.SetWriteDeadline(later)
		if n, err := c.Write([]byte("w")); err != nil || n != 1 {
			t.Fatalf("%s: write %d, %v", name, n, err)
		}
		if got, err := readOne(peer); err != nil || got != "w" {
			t.Fatalf("%s: peer read %q, %v", name, got, err)
		}
	}
	f("later deadline", inAnHour())
	f("no deadline", time.Time{})
}

// Once a deadline is set from outside (fasthttp handing the connection to a WebSocket), the connection keeps
// exactly the deadlines it is given: its own timeouts, run out here, no longer apply.
func TestTimedConnStopsTimingItselfOnceToldADeadline(t *testing.T) {
	c, peer := timedPair(t, time.Second, time.Second, time.Second, longAgo())
	if err := c.SetDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	send(t, peer, "r")
	if got, err := readOne(c); err != nil || got != "r" {
		t.Fatalf("read %q, %v", got, err)
	}
	if _, err := c.Write([]byte("w")); err != nil {
		t.Fatalf("write: %v", err)
	}
	c.SetDeadline(longAgo())
	if _, err := readOne(c); !isTimeout(err) {
		t.Fatalf("read: %v, want the deadline exceeded", err)
	}
	if _, err := c.Write([]byte("x")); !isTimeout(err) {
		t.Fatalf("write: %v, want the deadline exceeded", err)
	}
}

func TestTimedListenerCloseStopsItsClock(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := timedListener(ln, time.Second, time.Second, time.Second, nil, true).(*connListener)
	l.Close()
	<-l.stop
}

// The connection yields once before it reads the request after a one-write response, and at no other read: not
// within a request, not after a response of several writes (a segment), not once it no longer times itself (a
// WebSocket), and never when the listener does not yield.
func TestTimedConnYieldsOnlyAfterAOneWriteResponse(t *testing.T) {
	c, peer := timedPair(t, 0, 0, 0, time.Now())
	yields := 0
	c.l.yield = func() { yields++ }
	c.yields.init(c.Conn)
	f := func(step string, writes []string, next string, want int) {
		t.Helper()
		// Whether the last yield paid is yieldBackoff's business (tested below); here none is skipped.
		c.yields.backoff = yieldBackoff{}
		for _, w := range writes {
			if _, err := c.Write([]byte(w)); err != nil {
				t.Fatalf("%s: write: %v", step, err)
			}
			if got, err := readOne(peer); err != nil || got != w {
				t.Fatalf("%s: peer read %q, %v", step, got, err)
			}
		}
		send(t, peer, next)
		for i := range next {
			if got, err := readOne(c); err != nil || got != next[i:i+1] {
				t.Fatalf("%s: read %q, %v", step, got, err)
			}
		}
		if yields != want {
			t.Fatalf("%s: %d yields, want %d", step, yields, want)
		}
	}
	f("the first request", nil, "ab", 0)
	f("after a one-write response, once for a two-byte request", []string{"c"}, "de", 1)
	f("after a two-write response", []string{"f", "g"}, "h", 1)
	f("after a one-write response again", []string{"i"}, "j", 2)
	if err := c.SetDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	f("handed to a WebSocket", []string{"k"}, "l", 2)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	for _, yield := range []bool{false, true} {
		l := timedListener(ln, 0, 0, 0, nil, yield).(*connListener)
		if (l.yield != nil) != yield {
			t.Fatalf("timedListener(yield %v) set yield %v", yield, l.yield != nil)
		}
		l.Close()
	}
}

// readParked reads one byte from c on another goroutine, and sends msg from peer only once that read is parked in
// the poller: the read then certainly found nothing at first.
func readParked(t *testing.T, c, peer net.Conn, msg string) string {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		b, err := readOne(c)
		if err != nil {
			t.Error(err)
		}
		got <- b
	}()
	waitForParkedRead(t, "readParked.func1")
	send(t, peer, msg)
	return <-got
}

// waitForParkedRead waits until a goroutine whose stack names fn is waiting on the network poller.
func waitForParkedRead(t *testing.T, fn string) {
	t.Helper()
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		for g := range strings.SplitSeq(string(buf[:n]), "\n\n") {
			if strings.Contains(g, "[IO wait") && strings.Contains(g, fn) {
				return
			}
		}
		runtime.Gosched()
	}
}

// waitForData waits until c's socket holds data (or the peer's close) for the next read.
func waitForData(t *testing.T, c net.Conn) {
	t.Helper()
	raw, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	for {
		ready := false
		raw.Control(func(fd uintptr) {
			_, _, err := syscall.Recvfrom(int(fd), b, syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			ready = err != syscall.EAGAIN
		})
		if ready {
			return
		}
		runtime.Gosched()
	}
}

// A connection whose yields do not pay yields less and less often: after responses 1, 2, 4, 8, 16 and so on, then
// after every 256th. Every read here is parked before its request is sent, so no yield pays.
func TestTimedConnBacksOffYieldsThatDoNotPay(t *testing.T) {
	c, peer := timedPair(t, 0, 0, 0, time.Now())
	var yieldedAt []int
	response := 0
	c.l.yield = func() { yieldedAt = append(yieldedAt, response) }
	c.yields.init(c.Conn)
	for response = 1; response <= 70; response++ {
		if _, err := c.Write([]byte("r")); err != nil {
			t.Fatal(err)
		}
		if _, err := readOne(peer); err != nil {
			t.Fatal(err)
		}
		if got := readParked(t, c, peer, "q"); got != "q" {
			t.Fatalf("read %q", got)
		}
	}
	if want := []int{1, 2, 4, 8, 16, 32, 64}; !slices.Equal(yieldedAt, want) {
		t.Fatalf("yielded after responses %v, want %v", yieldedAt, want)
	}
}

// The read after a yield answers as the connection's own read does, and tells whether the request was waiting.
func TestYielderReadIsTheConnectionsRead(t *testing.T) {
	c, peer := timedPair(t, 0, 0, 0, time.Now())
	var y yielder
	y.init(c.Conn)
	if y.raw == nil {
		t.Fatal("a TCP connection has a raw socket")
	}
	y.backoff.level = 3
	send(t, peer, "ab")
	waitForData(t, c.Conn)
	buf := make([]byte, 8)
	if n, err := y.read(c.Conn, buf); err != nil || string(buf[:n]) != "ab" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	if y.backoff != (yieldBackoff{}) {
		t.Fatalf("a request that was waiting: backoff %+v, want it reset", y.backoff)
	}

	y.backoff.level = 1 // as if one yield had not paid already
	got := make(chan string, 1)
	go func() {
		n, err := y.read(c.Conn, buf)
		if err != nil {
			t.Error(err)
		}
		got <- string(buf[:n])
	}()
	waitForParkedRead(t, "TestYielderReadIsTheConnectionsRead.func1")
	send(t, peer, "c")
	if s := <-got; s != "c" {
		t.Fatalf("read %q", s)
	}
	if y.backoff != (yieldBackoff{skip: 1, level: 2}) {
		t.Fatalf("a request that was not there, twice in a row: backoff %+v, want the next yield skipped", y.backoff)
	}

	peer.Close()
	waitForData(t, c.Conn)
	if n, err := y.read(c.Conn, buf); n != 0 || err != io.EOF {
		t.Fatalf("after the peer closed: %d, %v, want io.EOF", n, err)
	}
	c.Conn.SetReadDeadline(longAgo())
	if _, err := y.read(c.Conn, buf); !isTimeout(err) {
		t.Fatalf("past the deadline: %v, want the deadline exceeded", err)
	}

	var tlsLike yielder
	tlsLike.init(struct{ net.Conn }{c.Conn})
	if tlsLike.raw != nil || tlsLike.try() {
		t.Fatal("a connection without a raw socket must not yield")
	}
}

func TestYieldBackoff(t *testing.T) {
	// outcomes: per yield, y for one that paid, n for one that did not; want: per response, whether it yielded.
	f := func(outcomes, want string) {
		t.Helper()
		var b yieldBackoff
		got := ""
		i := 0
		for range want {
			if !b.try() {
				got += "-"
				continue
			}
			got += "Y"
			b.paid(outcomes[i] == 'y')
			i++
		}
		if got != want {
			t.Fatalf("outcomes %s: yields %s, want %s", outcomes, got, want)
		}
	}
	f("yyyy", "YYYY")
	f("nnnn", "YY-Y---Y")
	f("nnnyy", "YY-Y---YY")
	f("nnnyny", "YY-Y---YYY")
	f("nynynyny", "YYYYYYYY")
	f("nnnnnnnnnnn", "YY-Y---Y-------Y"+strings.Repeat("-", 15)+"Y"+strings.Repeat("-", 31)+"Y"+strings.Repeat("-", 63)+"Y"+
		strings.Repeat("-", 127)+"Y"+strings.Repeat("-", 255)+"Y"+strings.Repeat("-", 255)+"Y")
}

// server.yield_after_response is on unless the config turns it off.
func TestYieldAfterResponseDefaultsOn(t *testing.T) {
	f := func(yaml string, want bool) {
		t.Helper()
		var c ServerConfig
		if yaml != "" {
			v := yaml == "true"
			c.YieldAfterResponse = &v
		}
		if got := c.yieldAfterResponse(); got != want {
			t.Fatalf("yield_after_response %q: %v, want %v", yaml, got, want)
		}
	}
	f("", true)
	f("true", true)
	f("false", false)
}

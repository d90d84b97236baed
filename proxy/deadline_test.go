package proxy

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
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
	l := timedListener(ln, time.Second, time.Second, time.Second, nil).(*connListener)
	l.Close()
	<-l.stop
}

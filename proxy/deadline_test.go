package proxy

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// lazyPair is a real loopback connection whose server side has lazy deadlines.
func lazyPair(t *testing.T) (srv *lazyConn, peer net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := lazyDeadlines(ln).Accept()
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
	return c.(*lazyConn), peer
}

// The deadlines below are either in the past (they have fired before the operation starts) or an hour ahead (they
// cannot fire during the test), so no outcome depends on how fast the machine is.
func longAgo() time.Time { return time.Unix(1, 0) }

func inAnHour() time.Time { return time.Now().Add(time.Hour) }

func readOne(c net.Conn) (string, error) {
	b := make([]byte, 1)
	_, err := io.ReadFull(c, b)
	return string(b), err
}

func TestLazyDeadlineMovingLaterIsOnlyRecorded(t *testing.T) {
	c, _ := lazyPair(t)
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

func TestLazyDeadlineMovingEarlierAppliesAtOnce(t *testing.T) {
	c, _ := lazyPair(t)
	c.SetReadDeadline(inAnHour())
	c.SetReadDeadline(longAgo())
	if _, err := readOne(c); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read: %v, want the deadline exceeded", err)
	}
	c.SetWriteDeadline(inAnHour())
	c.SetWriteDeadline(longAgo())
	if _, err := c.Write([]byte("x")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write: %v, want the deadline exceeded", err)
	}
}

func TestLazyDeadlineBlockedReadEndsWhenTheDeadlineMovesEarlier(t *testing.T) {
	c, _ := lazyPair(t)
	c.SetReadDeadline(inAnHour())
	done := make(chan error, 1)
	go func() {
		_, err := readOne(c)
		done <- err
	}()
	// Whether the read is already blocked or not yet started, it must end with the deadline.
	c.SetReadDeadline(longAgo())
	if err := <-done; !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read: %v, want the deadline exceeded", err)
	}
}

// The armed timer fires (here: it is already past) while the wanted deadline is ahead or cleared: the operation
// carries on as if the earlier deadline had never been set.
func TestLazyDeadlineEarlyTimerIsRearmed(t *testing.T) {
	f := func(name string, later time.Time) {
		t.Helper()
		c, peer := lazyPair(t)
		c.SetReadDeadline(longAgo())
		c.SetReadDeadline(later)
		if _, err := peer.Write([]byte("r")); err != nil {
			t.Fatal(err)
		}
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

// SetDeadline, which fasthttp uses when it hands a connection over (WebSocket upgrade), sets both directions.
func TestLazyDeadlineSetDeadlineSetsBoth(t *testing.T) {
	c, _ := lazyPair(t)
	c.SetDeadline(longAgo())
	if _, err := readOne(c); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read: %v", err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write: %v", err)
	}
}

package proxy

import (
	"errors"
	"net"
	"os"
	"sync"
	"time"
)

// lazyDeadlines wraps the public listener so that the three deadlines fasthttp sets on every keep-alive request
// (idle, read, write) cost a compare instead of a runtime timer update each. Under load those updates cost more
// than the whole authorized playlist handler: each one re-sorts a timer heap, and one that moves a timer earlier
// wakes the network poller with a syscall.
//
// The deadlines keep their meaning exactly: a deadline that moves later is only recorded, and the timer armed
// for the earlier one, when it fires, finds the wanted deadline still ahead and is re-armed for it before the
// blocked Read or Write carries on; a deadline that moves earlier is armed at once. So an operation fails at the
// deadline last set, never later, and a busy connection touches the timer about once per read_timeout.
func lazyDeadlines(ln net.Listener) net.Listener { return lazyListener{ln} }

type lazyListener struct{ net.Listener }

func (l lazyListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &lazyConn{Conn: c}, nil
}

// lazyConn is a connection with lazily armed deadlines; see lazyDeadlines.
type lazyConn struct {
	net.Conn
	rd, wd lazyDeadline
}

// lazyDeadline is one direction's deadline. mu is uncontended for fasthttp, which reads, writes and sets deadlines
// from one goroutine; a hijacked WebSocket reads and writes from two, one per direction.
type lazyDeadline struct {
	mu sync.Mutex
	// want is the deadline last set, armed the one the runtime's timer holds; unix nanoseconds, 0 for none.
	want, armed int64
}

func (c *lazyConn) Read(p []byte) (int, error) {
	for {
		n, err := c.Conn.Read(p)
		if n > 0 || err == nil || !c.rd.rearm(err, c.Conn.SetReadDeadline) {
			return n, err
		}
	}
}

func (c *lazyConn) Write(p []byte) (int, error) {
	written := 0
	for {
		n, err := c.Conn.Write(p)
		written += n
		if err == nil || !c.wd.rearm(err, c.Conn.SetWriteDeadline) {
			return written, err
		}
		// A timeout may end a write part way; the rest goes out under the re-armed deadline.
		p = p[n:]
	}
}

func (c *lazyConn) SetDeadline(t time.Time) error {
	if err := c.rd.set(t, c.Conn.SetReadDeadline); err != nil {
		return err
	}
	return c.wd.set(t, c.Conn.SetWriteDeadline)
}

func (c *lazyConn) SetReadDeadline(t time.Time) error  { return c.rd.set(t, c.Conn.SetReadDeadline) }
func (c *lazyConn) SetWriteDeadline(t time.Time) error { return c.wd.set(t, c.Conn.SetWriteDeadline) }

// set records t and arms the timer only when t comes before the armed deadline (or none is armed).
func (d *lazyDeadline) set(t time.Time, arm func(time.Time) error) error {
	want := int64(0)
	if !t.IsZero() {
		want = t.UnixNano()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.want = want
	if want == 0 || (d.armed != 0 && d.armed <= want) {
		// Fast path: the armed timer fires no later than wanted; rearm moves it on when it does.
		return nil
	}
	d.armed = want
	return arm(t)
}

// rearm is called when an operation failed. It reports whether the failure was an armed deadline that fired
// before the wanted one, in which case it arms the wanted one (or clears it) and the operation is retried.
func (d *lazyDeadline) rearm(err error, arm func(time.Time) error) bool {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var t time.Time
	if d.want != 0 {
		t = time.Unix(0, d.want)
		if !time.Now().Before(t) {
			return false
		}
	}
	if arm(t) != nil {
		return false
	}
	d.armed = d.want
	return true
}

package proxy

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hlsedge/hlsedge/authz"
)

// The public listener's connections time themselves out. fasthttp would read the clock and set a deadline three
// times per keep-alive request (idle, read, write), and each deadline is a runtime timer update; one that moves
// a timer earlier (idle 60s, then read 10s) also wakes the network poller with a syscall. Measured on the
// authorized playlist under wrk, that cost about as much as the decision cache hit. So fasthttp gets no timeouts,
// and the connection applies the configured ones from what it sees of the request cycle:
//
//   - the first read after a response starts the wait for the next request: idle_timeout;
//   - a new connection, and the first bytes of a request, start reading it: read_timeout;
//   - the first write after reading starts the response: write_timeout.
//
// The clock for those is a coarse one the listener advances every clockTick, so a deadline may fall up to that
// much early, never late. Deadlines are armed lazily (see lazyDeadline). Once anything sets a deadline itself
// (fasthttp when it hands a connection to a WebSocket), the connection stops timing itself and keeps exactly the
// deadlines it is given.
//
// perIP caps the open connections of one client address (nil: no cap); see perIPLimit.
//
// yield: see yield.go.
func timedListener(ln net.Listener, read, idle, write time.Duration, perIP *perIPLimit, yield bool) net.Listener {
	l := &connListener{Listener: ln, read: read, idle: idle, write: write, stop: make(chan struct{}), perIP: perIP}
	if yield {
		l.yield = runtime.Gosched
	}
	l.now.Store(time.Now().UnixNano())
	go l.tick()
	return l
}

const clockTick = 100 * time.Millisecond

type connListener struct {
	net.Listener
	read, idle, write time.Duration
	// now is the coarse clock, unix nanoseconds.
	now      atomic.Int64
	stop     chan struct{}
	stopOnce sync.Once
	// perIP is nil without server.max_conns_per_ip.
	perIP *perIPLimit
	// yield is called before the first read after a one-write response; nil: never (yield.go).
	yield func()
}

func (l *connListener) tick() {
	t := time.NewTicker(clockTick)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			l.now.Store(time.Now().UnixNano())
		case <-l.stop:
			return
		}
	}
}

func (l *connListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				l.stopOnce.Do(func() { close(l.stop) })
			}
			return nil, err
		}
		peer := netip.IPv4Unspecified()
		if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
			if ip, ok := netip.AddrFromSlice(a.IP); ok {
				peer = ip.Unmap()
			}
		}
		if l.perIP != nil && !l.perIP.acquire(peer) {
			l.perIP.refuse(c, peer)
			continue
		}
		tc := &timedConn{Conn: c, l: l, peer: peer}
		if l.yield != nil {
			tc.yields.init(c)
		}
		tc.auto.Store(true)
		tc.rd.setLocked(l.deadline(l.read), tc.Conn.SetReadDeadline)
		return tc, nil
	}
}

func (l *connListener) Close() error {
	l.stopOnce.Do(func() { close(l.stop) })
	return l.Listener.Close()
}

// deadline is d from the coarse now; 0 (none) when d is not positive.
func (l *connListener) deadline(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return l.now.Load() + int64(d)
}

// timedConn is a public connection that times itself out; see timedListener.
type timedConn struct {
	net.Conn
	l *connListener
	// peer is the remote address, parsed once per connection rather than per request.
	peer netip.Addr
	// auto is true while the connection applies the timeouts itself. While it is, one goroutine (fasthttp's)
	// uses the connection, so phase and the deadlines need no lock.
	auto  atomic.Bool
	phase connPhase
	// writes counts the Write calls of the response being written, up to 2: only a one-write response yields.
	writes uint8
	yields yielder
	rd, wd lazyDeadline
	// memo is the connection's last authorization decisions (authz.Memo); fasthttp serves a connection's
	// requests one at a time, on one goroutine.
	memo authz.Memo
	// req is the connection's last playlist request line, parsed (reqmemo.go); same goroutine as memo.
	req requestMemo
	// closed makes Close give the connection's place under the per-address cap back once.
	closed atomic.Bool
}

type connPhase uint8

const (
	phaseRequest  connPhase = iota // reading a request
	phaseResponse                  // writing its response
	phaseIdle                      // waiting for the next request
)

func (c *timedConn) Read(p []byte) (int, error) {
	auto := c.auto.Load()
	yielded := false
	if auto && c.phase == phaseResponse {
		c.phase = phaseIdle
		c.rd.setLocked(c.l.deadline(c.l.idle), c.Conn.SetReadDeadline)
		if c.writes == 1 && c.yields.try() {
			c.l.yield()
			yielded = true
		}
	}
	for {
		var n int
		var err error
		if yielded {
			// Once: a read that had to wait is the answer to whether the yield paid.
			n, err = c.yields.read(c.Conn, p)
			yielded = false
		} else {
			n, err = c.Conn.Read(p)
		}
		if n > 0 && auto && c.phase == phaseIdle {
			c.phase = phaseRequest
			c.rd.setLocked(c.l.deadline(c.l.read), c.Conn.SetReadDeadline)
		}
		if n > 0 || err == nil || !c.rd.rearm(err, c.Conn.SetReadDeadline, !auto) {
			return n, err
		}
	}
}

func (c *timedConn) Write(p []byte) (int, error) {
	auto := c.auto.Load()
	if auto && c.phase != phaseResponse {
		c.phase = phaseResponse
		c.writes = 0
		c.wd.setLocked(c.l.deadline(c.l.write), c.Conn.SetWriteDeadline)
	}
	if auto && c.writes < 2 {
		c.writes++
	}
	written := 0
	for {
		n, err := c.Conn.Write(p)
		written += n
		if err == nil || !c.wd.rearm(err, c.Conn.SetWriteDeadline, !auto) {
			return written, err
		}
		// A timeout may end a write part way; the rest goes out under the re-armed deadline.
		p = p[n:]
	}
}

func (c *timedConn) Close() error {
	if c.l != nil && c.l.perIP != nil && c.closed.CompareAndSwap(false, true) {
		c.l.perIP.release(c.peer)
	}
	return c.Conn.Close()
}

func (c *timedConn) SetDeadline(t time.Time) error {
	c.auto.Store(false)
	if err := c.rd.set(t, c.Conn.SetReadDeadline); err != nil {
		return err
	}
	return c.wd.set(t, c.Conn.SetWriteDeadline)
}

func (c *timedConn) SetReadDeadline(t time.Time) error {
	c.auto.Store(false)
	return c.rd.set(t, c.Conn.SetReadDeadline)
}

func (c *timedConn) SetWriteDeadline(t time.Time) error {
	c.auto.Store(false)
	return c.wd.set(t, c.Conn.SetWriteDeadline)
}

// lazyDeadline is one direction's deadline, armed lazily: a deadline that moves later is only recorded, and the
// timer armed for the earlier one, when it fires, finds the wanted deadline still ahead and is re-armed for it
// before the blocked Read or Write carries on; a deadline that moves earlier is armed at once. So an operation
// fails at the deadline last set, never later, and a busy connection touches the timer about once per timeout.
//
// mu is taken once the connection's deadlines are set from outside: a hijacked WebSocket reads and writes from
// two goroutines, one per direction, and may set deadlines from a third.
type lazyDeadline struct {
	mu sync.Mutex
	// want is the deadline last set, armed the one the runtime's timer holds; unix nanoseconds, 0 for none.
	want, armed int64
}

func (d *lazyDeadline) set(t time.Time, arm func(time.Time) error) error {
	want := int64(0)
	if !t.IsZero() {
		want = t.UnixNano()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.setLocked(want, arm)
}

// setLocked records want and arms the timer only when want comes before the armed deadline (or none is armed).
func (d *lazyDeadline) setLocked(want int64, arm func(time.Time) error) error {
	d.want = want
	if want == 0 || (d.armed != 0 && d.armed <= want) {
		// Fast path: the armed timer fires no later than wanted; rearm moves it on when it does.
		return nil
	}
	d.armed = want
	return arm(time.Unix(0, want))
}

// rearm is called when an operation failed. It reports whether the failure was an armed deadline that fired
// before the wanted one, in which case it arms the wanted one (or clears it) and the operation is retried.
func (d *lazyDeadline) rearm(err error, arm func(time.Time) error, lock bool) bool {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	if lock {
		d.mu.Lock()
		defer d.mu.Unlock()
	}
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

package proxy

import (
	"io"
	"net"
	"os"
	"syscall"
)

// A keep-alive connection whose response went out in one write yields the processor once before it reads the
// next request (server.yield_after_response). Go's poller reads first and waits after: the read that follows a
// response nearly always finds nothing yet, so a keep-alive request costs a read(2) that fails, a park in the
// poller and a wake-up before the read(2) that gets it. Under load other connections are waiting to run; served
// first, they give a close client (a balancer, a mid-tier cache) the time to send its next request, and one read
// finds it. A response of several writes (a segment) keeps its client reading for longer than a yield lasts, so
// it does not yield.
//
// A yield is not free where nothing else waits to run: the runtime wakes an idle processor for the yielded
// goroutine, which costs more CPU than the read it could save. So each connection reads after a yield through
// its socket's raw read, which tells whether the request was already there, and backs off from yields that do
// not pay (yieldBackoff). A TLS connection has no raw socket under the edge's reads and does not yield.

// yielder is one connection's yields: the raw socket to read through after one, and the backoff.
type yielder struct {
	raw syscall.RawConn // nil: the connection does not yield
	// readRaw is the read callback, bound once so that a read allocates nothing; buf, n, errno and waited carry
	// one read's arguments and results through it.
	readRaw func(fd uintptr) bool
	buf     []byte
	n       int
	errno   error
	waited  bool
	backoff yieldBackoff
}

// init readies yields on c if it is a plain socket.
func (y *yielder) init(c net.Conn) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return
	}
	y.raw = raw
	y.readRaw = y.readFD
}

// try reports whether to yield before this read.
func (y *yielder) try() bool { return y.raw != nil && y.backoff.try() }

// read is the read after a yield from c, the connection init was given: what c.Read does, and whether it had to
// wait for the request.
func (y *yielder) read(c net.Conn, p []byte) (int, error) {
	y.buf, y.n, y.errno, y.waited = p, 0, nil, false
	err := y.raw.Read(y.readRaw)
	n, errno, waited := y.n, y.errno, y.waited
	y.buf, y.errno = nil, nil
	y.backoff.paid(!waited)
	switch {
	case err != nil:
		// The poller's own errors (the deadline, a closed connection), wrapped as the connection's reads wrap them.
		return 0, err
	case errno != nil:
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(),
			Err: os.NewSyscallError("read", errno)}
	case n == 0 && len(p) > 0:
		return 0, io.EOF
	}
	return n, nil
}

func (y *yielder) readFD(fd uintptr) bool {
	for {
		n, err := syscall.Read(int(fd), y.buf)
		switch err {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			// Not there yet: the runtime waits for the socket and calls again.
			y.waited = true
			return false
		case nil:
			y.n = n
		default:
			y.errno = err
		}
		return true
	}
}

// yieldBackoff is a connection's record of whether its yields pay. A yield whose read then found the request
// waiting keeps the connection yielding. On a busy edge some reads still come too early, so one unpaid yield
// changes nothing; two in a row skip the next yield, three the next three, and so on up to 255 skipped: a
// connection whose client is far away or idle pays for one yield in 256 responses (an unpaid yield cost about
// 18 µs of CPU with one connection on the README's 2-core VM), and one whose client is close on a busy edge
// yields on nearly every response.
type yieldBackoff struct {
	skip  uint8 // yields still to skip
	level uint8 // unpaid yields in a row, up to maxYieldBackoff
}

const maxYieldBackoff = 9

// try reports whether to yield this time.
func (b *yieldBackoff) try() bool {
	if b.skip > 0 {
		b.skip--
		return false
	}
	return true
}

// paid records whether the read after a yield found the request waiting.
func (b *yieldBackoff) paid(ok bool) {
	if ok {
		b.level = 0
		return
	}
	if b.level < maxYieldBackoff {
		b.level++
	}
	b.skip = 1<<(b.level-1) - 1
}

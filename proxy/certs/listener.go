package certs

import (
	"crypto/tls"
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// Listener wraps ln so that every accepted connection speaks TLS with the Manager's configuration.
//
// It is tls.NewListener plus one thing: the records of one Write leave in one write(2). crypto/tls writes each
// record of at most 16 KiB with its own system call; a 220 KB segment written from the server's 64 KiB buffer
// is then 14 calls instead of 4, and on loopback the calls, not the encryption, were where most of the time
// went. The records are gathered in a buffer taken from a pool for the length of the Write, so an idle
// connection holds none.
func (m *Manager) Listener(ln net.Listener) net.Listener {
	l := &listener{Listener: ln, m: m}
	l.bufs.New = func() any { b := make([]byte, 0, 80<<10); return &b }
	return l
}

type listener struct {
	net.Listener
	m *Manager
	// bufs holds the buffers of the writes in progress on this listener's connections.
	bufs sync.Pool
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	raw := &gatherConn{Conn: c, bufs: &l.bufs}
	return &Conn{Conn: tls.Server(raw, l.m.conf), raw: raw, m: l.m}, nil
}

// Conn is a server-side TLS connection whose Write sends its records together. It embeds *tls.Conn, so
// Handshake and ConnectionState are there for servers that look for them (fasthttp's IsTLS).
type Conn struct {
	*tls.Conn
	raw *gatherConn
	m   *Manager
	// writing is set for the whole of a Write, the sending of the gathered records included.
	writing atomic.Bool
	// failed is set once a failed handshake has been counted.
	failed atomic.Bool
}

// Handshake runs the TLS handshake (fasthttp calls it first, under the server's read timeout).
func (c *Conn) Handshake() error {
	err := c.Conn.Handshake()
	if err != nil {
		c.handshakeFailed(err)
	}
	return err
}

// Read reads application data. A connection whose handshake failed reads as closed: the failure is the client's
// (a scanner, plain http on the https port, a browser that does not trust the certificate, a client that never
// finished), it has been counted and logged once at debug level, and the HTTP server would otherwise answer it
// with a response nobody can read and log it again as a warning, once per port scan.
func (c *Conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil && !c.Conn.ConnectionState().HandshakeComplete {
		c.handshakeFailed(err)
		return n, io.EOF
	}
	return n, err
}

func (c *Conn) handshakeFailed(err error) {
	if c.failed.Swap(true) {
		return
	}
	c.m.handshakeErrors.Add(1)
	if c.m.mHandshake != nil {
		c.m.mHandshake.Inc()
	}
	c.m.log.Debug("tls: handshake failed", "remote", c.RemoteAddr().String(), "error", err)
}

// Write encrypts p and sends all its records in one system call (or a few, for a p much larger than the
// server's write buffer).
func (c *Conn) Write(p []byte) (int, error) {
	c.writing.Store(true)
	defer c.writing.Store(false)
	c.raw.start()
	n, err := c.Conn.Write(p)
	if ferr := c.raw.finish(); err == nil {
		err = ferr
	}
	return n, err
}

// Close during a Write (a WebSocket hub dropping a slow reader) closes the socket, which breaks the Write, as
// tls.Conn.Close does for its own writes: the records gathered by that Write are sent after tls.Conn's Write
// returns, where its interlock no longer sees them, and a close_notify would wait behind them.
func (c *Conn) Close() error {
	if c.writing.Load() {
		return c.raw.Conn.Close()
	}
	return c.Conn.Close()
}

// gatherConn is the TCP connection under the TLS layer. Between start and finish it collects what TLS writes;
// otherwise (the handshake, alerts, close_notify) it writes straight through. mu covers an alert written by
// Close from another goroutine while a Write gathers.
type gatherConn struct {
	net.Conn
	bufs *sync.Pool
	mu   sync.Mutex
	buf  *[]byte
}

// gatherMax bounds a gathered write: past it the records go out, so one huge Write never holds a huge buffer.
const gatherMax = 256 << 10

func (g *gatherConn) start() {
	g.mu.Lock()
	g.buf = g.bufs.Get().(*[]byte)
	g.mu.Unlock()
}

func (g *gatherConn) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.buf == nil {
		return g.Conn.Write(p)
	}
	*g.buf = append(*g.buf, p...)
	if len(*g.buf) >= gatherMax {
		if err := g.flushLocked(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

func (g *gatherConn) flushLocked() error {
	if len(*g.buf) == 0 {
		return nil
	}
	_, err := g.Conn.Write(*g.buf)
	*g.buf = (*g.buf)[:0]
	return err
}

func (g *gatherConn) finish() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	err := g.flushLocked()
	if cap(*g.buf) <= 2*gatherMax {
		g.bufs.Put(g.buf)
	}
	g.buf = nil
	return err
}

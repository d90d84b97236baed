package certs

import (
	"bytes"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hlsedge/hlsedge/proxy/certs/certtest"
)

// countingListener counts the write system calls made on its connections.
type countingListener struct {
	net.Listener
	writes *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{c, l.writes}, nil
}

type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// loopbackTLS makes a manager m serving a certificate for 127.0.0.1 from a fresh CA, logging to logs, and puts
// m's Listener over a loopback TCP listener that wrap (when set) wraps first. It returns m, its listener (closed
// when the test ends), the TCP address to dial and the CA.
func loopbackTLS(t *testing.T, logs io.Writer, wrap func(net.Listener) net.Listener) (*Manager, net.Listener, string, *certtest.CA) {
	t.Helper()
	ca := certtest.NewCA(t, "test CA")
	crt, key := ca.Issue(t, "127.0.0.1").Write(t, t.TempDir(), "edge")
	m, err := New(Config{CertFile: crt, KeyFile: key}, Options{Log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var under net.Listener = tcp
	if wrap != nil {
		under = wrap(tcp)
	}
	ln := m.Listener(under)
	t.Cleanup(func() { ln.Close() })
	return m, ln, tcp.Addr().String(), ca
}

// dialTLS is a client that trusts only ca.
func dialTLS(t *testing.T, addr string, ca *certtest.CA) *tls.Conn {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr,
		&tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// One Write of a segment leaves in one system call instead of one per 16 KiB record, the bytes arrive intact,
// the connection is TLS to servers that ask (Handshake, ConnectionState), and Close still sends close_notify.
func TestListenerGathersRecords(t *testing.T) {
	var writes atomic.Int64
	_, ln, addr, ca := loopbackTLS(t, io.Discard, func(tcp net.Listener) net.Listener { return countingListener{tcp, &writes} })

	segment := bytes.Repeat([]byte("0123456789abcdef"), 220<<10/16) // 220 KiB: 14 records
	type result struct {
		writesForSegment int64
		err              error
	}
	done := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		tc, ok := c.(interface {
			Handshake() error
			ConnectionState() tls.ConnectionState
		})
		if !ok {
			done <- result{err: io.ErrUnexpectedEOF}
			return
		}
		if err := tc.Handshake(); err != nil {
			done <- result{err: err}
			return
		}
		before := writes.Load()
		_, err = c.Write(segment)
		done <- result{writesForSegment: writes.Load() - before, err: err}
	}()

	c := dialTLS(t, addr, ca)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(c) // to the server's close_notify: an abrupt close is an error here
	if err != nil {
		t.Fatalf("reading: %v", err)
	}
	if !bytes.Equal(got, segment) {
		t.Fatalf("got %d bytes, want the %d written", len(got), len(segment))
	}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.writesForSegment != 1 {
		t.Fatalf("a 220 KiB Write took %d system calls, want 1", r.writesForSegment)
	}
}

// stallListener's connections block every write once stall is set, until they are closed: a reader that stopped
// reading, seen from the server.
type stallListener struct {
	net.Listener
	stall   *atomic.Bool
	entered chan struct{}
}

func (l stallListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &stallConn{Conn: c, l: l, closed: make(chan struct{})}, nil
}

type stallConn struct {
	net.Conn
	l         stallListener
	closeOnce sync.Once
	closed    chan struct{}
}

func (c *stallConn) Write(p []byte) (int, error) {
	if !c.l.stall.Load() {
		return c.Conn.Write(p)
	}
	c.l.entered <- struct{}{}
	<-c.closed
	return 0, net.ErrClosed
}

func (c *stallConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// Close from another goroutine while a Write is stuck sending its gathered records (a WebSocket hub dropping a
// slow reader) breaks that Write instead of waiting behind it.
func TestListenerCloseDuringWrite(t *testing.T) {
	var stall atomic.Bool
	entered := make(chan struct{}, 1)
	_, ln, addr, ca := loopbackTLS(t, io.Discard, func(tcp net.Listener) net.Listener { return stallListener{tcp, &stall, entered} })
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		if err := c.(*Conn).Handshake(); err != nil {
			c.Close()
			close(accepted)
			return
		}
		accepted <- c
	}()
	dialTLS(t, addr, ca)
	c, ok := <-accepted
	if !ok {
		t.Fatal("server handshake failed")
	}
	stall.Store(true)
	wrote := make(chan error, 1)
	go func() {
		_, err := c.Write(make([]byte, 100<<10))
		wrote <- err
	}()
	<-entered // the Write is now stuck in the socket
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close waited behind a stuck Write")
	}
	if err := <-wrote; err == nil {
		t.Fatal("the broken Write reported success")
	}
}

// A failed handshake (here plain http on the https port) is counted and logged once, and then reads as a closed
// connection, so the HTTP server above neither answers it nor logs it again.
func TestListenerFailedHandshakeReadsAsClosed(t *testing.T) {
	logs := &syncBuffer{}
	m, ln, addr, _ := loopbackTLS(t, logs, nil)
	type result struct{ handshake, read error }
	done := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- result{handshake: err}
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		var r result
		r.handshake = c.(*Conn).Handshake()
		_, r.read = c.Read(make([]byte, 1))
		done <- r
	}()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /a001/index.m3u8 HTTP/1.1\r\nHost: edge\r\n\r\n")
	r := <-done
	if r.handshake == nil || r.read != io.EOF {
		t.Fatalf("handshake error %v, read error %v; want a handshake error, then io.EOF", r.handshake, r.read)
	}
	if st := m.Stats(); st.HandshakeErrors != 1 {
		t.Fatalf("handshake errors %d, want 1", st.HandshakeErrors)
	}
	if n := strings.Count(logs.String(), "tls: handshake failed"); n != 1 {
		t.Fatalf("want one debug line, got %d:\n%s", n, logs.String())
	}
}

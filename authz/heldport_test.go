package authz

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
)

// soReusePort is SO_REUSEPORT on Linux, which the syscall package does not name.
const soReusePort = 0xf

// heldListener listens on a free loopback port and keeps that port bound, by a second socket that never
// listens, until the test ends. Once the listener is closed, connections to its address are refused for the
// rest of the test: a port merely closed could meanwhile be taken by any listener of this or another test
// binary, and a test expecting a refusal would reach that one instead.
func heldListener(t testing.TB) net.Listener {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var err error
		if cerr := rc.Control(func(fd uintptr) {
			err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, soReusePort, 1)
		}); cerr != nil {
			return cerr
		}
		return err
	}}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	// Only sockets that set SO_REUSEPORT too may share the port; no listener of the tests does.
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, soReusePort, 1); err != nil {
		ln.Close()
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		ln.Close()
		t.Fatal(err)
	}
	return ln
}

// newHeldServer is httptest.NewServer on a heldListener: a test that closes it to take the backend down gets
// connections refused, never another server that took the port.
func newHeldServer(t testing.TB, h http.Handler) *httptest.Server {
	t.Helper()
	s := httptest.NewUnstartedServer(h)
	s.Listener.Close()
	s.Listener = heldListener(t)
	s.Start()
	return s
}

// A closed held server refuses, and nothing else can listen on its address while the test runs.
func TestHeldServerStaysRefused(t *testing.T) {
	s := newHeldServer(t, http.NotFoundHandler())
	addr := s.Listener.Addr().String()
	s.Close()
	if c, err := net.Dial("tcp", addr); !errors.Is(err, syscall.ECONNREFUSED) {
		if c != nil {
			c.Close()
		}
		t.Fatalf("dial %s: %v, want connection refused", addr, err)
	}
	if ln, err := net.Listen("tcp", addr); !errors.Is(err, syscall.EADDRINUSE) {
		if ln != nil {
			ln.Close()
		}
		t.Fatalf("listen on %s: %v, want the port still held", addr, err)
	}
}

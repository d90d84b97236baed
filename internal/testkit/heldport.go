package testkit

import (
	"context"
	"net"
	"syscall"
	"testing"
)

// soReusePort is SO_REUSEPORT on Linux, which the syscall package does not name.
const soReusePort = 0xf

// HeldListener listens on a free loopback port and keeps that port bound, by a second socket that never
// listens, until the test ends. Once the listener is closed, connections to its address are refused for the
// rest of the test: a port merely closed could meanwhile be taken by any listener of this or another test
// binary, and a test expecting a refusal would reach that one instead. Only sockets that set SO_REUSEPORT too
// may share the port, and no listener of the tests does.
func HeldListener(t testing.TB) net.Listener {
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

// RefusingAddr is a loopback host:port that refuses connections for the whole test (see HeldListener).
func RefusingAddr(t testing.TB) string {
	t.Helper()
	ln := HeldListener(t)
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

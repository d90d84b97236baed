package testkit

import (
	"errors"
	"net"
	"syscall"
	"testing"
)

// The address refuses, and nothing else can listen on it while the test runs.
func TestRefusingAddrStaysRefused(t *testing.T) {
	addr := RefusingAddr(t)
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

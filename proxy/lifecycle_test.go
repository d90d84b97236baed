package proxy

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/hlsedge/hlsedge/internal/testkit"
)

// A stop that comes before, or while, Serve starts must still end Serve: fasthttp's own Shutdown returns at
// once for a server whose Serve has not registered its listener, and that Serve then ran forever.
func TestShutdownRacingServeEndsServe(t *testing.T) {
	f := func(name string, shutdownFirst bool) {
		t.Run(name, func(t *testing.T) {
			srv := newEdge(t, nil, "http://127.0.0.1:9")
			// Held, so that once Serve closes it no other listener can take its port before the dial below.
			ln := testkit.HeldListener(t)
			done := make(chan error, 1)
			if shutdownFirst {
				_ = srv.Shutdown(context.Background())
				go func() { done <- srv.Serve(ln) }()
			} else {
				go func() { done <- srv.Serve(ln) }()
				_ = srv.Shutdown(context.Background())
			}
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("serve: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Serve still running 10 s after Shutdown")
			}
			if c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
				c.Close()
				t.Fatal("the public listener still accepts after Shutdown")
			}
		})
	}
	f("shutdown before serve", true)
	f("shutdown right after serve starts", false)
}

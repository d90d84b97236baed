package fleet_test

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/hlsedge/hlsedge/internal/fleet"
	"github.com/hlsedge/hlsedge/internal/fleet/fleettest"
)

// guard only turns a hang into a failure; no test waits on it to make progress.
const guard = 30 * time.Second

// testConfig is a member configuration with fast pings, so that a member back in touch with Redis re-syncs at
// once; tests still wait on the events, never on the intervals. Its timeouts are a loaded machine's: a command
// or ping slow on two busy cores must not turn the member degraded, nor a probe slow to come back reconnect its
// subscription (a re-sync no test asked for, which a test waiting for the next re-sync would take for its own).
// A Redis that is killed is noticed by its closed connections, not by a timeout; the test of the probe sets
// its own interval.
func testConfig(addr string) fleet.Config {
	return fleet.Config{
		Address:       addr,
		PingInterval:  20 * time.Millisecond,
		ProbeInterval: 10 * time.Minute,
		ReadTimeout:   10 * time.Second,
		// Long enough that the client's own keep-alive never beats the probe to a stalled connection.
		WriteTimeout: time.Minute,
	}
}

func newMember(t testing.TB, cfg fleet.Config, node string) *fleet.Client {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	c, err := fleet.New(cfg, node, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// startMember starts redis and one member on it, and waits until the member is healthy.
func startMember(t testing.TB) (*fleettest.Server, *fleet.Client) {
	t.Helper()
	srv := fleettest.Start(t)
	c := newMember(t, testConfig(srv.Addr), "node-a")
	waitHealth(t, c, func(h fleet.Health) bool { return !h.Degraded })
	return srv, c
}

// startTwoMembers starts redis and two members on it, node-a and node-b, and waits until both are healthy.
func startTwoMembers(t testing.TB) (*fleettest.Server, *fleet.Client, *fleet.Client) {
	t.Helper()
	srv, a := startMember(t)
	b := newMember(t, testConfig(srv.Addr), "node-b")
	waitHealth(t, b, func(h fleet.Health) bool { return !h.Degraded })
	return srv, a, b
}

// onResync returns a channel told of every resync of c.
func onResync(c *fleet.Client) <-chan struct{} {
	ch := make(chan struct{}, 64)
	c.OnResync(func(context.Context) { ch <- struct{}{} })
	return ch
}

// events subscribes c to the channel "events" and waits until the subscription is live; the payloads arrive on
// the channel returned.
func events(t testing.TB, c *fleet.Client) <-chan string {
	t.Helper()
	got := make(chan string, 64)
	ready(t, c.Subscribe("events", func(p []byte) error { got <- string(p); return nil }))
	return got
}

// subscribed subscribes with subscribe and waits until the subscription is live; the events arrive on the
// channel returned.
func subscribed[E any](t testing.TB, subscribe func(func(E)) *fleet.Subscription) <-chan E {
	t.Helper()
	ch := make(chan E, 64)
	ready(t, subscribe(func(ev E) { ch <- ev }))
	return ch
}

// publish publishes p on "events" through c.
func publish(t testing.TB, c *fleet.Client, p string) {
	t.Helper()
	if err := c.Publish(ctx(t), "events", []byte(p)); err != nil {
		t.Fatal(err)
	}
}

// echo publishes p on "events" through c and waits for it on got, what c's subscription receives.
func echo(t testing.TB, c *fleet.Client, got <-chan string, p string) {
	t.Helper()
	publish(t, c, p)
	if v := recv(t, got); v != p {
		t.Fatalf("got %q, want %q", v, p)
	}
}

// waitHealth waits, on health-change events, until cond holds.
func waitHealth(t testing.TB, c *fleet.Client, cond func(fleet.Health) bool) {
	t.Helper()
	deadline := time.NewTimer(guard)
	defer deadline.Stop()
	for {
		ch := c.HealthChanged()
		h := c.Health()
		if cond(h) {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("health never reached the expected state; last %+v, stats %+v", h, c.Stats())
		}
	}
}

// waitStats waits, on health-change events, until cond holds: every counter waited on here moves together
// with a health change (a reconnection degrades the member until it is subscribed again).
func waitStats(t testing.TB, c *fleet.Client, cond func(fleet.Stats, fleet.Health) bool) {
	t.Helper()
	waitHealth(t, c, func(h fleet.Health) bool { return cond(c.Stats(), h) })
}

func ready(t testing.TB, subs ...*fleet.Subscription) {
	t.Helper()
	for _, s := range subs {
		select {
		case <-s.Ready():
		case <-time.After(guard):
			t.Fatalf("subscription to %s never became ready", s.Channel())
		}
	}
}

func recv[T any](t testing.TB, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(guard):
		t.Fatal("nothing received")
	}
	panic("unreachable")
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), guard)
	t.Cleanup(cancel)
	return c
}

// now is a fixed clock: the scripts take the caller's time, so tests choose it.
func now() time.Time { return time.UnixMilli(1_750_000_000_000) }

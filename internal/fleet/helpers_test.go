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

// testConfig is a member configuration with fast pings and probes, so that tests reach their events quickly;
// they still wait on the events, never on the intervals.
func testConfig(addr string) fleet.Config {
	return fleet.Config{
		Address:       addr,
		PingInterval:  20 * time.Millisecond,
		ProbeInterval: 50 * time.Millisecond,
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

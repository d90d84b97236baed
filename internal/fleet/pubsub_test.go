package fleet_test

import (
	"errors"
	"testing"
	"time"

	"github.com/hlsedge/hlsedge/internal/fleet"
	"github.com/hlsedge/hlsedge/internal/fleet/fleettest"
)

func TestPublishReachesEveryMember(t *testing.T) {
	_, a, b := startTwoMembers(t)
	got := make(chan string, 4)
	handler := func(node string) fleet.Handler {
		return func(p []byte) error { got <- node + ":" + string(p); return nil }
	}
	ready(t, a.Subscribe("chat", handler("a")), b.Subscribe("chat", handler("b")))
	if err := a.Publish(ctx(t), "chat", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{recv(t, got): true, recv(t, got): true}
	if !seen["a:hello"] || !seen["b:hello"] {
		t.Fatalf("got %v, want the message on both members", seen)
	}
}

func TestClosedSubscriptionUnsubscribes(t *testing.T) {
	srv, c := startMember(t)
	got := make(chan string, 4)
	s1 := c.Subscribe("one", func(p []byte) error { got <- "one:" + string(p); return nil })
	s2 := c.Subscribe("two", func(p []byte) error { got <- "two:" + string(p); return nil })
	ready(t, s1, s2)
	s1.Close()
	// A subscription made after Close is confirmed by the same pass over the wanted channels, or a later one,
	// that unsubscribed "one".
	ready(t, c.Subscribe("three", func([]byte) error { return nil }))
	if n := srv.MustDo("PUBSUB", "NUMSUB", "one"); n != "one\n0" {
		t.Fatalf("PUBSUB NUMSUB one = %q, want no subscriber", n)
	}
	if err := c.Publish(ctx(t), "one", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx(t), "two", []byte("y")); err != nil {
		t.Fatal(err)
	}
	if v := recv(t, got); v != "two:y" {
		t.Fatalf("got %q after closing the subscription to one", v)
	}
}

// A handler's error or panic drops that message and counts it; the next message is delivered as usual.
func TestUndecodableMessageIsCountedAndDropped(t *testing.T) {
	_, c := startMember(t)
	got := make(chan string, 4)
	ready(t, c.Subscribe("events", func(p []byte) error {
		switch string(p) {
		case "garbage":
			return errors.New("cannot decode")
		case "boom":
			panic("handler bug")
		}
		got <- string(p)
		return nil
	}))
	for _, m := range []string{"garbage", "boom", "fine"} {
		publish(t, c, m)
	}
	// Messages of one connection arrive in order: once "fine" is here the other two were handled.
	if v := recv(t, got); v != "fine" {
		t.Fatalf("got %q", v)
	}
	if s := c.Stats(); s.DecodeErrors != 2 || s.Received != 3 {
		t.Fatalf("stats %+v, want 2 decode errors of 3 received", s)
	}
}

// The subscription connection is killed by the server: the member notices, subscribes again and re-syncs.
func TestSubscriptionKilledReconnects(t *testing.T) {
	srv, c := startMember(t)
	resynced := onResync(c)
	recv(t, resynced)
	got := events(t, c)

	if n := srv.MustDo("CLIENT", "KILL", "TYPE", "pubsub"); n != "1" {
		t.Fatalf("killed %s pubsub connections, want 1", n)
	}
	recv(t, resynced)
	if s := c.Stats(); s.ReconnectsLost < 1 {
		t.Fatalf("stats %+v, want a reconnection after the connection was lost", s)
	}
	echo(t, c, got, "after")
}

// The subscription stalls silently (centrifugo#1189): the connection stays open and publishes succeed, but
// nothing is delivered. Only the probe can tell; it reconnects the subscription.
func TestProbeReconnectsStalledSubscription(t *testing.T) {
	srv := fleettest.Start(t)
	proxy := fleettest.NewProxy(t, srv.Addr)
	cfg := testConfig(proxy.Addr)
	// The probe is what this test is about: often, so that it finds the stall quickly.
	cfg.ProbeInterval = 50 * time.Millisecond
	c := newMember(t, cfg, "node-a")
	got := events(t, c)
	waitHealth(t, c, func(h fleet.Health) bool { return !h.Degraded })

	if n := proxy.StallSubscribers(); n != 1 {
		t.Fatalf("stalled %d connections, want the one subscription", n)
	}
	before := c.Stats().ReconnectsProbe
	// Publishing still succeeds: that is what makes the stall silent.
	publish(t, c, "lost")
	waitStats(t, c, func(s fleet.Stats, h fleet.Health) bool { return s.ReconnectsProbe > before && !h.Degraded })
	publish(t, c, "after")
	for v := recv(t, got); v != "after"; v = recv(t, got) {
		if v != "lost" {
			t.Fatalf("got %q", v)
		}
	}
	if s := c.Stats(); s.ReconnectsLost != 0 {
		t.Fatalf("stats %+v: the stall must be found by the probe, not by the connection failing", s)
	}
}

// Redis is killed mid-run: the member turns degraded, calls fail fast with ErrUnavailable, and when Redis is
// back the subscription is live again and the resync callbacks run.
func TestRedisRestartDegradesThenResyncs(t *testing.T) {
	srv, c := startMember(t)
	resynced := onResync(c)
	recv(t, resynced)
	got := events(t, c)

	srv.Kill()
	waitHealth(t, c, func(h fleet.Health) bool { return h.Degraded })
	if !c.Degraded() {
		t.Fatal("Degraded() is false while Health says degraded")
	}
	_, err := c.AdmitSession(ctx(t), "alice", "m1", fleet.SessionLimit{Limit: 1, Idle: 30e9}, now())
	if !errors.Is(err, fleet.ErrUnavailable) {
		t.Fatalf("admit while redis is down: %v, want ErrUnavailable", err)
	}
	if err := c.Publish(ctx(t), "events", []byte("lost")); !errors.Is(err, fleet.ErrUnavailable) {
		t.Fatalf("publish while redis is down: %v, want ErrUnavailable", err)
	}

	srv.Restart()
	recv(t, resynced)
	if c.Degraded() {
		t.Fatalf("still degraded after the resync: %+v", c.Health())
	}
	echo(t, c, got, "back")
	// The restarted server lost the scripts too; they are loaded again on first use.
	if a, err := c.AdmitSession(ctx(t), "alice", "m1", fleet.SessionLimit{Limit: 1, Idle: 30e9}, now()); err != nil || !a.Admitted {
		t.Fatalf("admit after the restart: %+v, %v", a, err)
	}
	if s := c.Stats(); s.DegradedTotal < 1 || s.Resyncs < 2 {
		t.Fatalf("stats %+v", s)
	}
}

// A member whose Redis is down at start starts anyway, degraded, and re-syncs once Redis comes up.
func TestStartsDegradedWithoutRedis(t *testing.T) {
	srv := fleettest.Start(t)
	srv.Kill()
	c := newMember(t, testConfig(srv.Addr), "node-a")
	if !c.Degraded() {
		t.Fatal("a member without redis must start degraded")
	}
	resynced := onResync(c)
	srv.Restart()
	recv(t, resynced)
	if c.Degraded() {
		t.Fatalf("degraded after the resync: %+v", c.Health())
	}
}

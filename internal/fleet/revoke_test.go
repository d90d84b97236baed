package fleet_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hlsedge/hlsedge/internal/fleet"
)

func TestRevocationsPublishedAndLoaded(t *testing.T) {
	srv, a, b := startTwoMembers(t)
	events := subscribed(t, b.SubscribeRevocations)

	t0 := now()
	ban := fleet.Revocation{ID: "ban:1", Data: []byte(`{"user":"mallory"}`), Expires: t0.Add(time.Hour)}
	if err := a.Revoke(ctx(t), ban, 10, t0); err != nil {
		t.Fatal(err)
	}
	ev := recv(t, events)
	if ev.Deleted || ev.Node != "node-a" || ev.ID != "ban:1" || string(ev.Data) != `{"user":"mallory"}` || !ev.Expires.Equal(ban.Expires) {
		t.Fatalf("event %+v", ev)
	}
	kick := fleet.Revocation{ID: "kick:2", Data: []byte("~00112233aabbccdd\nline two")}
	if err := a.Revoke(ctx(t), kick, 10, t0); err != nil {
		t.Fatal(err)
	}
	if ev := recv(t, events); ev.ID != "kick:2" || !ev.Expires.IsZero() || string(ev.Data) != string(kick.Data) {
		t.Fatalf("event %+v", ev)
	}

	// A member that starts later loads the set.
	c := newMember(t, testConfig(srv.Addr), "node-c")
	waitHealth(t, c, func(h fleet.Health) bool { return !h.Degraded })
	ids := func(at time.Time) []string {
		t.Helper()
		rs, err := c.Revocations(ctx(t), at)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range rs {
			out = append(out, r.ID+"="+string(r.Data))
		}
		slices.Sort(out)
		return out
	}
	want := []string{`ban:1={"user":"mallory"}`, "kick:2=" + string(kick.Data)}
	if got := ids(t0); !slices.Equal(got, want) {
		t.Fatalf("loaded %q, want %q", got, want)
	}
	// An expired one is left out.
	if got := ids(t0.Add(time.Hour)); !slices.Equal(got, want[1:]) {
		t.Fatalf("loaded %q after the ban expired", got)
	}

	if ok, err := c.Unrevoke(ctx(t), "ban:1"); err != nil || !ok {
		t.Fatalf("unrevoke: %v %v", ok, err)
	}
	if ev := recv(t, events); !ev.Deleted || ev.ID != "ban:1" || ev.Node != "node-c" {
		t.Fatalf("event %+v", ev)
	}
	if ok, err := c.Unrevoke(ctx(t), "ban:1"); err != nil || ok {
		t.Fatalf("second unrevoke: %v %v", ok, err)
	}
}

func TestRevocationsBounded(t *testing.T) {
	_, c := startMember(t)
	t0 := now()
	for _, id := range []string{"a", "b"} {
		if err := c.Revoke(ctx(t), fleet.Revocation{ID: id, Expires: t0.Add(time.Minute)}, 2, t0); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Revoke(ctx(t), fleet.Revocation{ID: "c"}, 2, t0); !errors.Is(err, fleet.ErrFull) {
		t.Fatalf("third revocation: %v, want ErrFull", err)
	}
	// Replacing one is not growing the set.
	if err := c.Revoke(ctx(t), fleet.Revocation{ID: "a", Data: []byte("longer"), Expires: t0.Add(time.Minute)}, 2, t0); err != nil {
		t.Fatal(err)
	}
	// Once they expired, their room is free again: the store prunes them.
	if err := c.Revoke(ctx(t), fleet.Revocation{ID: "c"}, 2, t0.Add(time.Minute)); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
	rs, err := c.Revocations(ctx(t), t0.Add(time.Minute))
	if err != nil || len(rs) != 1 || rs[0].ID != "c" {
		t.Fatalf("revocations %+v, %v", rs, err)
	}
}

func TestRevokeRefusesBadInput(t *testing.T) {
	_, c := startMember(t)
	f := func(r fleet.Revocation) {
		t.Helper()
		if err := c.Revoke(ctx(t), r, 0, now()); err == nil {
			t.Fatalf("%+v: no error", r)
		}
	}
	f(fleet.Revocation{})
	f(fleet.Revocation{ID: "a\nb"})
	f(fleet.Revocation{ID: strings.Repeat("x", 257)})
	f(fleet.Revocation{ID: "a", Data: make([]byte, 64<<10+1)})
	f(fleet.Revocation{ID: "a", Expires: now()})
}

// Whatever arrives on the revocation channel that is not an event is counted and dropped, and the next event
// still gets through.
func TestRevocationGarbageDropped(t *testing.T) {
	_, c := startMember(t)
	events := make(chan fleet.RevocationEvent, 8)
	sub := c.SubscribeRevocations(func(ev fleet.RevocationEvent) { events <- ev })
	ready(t, sub)
	garbage := []string{"", "put", "put\n", "put\nnode", "put\nnode\nid", "put\nnode\nid\nnot-a-number\n", "put\nnode\nid\n-5\n",
		"del\nnode\n", "del\n\nid", "zap\nnode\nid", "put\nnode\n\x01\n0\n"}
	for _, g := range garbage {
		if err := c.Publish(ctx(t), sub.Channel(), []byte(g)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Revoke(ctx(t), fleet.Revocation{ID: "ok"}, 0, now()); err != nil {
		t.Fatal(err)
	}
	if ev := recv(t, events); ev.ID != "ok" {
		t.Fatalf("event %+v", ev)
	}
	if s := c.Stats(); s.DecodeErrors != uint64(len(garbage)) {
		t.Fatalf("%d decode errors, want %d", s.DecodeErrors, len(garbage))
	}
}

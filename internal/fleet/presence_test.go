package fleet_test

import (
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/hlsedge/hlsedge/internal/fleet"
)

// Two members hold one participant (two tabs on two nodes): the place is kept until neither holds it, and the
// one sweep that finds it free takes it out.
func TestRoomPresenceKeepsPlaceWhileHeld(t *testing.T) {
	srv, a, b := startTwoMembers(t)
	ra, rb := a.Room("standup", "c1", 0), b.Room("standup", "c1", 0)
	t0 := now()
	lease := t0.Add(30 * time.Second)
	ann := fleet.Entry{Key: "ann", Data: []byte(`{"email":"ann@x"}`)}

	h, err := ra.Hold(ctx(t), "A", lease, []string{"s1", "s2"}, []fleet.Entry{ann})
	if err != nil || !slices.Equal(h.Added, []string{"ann"}) || len(h.Decided) != 0 {
		t.Fatalf("first hold %+v, %v", h, err)
	}
	if h, err = rb.Hold(ctx(t), "B", lease, []string{"s3"}, []fleet.Entry{{Key: "ann", Data: []byte("later entry")}}); err != nil || len(h.Added) != 0 {
		t.Fatalf("second holder %+v, %v: the participant was waiting already", h, err)
	}
	if w, _ := ra.Waiting(ctx(t)); len(w) != 1 || string(w[0].Data) != string(ann.Data) {
		t.Fatalf("waiting %+v: the first entry (join time) stands", w)
	}
	if n, err := rb.Members(ctx(t), t0); err != nil || n != 3 {
		t.Fatalf("members %d, %v", n, err)
	}

	// A's socket goes: its hold ends after a grace period, B's still holds.
	if err := ra.Release(ctx(t), "A", "ann", t0.Add(10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := ra.RemoveMember(ctx(t), "s1"); err != nil {
		t.Fatal(err)
	}
	if out, err := ra.Sweep(ctx(t), t0.Add(20*time.Second), nil); err != nil || len(out) != 0 {
		t.Fatalf("sweep while B holds: %+v, %v", out, err)
	}
	if err := rb.Release(ctx(t), "B", "ann", t0.Add(25*time.Second)); err != nil {
		t.Fatal(err)
	}
	if out, err := ra.Sweep(ctx(t), t0.Add(24*time.Second), []string{"ann"}); err != nil || len(out) != 0 {
		t.Fatalf("sweep inside B's grace: %+v, %v", out, err)
	}
	out, err := rb.Sweep(ctx(t), t0.Add(25*time.Second), nil)
	if err != nil || len(out) != 1 || out[0].Key != "ann" || string(out[0].Data) != string(ann.Data) {
		t.Fatalf("sweep after every hold ended: %+v, %v", out, err)
	}
	if out, _ := ra.Sweep(ctx(t), t0.Add(25*time.Second), nil); len(out) != 0 {
		t.Fatalf("swept twice: %+v", out)
	}
	if got := srv.MustDo("HLEN", a.ConfKey("standup", "c1", "present")); got != "0" {
		t.Fatalf("%s holds left after the sweep", got)
	}
	// Leases lapse on their own: a member that died stops counting.
	if n, err := ra.Members(ctx(t), t0.Add(31*time.Second)); err != nil || n != 0 {
		t.Fatalf("members after the lease %d, %v", n, err)
	}
}

// A decision taken while a participant's holder renewed its hold is not undone: Hold reports it instead of
// putting them back. The first decision settled stands.
func TestRoomHoldAndSettleHonourDecisions(t *testing.T) {
	srv, c := startMember(t)
	r := c.Room("standup", "c1", 0)
	t0 := now()
	bob := fleet.Entry{Key: "bob", Data: []byte("bob's entry")}
	if _, err := r.Hold(ctx(t), "A", t0.Add(time.Minute), nil, []fleet.Entry{bob}); err != nil {
		t.Fatal(err)
	}
	if moved, err := r.Decide(ctx(t), []string{"bob"}, []byte("admitted")); err != nil || len(moved) != 1 {
		t.Fatalf("decide %q %v", moved, err)
	}
	h, err := r.Hold(ctx(t), "A", t0.Add(time.Minute), []string{"s1"}, []fleet.Entry{bob})
	if err != nil || len(h.Added) != 0 || len(h.Decided) != 1 || string(h.Decided[0].Data) != "admitted" {
		t.Fatalf("hold after the decision %+v, %v", h, err)
	}
	if w, _ := r.Waiting(ctx(t)); len(w) != 0 {
		t.Fatalf("decided participant back in the list: %+v", w)
	}
	if d, err := r.Settle(ctx(t), "bob", []byte("rejected")); err != nil || string(d) != "admitted" {
		t.Fatalf("settle over an earlier decision: %q %v", d, err)
	}
	if d, err := r.Settle(ctx(t), "cy", []byte("rejected")); err != nil || string(d) != "rejected" {
		t.Fatalf("first settle: %q %v", d, err)
	}
	if ok, err := r.Unwait(ctx(t), "cy", t0); err != nil || ok {
		t.Fatalf("unwait of someone not waiting: %v %v", ok, err)
	}
	if _, err := r.Hold(ctx(t), "A", t0.Add(time.Minute), nil, []fleet.Entry{{Key: "dee", Data: []byte("d")}}); err != nil {
		t.Fatal(err)
	}
	if ok, err := r.Unwait(ctx(t), "dee", t0); err != nil || !ok {
		t.Fatalf("unwait of a held participant: %v %v", ok, err)
	}
	for _, part := range []string{"members", "present", "decided"} {
		if ttl := srv.MustDo("PTTL", c.ConfKey("standup", "c1", part)); ttl == "-1" {
			t.Fatalf("%s has no expiry", part)
		}
	}
	if err := r.Drop(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if n := srv.MustDo("EXISTS", c.ConfKey("standup", "c1", "members"), c.ConfKey("standup", "c1", "present")); n != "0" {
		t.Fatalf("%s presence keys left after drop", n)
	}
}

// Hold splits a large call so that no script call grows without bound, and the split is invisible.
func TestRoomHoldLargeBatch(t *testing.T) {
	_, c := startMember(t)
	r := c.Room("big", "c1", 0)
	t0 := now()
	var sessions []string
	var waiters []fleet.Entry
	for i := range 1500 {
		sessions = append(sessions, "s"+strconv.Itoa(i))
		waiters = append(waiters, fleet.Entry{Key: "w" + strconv.Itoa(i), Data: []byte("e")})
	}
	h, err := r.Hold(ctx(t), "A", t0.Add(time.Minute), sessions, waiters)
	if err != nil || len(h.Added) != 1500 {
		t.Fatalf("added %d, %v", len(h.Added), err)
	}
	if n, err := r.Members(ctx(t), t0); err != nil || n != 1500 {
		t.Fatalf("members %d, %v", n, err)
	}
}

package fleet_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/hlsedge/hlsedge/internal/fleet"
)

func TestConferenceRegistry(t *testing.T) {
	_, a, b := startTwoMembers(t)
	events := subscribed(t, b.SubscribeConferences)

	if prev, err := a.PutConference(ctx(t), "standup", []byte("run1")); err != nil || prev != nil {
		t.Fatalf("first put: %q, %v", prev, err)
	}
	if ev := recv(t, events); ev.Room != "standup" || string(ev.Data) != "run1" || ev.Deleted || ev.Node != "node-a" {
		t.Fatalf("event %+v", ev)
	}
	if prev, err := b.PutConference(ctx(t), "standup", []byte("run2")); err != nil || string(prev) != "run1" {
		t.Fatalf("replacing put: %q, %v", prev, err)
	}
	recv(t, events)
	if got, ok, err := a.LookupConference(ctx(t), "standup"); err != nil || !ok || string(got) != "run2" {
		t.Fatalf("lookup: %q %v %v", got, ok, err)
	}
	if _, ok, err := a.LookupConference(ctx(t), "nope"); err != nil || ok {
		t.Fatalf("lookup of a missing room: %v %v", ok, err)
	}
	if _, err := a.PutConference(ctx(t), "retro", []byte("r")); err != nil {
		t.Fatal(err)
	}
	recv(t, events)
	all, err := b.Conferences(ctx(t))
	if err != nil || len(all) != 2 || string(all["retro"]) != "r" {
		t.Fatalf("registry %q, %v", all, err)
	}
	if prev, ok, err := b.DeleteConference(ctx(t), "standup"); err != nil || !ok || string(prev) != "run2" {
		t.Fatalf("delete: %q %v %v", prev, ok, err)
	}
	if ev := recv(t, events); !ev.Deleted || ev.Room != "standup" || ev.Node != "node-b" {
		t.Fatalf("event %+v", ev)
	}
	if _, ok, err := b.DeleteConference(ctx(t), "standup"); err != nil || ok {
		t.Fatalf("second delete: %v %v", ok, err)
	}
}

// A participant waits on node A; moderators on two nodes decide at once; exactly one decision lands, and
// everyone learns it through the run's channel.
func TestRoomWaitingAndDecisions(t *testing.T) {
	_, a, b := startTwoMembers(t)
	ra, rb := a.Room("standup", "c1", 0), b.Room("standup", "c1", 0)
	if ra.Channel() != rb.Channel() || !strings.HasPrefix(ra.Channel(), "{hlsedge:conf:standup}") {
		t.Fatalf("channels %q %q", ra.Channel(), rb.Channel())
	}
	got := make(chan string, 4)
	ready(t, ra.Subscribe(func(p []byte) error { got <- string(p); return nil }))

	for _, k := range []string{"ann@x", "bob@x", "cy@x"} {
		if err := ra.AddWaiting(ctx(t), k, []byte("entry of "+k)); err != nil {
			t.Fatal(err)
		}
	}
	w, err := rb.Waiting(ctx(t))
	if err != nil || len(w) != 3 || w[0].Key != "ann@x" || string(w[0].Data) != "entry of ann@x" {
		t.Fatalf("waiting %+v, %v", w, err)
	}
	if ok, err := ra.RemoveWaiting(ctx(t), "cy@x"); err != nil || !ok {
		t.Fatalf("remove: %v %v", ok, err)
	}

	// Two moderators decide on ann at once: one admission wins.
	var wg sync.WaitGroup
	moved := make([][]string, 2)
	for i, r := range []*fleet.Room{ra, rb} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := r.Decide(ctx(t), []string{"ann@x"}, fmt.Appendf(nil, "decided by %d", i))
			if err != nil {
				t.Error(err)
			}
			moved[i] = m
		}()
	}
	wg.Wait()
	if len(moved[0])+len(moved[1]) != 1 {
		t.Fatalf("moved %q, want ann moved once", moved)
	}
	d, ok, err := ra.Decision(ctx(t), "ann@x")
	if err != nil || !ok || !strings.HasPrefix(string(d), "decided by") {
		t.Fatalf("decision %q %v %v", d, ok, err)
	}
	if err := rb.Publish(ctx(t), []byte("join_room_standup:ann@x")); err != nil {
		t.Fatal(err)
	}
	if v := recv(t, got); v != "join_room_standup:ann@x" {
		t.Fatalf("got %q", v)
	}

	// Everyone: bob is the only one left.
	if m, err := rb.Decide(ctx(t), nil, []byte("nobody")); err != nil || len(m) != 0 {
		t.Fatalf("decide on no one: %q, %v", m, err)
	}
	if m, err := rb.DecideAll(ctx(t), []byte("all")); err != nil || !slices.Equal(m, []string{"bob@x"}) {
		t.Fatalf("decide everyone: %q, %v", m, err)
	}
	if w, err := ra.Waiting(ctx(t)); err != nil || len(w) != 0 {
		t.Fatalf("waiting after admitting everyone: %+v, %v", w, err)
	}
	ds, err := ra.Decisions(ctx(t))
	if err != nil || len(ds) != 2 {
		t.Fatalf("decisions %+v, %v", ds, err)
	}

	// Another run of the same room shares nothing with this one.
	if w, err := a.Room("standup", "c2", 0).Waiting(ctx(t)); err != nil || len(w) != 0 {
		t.Fatalf("waiting of another run: %+v %v", w, err)
	}
	if err := ra.Drop(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := rb.Decision(ctx(t), "ann@x"); err != nil || ok {
		t.Fatalf("decision after drop: %v %v", ok, err)
	}
}

func TestRoomChatHistoryCapped(t *testing.T) {
	srv, c := startMember(t)
	r := c.Room("standup", "c1", 0)
	for i := range 7 {
		if err := r.AppendChat(ctx(t), fmt.Appendf(nil, "m%d", i), 5); err != nil {
			t.Fatal(err)
		}
	}
	f := func(n int, want ...string) {
		t.Helper()
		msgs, err := r.Chat(ctx(t), n)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, m := range msgs {
			got = append(got, string(m))
		}
		if !slices.Equal(got, want) {
			t.Fatalf("Chat(%d) = %q, want %q", n, got, want)
		}
	}
	f(10, "m2", "m3", "m4", "m5", "m6")
	got := make(chan string, 1)
	ready(t, r.Subscribe(func(p []byte) error { got <- string(p); return nil }))
	if err := r.PublishChat(ctx(t), []byte("event of m7"), []byte("m7"), 5); err != nil {
		t.Fatal(err)
	}
	if v := recv(t, got); v != "event of m7" {
		t.Fatalf("published %q", v)
	}
	f(10, "m3", "m4", "m5", "m6", "m7")
	f(2, "m6", "m7")
	f(0)
	if ttl := srv.MustDo("PTTL", c.ConfKey("standup", "c1", "chat")); ttl == "-1" || ttl == "-2" {
		t.Fatalf("chat history has no expiry: PTTL %s", ttl)
	}
}

// Keys of one room or user share a hash tag, whatever the name holds; names that would break the layout are
// escaped.
func TestKeysHashTagged(t *testing.T) {
	_, c := startMember(t)
	f := func(got, want string) {
		t.Helper()
		if got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	f(c.ConfKey("standup", "c1", "chat"), "{hlsedge:conf:standup}:c1:chat")
	f(c.ConfKey("a}b{c", "x:y", "waiting"), "{hlsedge:conf:a%7Db%7Bc}:x%3Ay:waiting")
	f(c.UserKey("alice", "sessions"), "{hlsedge:user:alice}:sessions")
	f(c.UserKey("100% me", "conns"), "{hlsedge:user:100%25%20me}:conns")
	for _, k := range []string{c.ConfKey("r", "1", "chat"), c.ConfKey("r", "2", "waiting")} {
		if tag := k[1:strings.IndexByte(k, '}')]; tag != "hlsedge:conf:r" {
			t.Fatalf("%s: tag %q", k, tag)
		}
	}
}

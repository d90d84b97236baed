package fleet_test

import (
	"fmt"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hlsedge/hlsedge/internal/fleet"
	"github.com/hlsedge/hlsedge/internal/fleet/fleettest"
)

func TestAdmitSessionFlussonicRule(t *testing.T) {
	_, a, b := startTwoMembers(t)
	l := fleet.SessionLimit{Limit: 2, Idle: 30 * time.Second}
	t0 := now()
	step := func(c *fleet.Client, member string, at time.Time, admitted bool, count int, isNew bool) {
		t.Helper()
		got, err := c.AdmitSession(ctx(t), "alice", member, l, at)
		if err != nil {
			t.Fatal(err)
		}
		if got.Admitted != admitted || got.Count != count || got.New != isNew {
			t.Fatalf("%s at +%s: got %+v, want admitted=%v count=%d new=%v", member, at.Sub(t0), got, admitted, count, isNew)
		}
	}
	// Two devices on two nodes fill the limit; the third, newest, is refused, wherever it asks.
	step(a, "tv", t0, true, 1, true)
	step(b, "phone", t0.Add(time.Second), true, 2, true)
	step(a, "laptop", t0.Add(2*time.Second), false, 2, false)
	step(b, "laptop", t0.Add(2*time.Second), false, 2, false)
	// Refreshing a live session is never refused.
	step(b, "tv", t0.Add(10*time.Second), true, 2, false)
	// The phone idles out 30s after its last refresh; then the laptop gets its place.
	step(a, "laptop", t0.Add(31*time.Second-time.Millisecond), false, 2, false)
	step(a, "laptop", t0.Add(31*time.Second), true, 2, true)
	// A session that ended leaves at once.
	if err := a.EndSession(ctx(t), "alice", "tv"); err != nil {
		t.Fatal(err)
	}
	step(b, "phone", t0.Add(32*time.Second), true, 2, true)
	// Other users are counted apart; no limit counts without refusing.
	for i := range 5 {
		got, err := a.AdmitSession(ctx(t), "bob", strconv.Itoa(i), fleet.SessionLimit{Idle: time.Minute}, t0)
		if err != nil || !got.Admitted || got.Count != i+1 {
			t.Fatalf("bob #%d: %+v, %v", i, got, err)
		}
	}
}

func TestAdmitSessionUniqueEvictsOthers(t *testing.T) {
	_, c := startMember(t)
	l := fleet.SessionLimit{Idle: time.Minute}
	for _, m := range []string{"one", "two"} {
		if _, err := c.AdmitSession(ctx(t), "carol", m, l, now()); err != nil {
			t.Fatal(err)
		}
	}
	l.Unique = true
	got, err := c.AdmitSession(ctx(t), "carol", "three", l, now())
	if err != nil {
		t.Fatal(err)
	}
	if !got.Admitted || got.Count != 1 || len(got.Evicted) != 2 {
		t.Fatalf("got %+v, want three alone after evicting one and two", got)
	}
}

// Soft mode: a channel switch on one device is the same session, so it is never refused; without soft mode it
// is a second session.
func TestSessionMemberSoftMode(t *testing.T) {
	ip := netip.MustParseAddr("192.0.2.7")
	f := func(ip2 netip.Addr, ua, ch string, soft, same bool) {
		t.Helper()
		a := fleet.SessionMember(ip, "VLC/3", "news", soft)
		b := fleet.SessionMember(ip2, ua, ch, soft)
		if (a == b) != same {
			t.Fatalf("member(%s,%s,%s,soft=%v) same=%v, want %v", ip2, ua, ch, soft, a == b, same)
		}
	}
	f(ip, "VLC/3", "news", false, true)
	f(ip, "VLC/3", "sport", false, false)
	f(ip, "VLC/3", "sport", true, true)
	f(ip, "Safari", "news", true, false)
	f(netip.MustParseAddr("192.0.2.8"), "VLC/3", "news", true, false)
	f(netip.MustParseAddr("::ffff:192.0.2.7"), "VLC/3", "news", false, true)
	if m := fleet.SessionMember(ip, "VLC/3", "news", false); len(m) != 32 {
		t.Fatalf("member %q: want 32 hex digits", m)
	}

	_, c := startMember(t)
	l := fleet.SessionLimit{Limit: 1, Idle: time.Minute}
	news := fleet.SessionMember(ip, "VLC/3", "news", true)
	sport := fleet.SessionMember(ip, "VLC/3", "sport", true)
	for _, m := range []string{news, sport} {
		got, err := c.AdmitSession(ctx(t), "dave", m, l, now())
		if err != nil || !got.Admitted {
			t.Fatalf("soft channel switch: %+v, %v", got, err)
		}
	}
}

// Many goroutines on two members open sessions of one user at once: exactly limit are admitted.
func TestAdmitSessionExactUnderConcurrency(t *testing.T) {
	srv := fleettest.Start(t)
	members := []*fleet.Client{newMember(t, testConfig(srv.Addr), "node-a"), newMember(t, testConfig(srv.Addr), "node-b")}
	for _, m := range members {
		waitHealth(t, m, func(h fleet.Health) bool { return !h.Degraded })
	}
	const limit, tries = 7, 200
	var admitted, refused atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, tries)
	for i := range tries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			got, err := members[i%2].AdmitSession(ctx(t), "eve", fmt.Sprintf("device-%d", i),
				fleet.SessionLimit{Limit: limit, Idle: time.Minute}, now())
			switch {
			case err != nil:
				errs <- err
			case got.Admitted:
				admitted.Add(1)
			default:
				refused.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if admitted.Load() != limit || refused.Load() != tries-limit {
		t.Fatalf("admitted %d, refused %d; want exactly %d admitted", admitted.Load(), refused.Load(), limit)
	}
	if n := srv.MustDo("ZCARD", members[0].UserKey("eve", "sessions")); n != strconv.Itoa(limit) {
		t.Fatalf("the user's set holds %s sessions, want %d", n, limit)
	}
}

func TestConnLimitAcrossMembers(t *testing.T) {
	_, a, b := startTwoMembers(t)
	ttl := 90 * time.Second
	for i, c := range []*fleet.Client{a, b} {
		got, err := c.AcquireConn(ctx(t), "frank", c.Node()+":1", 2, ttl, now())
		if err != nil || !got.Admitted || got.Count != i+1 {
			t.Fatalf("connection on %s: %+v, %v", c.Node(), got, err)
		}
	}
	if got, err := a.AcquireConn(ctx(t), "frank", "node-a:2", 2, ttl, now()); err != nil || got.Admitted {
		t.Fatalf("third connection: %+v, %v; want refused", got, err)
	}
	if err := b.ReleaseConn(ctx(t), "frank", "node-b:1"); err != nil {
		t.Fatal(err)
	}
	if got, err := a.AcquireConn(ctx(t), "frank", "node-a:2", 2, ttl, now()); err != nil || !got.Admitted {
		t.Fatalf("after a release: %+v, %v; want admitted", got, err)
	}
	// A dead node's connections stop counting once their ttl has passed without a refresh.
	if got, err := b.AcquireConn(ctx(t), "frank", "node-b:2", 2, ttl, now().Add(ttl)); err != nil || !got.Admitted || got.Count != 1 {
		t.Fatalf("after the ttl: %+v, %v; want admitted alone", got, err)
	}
}

func TestAdmitSessionRefusesBadInput(t *testing.T) {
	_, c := startMember(t)
	f := func(member string, l fleet.SessionLimit) {
		t.Helper()
		if _, err := c.AdmitSession(ctx(t), "u", member, l, now()); err == nil {
			t.Fatalf("member %q limit %+v: no error", member, l)
		}
	}
	if _, err := c.AdmitSession(ctx(t), "", "m", fleet.SessionLimit{Idle: time.Second}, now()); err == nil {
		t.Fatal("empty user: no error")
	}
	if _, err := c.AcquireConn(ctx(t), string(make([]byte, 256)), "m", 1, time.Second, now()); err == nil {
		t.Fatal("user too long: no error")
	}
	f("", fleet.SessionLimit{Idle: time.Second})
	f(string(make([]byte, 129)), fleet.SessionLimit{Idle: time.Second})
	f("m", fleet.SessionLimit{})
	f("m", fleet.SessionLimit{Idle: time.Second, Limit: -1})
}

func TestThrottle(t *testing.T) {
	th := fleet.NewThrottle(5 * time.Second)
	var last atomic.Int64
	s := int64(time.Second)
	f := func(at int64, want bool) {
		t.Helper()
		if got := th.Due(&last, at); got != want {
			t.Fatalf("Due at %ds = %v, want %v", at/s, got, want)
		}
	}
	f(100*s, true) // never refreshed
	f(101*s, false)
	f(104*s, false)
	f(105*s, true)
	f(105*s, false) // claimed by the call before

	// Of concurrent callers, one refreshes.
	var wins atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if th.Due(&last, 200*s) {
				wins.Add(1)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d concurrent callers refreshed, want 1", wins.Load())
	}

	r := func(idle, want time.Duration) {
		t.Helper()
		if got := fleet.RefreshInterval(idle); got != want {
			t.Fatalf("RefreshInterval(%s) = %s, want %s", idle, got, want)
		}
	}
	r(30*time.Second, 5*time.Second)
	r(9*time.Second, 3*time.Second)
	r(time.Second, time.Second/3)
}

package authz

import (
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"testing"
)

// A connection's TrackHint is only a shorter way to the session the table's lookup finds: a closed session, another
// user agent, another table, a session id pushed out of the session's list and a soft table all go the long way.
func TestTrackHintFindsOnlyWhatTheLookupWould(t *testing.T) {
	newTable := func(soft bool) *sessionTable {
		cfg := SessionsConfig{Soft: soft}
		cfg.setDefaults()
		return newSessionTable(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}
	ip := netip.MustParseAddr("192.0.2.7")
	view := func(h *TrackHint, ua string, sid uint64) *Viewer {
		return &Viewer{Owner: "u1", User: "u1", SessionID: sid, Channel: []byte("a001"), IP: ip, UserAgent: []byte(ua), Hint: h}
	}
	track := func(tab *sessionTable, v *Viewer) *session {
		t.Helper()
		s, err := tab.track(v, 1)
		if err != nil || s == nil {
			t.Fatalf("track: %v, %v", s, err)
		}
		return s
	}
	// hintOnly takes s out of its table's map without closing it, so that only the hint can still find it.
	hintOnly := func(tab *sessionTable, s *session) {
		sh := &tab.shards[s.key%sessionShards]
		sh.mu.Lock()
		delete(sh.m, s.key)
		sh.mu.Unlock()
	}

	tab := newTable(false)
	var h TrackHint
	s := track(tab, view(&h, "TV", 1))
	if h.s != s {
		t.Fatal("the session's first request left no hint")
	}
	hintOnly(tab, s)
	if got := track(tab, view(&h, "TV", 1)); got != s || s.requests.Load() != 2 {
		t.Fatalf("the next request of the session did not come through the hint (%p, want %p; %d requests)", got, s, s.requests.Load())
	}

	// Another user agent is another session.
	if got := track(tab, view(&h, "Phone", 1)); got == s {
		t.Fatal("the hint answered for another user agent")
	}

	// A closed session is never counted into.
	tab = newTable(false)
	s = track(tab, view(&h, "TV", 1))
	tab.remove(s)
	if got := track(tab, view(&h, "TV", 1)); got == s {
		t.Fatal("the hint counted a request into a closed session")
	}

	// Another table (a reload that rebuilt the state) looks its own sessions up.
	other := newTable(false)
	s = track(tab, view(&h, "TV", 1))
	if got := track(other, view(&h, "TV", 1)); got == s {
		t.Fatal("the hint answered for another table")
	}

	// Four other session ids of the same session push this one out of its list; its next request puts it back,
	// so that a kick of the session covers it.
	tab = newTable(false)
	s = track(tab, view(&h, "TV", 1))
	for sid := uint64(2); sid <= 5; sid++ {
		track(tab, view(nil, "TV", sid))
	}
	if slices.Contains(s.sids[:], 1) {
		t.Fatalf("setup: session id 1 still listed: %v", s.sids)
	}
	if track(tab, view(&h, "TV", 1)); !slices.Contains(s.sids[:], 1) {
		t.Fatalf("the hint skipped a session id the session no longer lists: %v", s.sids)
	}

	// A soft session's channel changes under the shard lock: its table keeps no hints.
	soft := newTable(true)
	h = TrackHint{}
	track(soft, view(&h, "TV", 1))
	if h.s != nil {
		t.Fatal("a soft table left a hint")
	}
}

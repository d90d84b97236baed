package authz

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// A connection's memo answers exactly as the cache does: it is only a shorter way to the same entry, so bans,
// kicks, expiry, another address, another channel and a reload all reach a viewer it remembers.
func TestMemoAnswersAsTheCacheDoes(t *testing.T) {
	a := newTestAuthz(t, sessionConfig(0, false), nil)
	tok := mintHS(t, []string{"a001", "a002"}, time.Hour, "ip", clientIP.String())
	var m Memo
	ask := func(ch string, ip netip.Addr, at time.Duration) Decision {
		t.Helper()
		r := viewer(ch, ip, "TV")
		r.Memo = &m
		return a.Authorize(r, q(tok), testNow.Add(at))
	}
	if d := ask("a001", clientIP, 0); !d.Allowed() || d.Cached {
		t.Fatalf("first request: %+v", d)
	}
	a.wait()
	if d := ask("a001", clientIP, time.Second); !d.Cached {
		t.Fatalf("second request: %+v", d)
	}
	if s := m.find(a, []byte(tok), []byte("a001"), clientIP); s == nil {
		t.Fatal("a cache hit did not go into the memo")
	}
	hits := m.hits
	if d := ask("a001", clientIP, 2*time.Second); !d.Cached || !d.Allowed() {
		t.Fatalf("memo hit: %+v", d)
	}
	if m.hits != hits+1 {
		t.Fatalf("the third request did not come through the memo (hits %d, then %d)", hits, m.hits)
	}

	// A ban of the token and a kick of the session refuse the very next request the memo answers.
	b, err := a.Ban(BanRequest{Token: tok}, testNow.Add(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if d := ask("a001", clientIP, 3*time.Second); d.Status != http.StatusForbidden || !strings.Contains(d.Reason, "banned") {
		t.Fatalf("after the ban: %+v", d)
	}
	a.Unban(b.ID)
	if d := ask("a001", clientIP, 4*time.Second); !d.Allowed() {
		t.Fatalf("after the unban: %+v", d)
	}
	ss := a.Sessions(SessionFilter{Channel: "a001"})
	if len(ss) != 1 {
		t.Fatalf("sessions %+v", ss)
	}
	if _, err := a.Kick(ss[0].ID, testNow.Add(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if d := ask("a001", clientIP, 5*time.Second); d.Status != http.StatusForbidden {
		t.Fatalf("after the kick: %+v", d)
	}

	// Another address and another channel are decided for themselves: the token is bound to clientIP.
	if d := ask("a002", clientIP, 6*time.Second); !d.Allowed() || d.Cached {
		t.Fatalf("another channel: %+v", d)
	}
	a.wait()
	if d := ask("a002", clientIP, 6*time.Second); !d.Cached || m.slots[0].e.ch != "a002" {
		t.Fatalf("another channel, again: %+v", d)
	}
	if d := ask("a002", otherIP, 7*time.Second); d.Allowed() {
		t.Fatalf("another address got the bound token's decision: %+v", d)
	}
	if d := ask("a003", clientIP, 8*time.Second); d.Allowed() {
		t.Fatalf("a channel the token does not name: %+v", d)
	}

	// Past the token's end the memo's entry is not served: the token is expired.
	if d := ask("a002", clientIP, 9*time.Second); !d.Cached {
		t.Fatalf("a002 before expiry: %+v", d)
	}
	if d := ask("a002", clientIP, 2*time.Hour); d.Status != http.StatusGone {
		t.Fatalf("after expiry: %+v", d)
	}
}

// After a reload, a memo filled by the previous Authorizer is not used: the new config decides.
func TestMemoDoesNotOutliveAReload(t *testing.T) {
	cfg := hsConfig()
	r := newReloader(t, cfg)
	tok := mintHS(t, []string{"a001"}, time.Hour)
	var m Memo
	ask := func() Decision {
		t.Helper()
		rq := req("a001", clientIP)
		rq.Memo = &m
		d := r.cur.Authorize(rq, q(tok), testNow)
		r.cur.cache.c.Wait()
		return d
	}
	ask()
	if d := ask(); !d.Cached {
		t.Fatalf("before the reload: %+v", d)
	}
	if m.slots[0].e == nil {
		t.Fatal("memo empty")
	}
	off := hsConfig()
	off.JWT = jwtConfig("another-secret-entirely-0123456789abcdef")
	r.reload(off)
	if d := ask(); d.Allowed() {
		t.Fatalf("a JWT of the removed key was let in through the memo: %+v", d)
	}
}

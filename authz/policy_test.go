package authz

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hlsedge/hlsedge/authz/token"
)

func TestRulesInFlussonicOrder(t *testing.T) {
	f := false
	cfg := hsConfig()
	cfg.Groups = []GroupConfig{{Name: "g", Rules: RulesConfig{
		AllowTokens:       []string{"probe-token-0123456789"},
		DenyTokens:        []string{"leaked-token-0123456789"},
		AllowIPs:          []string{"192.0.2.0/24"},
		DenyIPs:           []string{"198.51.100.9", "2001:db8::/32"},
		AllowUserAgents:   []string{"Monitor/*"},
		DenyUserAgents:    []string{"*restream*", "Lavf/?*"},
		Domains:           []string{"tv.example.com", "*.example.net"},
		AllowEmptyReferer: &f,
	}}}
	a := newTestAuthz(t, cfg, nil)
	good := mintHS(t, []string{"a001"}, time.Hour)
	f2 := func(name, tok, ip, ua, referer, origin string, status int, reason string) {
		t.Helper()
		r := req("a001", netip.MustParseAddr(ip))
		r.UserAgent, r.Referer, r.Origin = []byte(ua), []byte(referer), []byte(origin)
		d := a.Authorize(r, q(tok), testNow)
		if d.Status != status || !strings.Contains(d.Reason, reason) {
			t.Errorf("%s: %d %q, want %d %q", name, d.Status, d.Reason, status, reason)
		}
	}
	page := "https://tv.example.com/watch"
	f2("valid token, right page", good, "203.0.113.7", "VLC", page, "", 200, "ok")
	f2("allow token skips verification", "probe-token-0123456789", "203.0.113.7", "VLC", "", "", 200, "token rule")
	f2("deny token before the ip allow", "leaked-token-0123456789", "192.0.2.5", "VLC", page, "", 403, "token refused")
	f2("allow ip without a token", "", "192.0.2.5", "x", "", "", 200, "ip rule")
	f2("deny ip", good, "198.51.100.9", "VLC", page, "", 403, "address refused")
	f2("deny ipv6 cidr", good, "2001:db8::1", "VLC", page, "", 403, "address refused")
	f2("allow ua", "", "203.0.113.7", "Monitor/2.0", "", "", 200, "user agent rule")
	f2("deny ua glob", good, "203.0.113.7", "my restream bot", page, "", 403, "user agent refused")
	f2("deny ua ?", good, "203.0.113.7", "Lavf/58", page, "", 403, "user agent refused")
	f2("domain glob, mixed case, port", good, "203.0.113.7", "VLC", "https://Player.EXAMPLE.net:8443/x?y", "", 200, "ok")
	f2("origin wins over referer", good, "203.0.113.7", "VLC", "https://evil.example.org/", "https://tv.example.com", 200, "ok")
	f2("wrong referer", good, "203.0.113.7", "VLC", "https://evil.example.org/tv.example.com", "", 403, ErrDomain.Error())
	f2("suffix trick", good, "203.0.113.7", "VLC", "https://tv.example.com.evil.org/", "", 403, ErrDomain.Error())
	f2("userinfo trick", good, "203.0.113.7", "VLC", "https://tv.example.com@evil.org/", "", 403, ErrDomain.Error())
	f2("not a url", good, "203.0.113.7", "VLC", "tv.example.com", "", 403, ErrDomain.Error())
	f2("empty referer refused by option", good, "203.0.113.7", "VLC", "", "", 403, ErrNoReferer.Error())
	f2("no token", "", "203.0.113.7", "VLC", page, "", 401, "no token")

	// allow_empty_referer defaults to true: set-top boxes send no referer.
	cfg.Groups[0].Rules.AllowEmptyReferer = nil
	b := newTestAuthz(t, cfg, nil)
	if d := b.Authorize(req("a001", clientIP), q(good), testNow); !d.Allowed() {
		t.Fatalf("empty referer with the default: %+v", d)
	}
	// The group default: a domain-locked channel without tokens.
	c := newTestAuthz(t, Config{Groups: []GroupConfig{{Name: "open", Default: PolicyAllow, Rules: RulesConfig{Domains: []string{"tv.example.com"}}}}}, nil)
	r := req("a001", clientIP)
	r.Referer = []byte(page)
	if d := c.Authorize(r, q(""), testNow); !d.Allowed() || d.Reason != "allowed by group default" {
		t.Fatalf("default allow: %+v", d)
	}
	r.Referer = []byte("https://evil.example.org/")
	if d := c.Authorize(r, q(""), testNow); d.Status != 403 {
		t.Fatalf("default allow still obeys the domain lock: %+v", d)
	}
}

func TestRuleAllowedChildrenCarryTheToken(t *testing.T) {
	cfg := hsConfig()
	cfg.Groups = []GroupConfig{{Rules: RulesConfig{AllowTokens: []string{"probe token/1"}}}}
	a := newTestAuthz(t, cfg, nil)
	r := req("a001", clientIP)
	d := a.Authorize(r, q("probe token/1"), testNow)
	if got := string(a.AppendChildQuery(nil, r, &d, testNow)); got != "token=probe%20token%2F1" {
		t.Fatalf("child query %q", got)
	}
}

func sessionConfig(limit int, soft bool) Config {
	cfg := hsConfig()
	cfg.Sessions = SessionsConfig{MaxPerUser: limit, Soft: soft}
	return cfg
}

func viewer(ch string, ip netip.Addr, ua string) *Request {
	r := req(ch, ip)
	r.UserAgent = []byte(ua)
	return r
}

func TestSessionLimitNewestRefused(t *testing.T) {
	a := newTestAuthz(t, sessionConfig(1, false), nil)
	tok := q(mintHS(t, []string{"*"}, time.Hour))
	tv := viewer("a001", clientIP, "TV")
	if d := a.Authorize(tv, tok, testNow); !d.Allowed() || d.Owner != "user-42" {
		t.Fatalf("first device: %+v", d)
	}
	phone := viewer("a001", otherIP, "Phone")
	d := a.Authorize(phone, tok, testNow.Add(time.Second))
	if d.Status != http.StatusForbidden || !strings.HasSuffix(d.Reason, ErrSessionLimit.Error()) {
		t.Fatalf("second device over the limit: %d %q", d.Status, d.Reason)
	}
	// The first keeps watching; its segments are not refused.
	a.wait()
	for i := range 3 {
		if d := a.Authorize(tv, tok, testNow.Add(time.Duration(i+2)*time.Second)); !d.Allowed() {
			t.Fatalf("first device segment %d: %+v", i, d)
		}
	}
	// A channel switch on the same device is a second session unless soft.
	if d := a.Authorize(viewer("a002", clientIP, "TV"), tok, testNow.Add(5*time.Second)); d.Status != http.StatusForbidden {
		t.Fatalf("channel switch without soft mode: %+v", d)
	}
	ss := a.Sessions(SessionFilter{User: "user-42"})
	if len(ss) != 1 || ss[0].Requests != 4 || ss[0].Channel != "a001" {
		t.Fatalf("sessions %+v", ss)
	}
	// Once the first goes idle, the second may start.
	a.Sweep(testNow.Add(40 * time.Second))
	if d := a.Authorize(phone, tok, testNow.Add(41*time.Second)); !d.Allowed() {
		t.Fatalf("after the first closed: %+v", d)
	}
	if st := a.Stats().Sessions; st.Opened != 2 || st.Closed != 1 || st.Refused != 2 || st.Open != 1 {
		t.Fatalf("session stats %+v", st)
	}
}

func TestSessionSoftModeChannelSwitch(t *testing.T) {
	a := newTestAuthz(t, sessionConfig(1, true), nil)
	tok := q(mintHS(t, []string{"*"}, time.Hour))
	for i, ch := range []string{"a001", "a002", "a003"} {
		if d := a.Authorize(viewer(ch, clientIP, "TV"), tok, testNow.Add(time.Duration(i)*time.Second)); !d.Allowed() {
			t.Fatalf("soft mode switch to %s: %+v", ch, d)
		}
	}
	ss := a.Sessions(SessionFilter{})
	if len(ss) != 1 || ss[0].Channel != "a003" || ss[0].Requests != 3 {
		t.Fatalf("one session following the viewer: %+v", ss)
	}
	if d := a.Authorize(viewer("a001", otherIP, "Phone"), tok, testNow); d.Status != http.StatusForbidden {
		t.Fatalf("another device is still over the limit in soft mode: %+v", d)
	}
	// The JWT claim overrides the config limit.
	tok2 := q(mintHS(t, []string{"*"}, time.Hour, "sub", "family", "max_sessions", 2))
	for i, ip := range []netip.Addr{clientIP, otherIP} {
		if d := a.Authorize(viewer("a001", ip, "TV"), tok2, testNow); !d.Allowed() {
			t.Fatalf("claim max_sessions 2, device %d: %+v", i, d)
		}
	}
}

func TestEdgeChildrenStayInTheParentSession(t *testing.T) {
	a := newTestAuthz(t, sessionConfig(1, false), nil)
	// A securetoken has no user: the session belongs to the token's fingerprint, which the edge child carries.
	now := testNow.Unix()
	st := token.MintSecureToken(stSecret, "bbc", clientIP.String(), now-300, now+3600, token.NewSalt())
	r := viewer("bbc", clientIP, "TV")
	d := a.Authorize(r, q(st), testNow)
	if !d.Allowed() || !strings.HasPrefix(d.Owner, "~") || d.UserID != "" {
		t.Fatalf("parent: %+v", d)
	}
	child := strings.TrimPrefix(string(a.AppendChildQuery(nil, r, &d, testNow)), "token=")
	cd := a.Authorize(viewer("bbc", clientIP, "TV"), q(child), testNow.Add(time.Second))
	if !cd.Allowed() || cd.Owner != d.Owner || cd.SessionID != d.SessionID || cd.UserID != "" {
		t.Fatalf("child %+v vs parent %+v", cd, d)
	}
	if ss := a.Sessions(SessionFilter{}); len(ss) != 1 || ss[0].Requests != 2 || ss[0].Token != d.Owner {
		t.Fatalf("sessions %+v", ss)
	}
}

func TestKickAndBansApplyToTheNextRequest(t *testing.T) {
	a := newTestAuthz(t, sessionConfig(0, false), nil)
	tok := mintHS(t, []string{"*"}, time.Hour)
	tv := viewer("a001", clientIP, "TV")
	d := a.Authorize(tv, q(tok), testNow)
	child := strings.TrimPrefix(string(a.AppendChildQuery(nil, tv, &d, testNow)), "token=")
	a.wait()
	seg := func(at time.Duration) Decision {
		return a.Authorize(viewer("a001", clientIP, "TV"), q(child), testNow.Add(at))
	}
	if d := seg(time.Second); !d.Allowed() {
		t.Fatalf("segment: %+v", d)
	}
	a.wait()
	if d := seg(2 * time.Second); !d.Cached {
		t.Fatalf("segment decision must be cached before the kick: %+v", d)
	}
	ss := a.Sessions(SessionFilter{Channel: "a001"})
	if len(ss) != 1 {
		t.Fatalf("sessions %+v", ss)
	}
	if _, err := a.Kick(ss[0].ID, testNow.Add(3*time.Second)); err != nil {
		t.Fatal(err)
	}
	if d := seg(3 * time.Second); d.Status != http.StatusForbidden || d.Reason != "edge: "+ErrKicked.Error() {
		t.Fatalf("segment after kick: %+v", d)
	}
	if d := a.Authorize(viewer("a001", otherIP, "TV"), q(tok), testNow.Add(4*time.Second)); d.Status != http.StatusForbidden {
		t.Fatalf("the kicked token on that channel from elsewhere: %+v", d)
	}
	if d := a.Authorize(viewer("a002", clientIP, "TV"), q(tok), testNow.Add(4*time.Second)); !d.Allowed() {
		t.Fatalf("the kicked token on another channel: %+v", d)
	}
	if _, err := a.Kick(ss[0].ID, testNow); err != ErrNoSession {
		t.Fatalf("second kick: %v", err)
	}

	// Bans: a cached allow is refused at once, and served again once the ban is lifted.
	other := viewer("a003", otherIP, "Phone")
	if d := a.Authorize(other, q(tok), testNow); !d.Allowed() {
		t.Fatal(d.Reason)
	}
	a.wait()
	f := func(name string, r BanRequest) {
		t.Helper()
		b, err := a.Ban(r, testNow)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if d := a.Authorize(other, q(tok), testNow.Add(time.Second)); d.Status != http.StatusForbidden || !strings.Contains(d.Reason, "banned") {
			t.Fatalf("%s: %+v", name, d)
		}
		if !a.Unban(b.ID) {
			t.Fatalf("%s: unban", name)
		}
		if d := a.Authorize(other, q(tok), testNow.Add(2*time.Second)); !d.Allowed() {
			t.Fatalf("%s lifted: %+v", name, d)
		}
	}
	f("cidr", BanRequest{IP: "198.51.100.0/24"})
	f("ip", BanRequest{IP: otherIP.String()})
	f("user", BanRequest{User: "user-42"})
	f("token", BanRequest{Token: tok})
	f("fingerprint", BanRequest{Token: token.FingerprintOf([]byte(tok)).String()})

	// A ban with a ttl runs out by itself.
	if _, err := a.Ban(BanRequest{IP: otherIP.String(), TTL: time.Minute}, testNow); err != nil {
		t.Fatal(err)
	}
	if d := a.Authorize(other, q(tok), testNow.Add(time.Second)); d.Allowed() {
		t.Fatal("ttl ban not applied")
	}
	a.Sweep(testNow.Add(2 * time.Minute))
	if d := a.Authorize(other, q(tok), testNow.Add(2*time.Minute)); !d.Allowed() {
		t.Fatalf("after the ttl: %+v", d)
	}
	for _, bad := range []BanRequest{{}, {IP: "x"}, {IP: "1.2.3.4", User: "u"}, {User: "u", TTL: -1}} {
		if _, err := a.Ban(bad, testNow); err == nil {
			t.Errorf("ban %+v accepted", bad)
		}
	}
}

func TestBanListBounded(t *testing.T) {
	cfg := hsConfig()
	cfg.Bans.MaxEntries = 3
	a := newTestAuthz(t, cfg, nil)
	for i := range 3 {
		if _, err := a.Ban(BanRequest{User: "u" + string(rune('a'+i))}, testNow); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Ban(BanRequest{User: "overflow"}, testNow); err != ErrBanListFull {
		t.Fatalf("want ErrBanListFull, got %v", err)
	}
}

func TestSessionTableBounded(t *testing.T) {
	cfg := sessionConfig(0, false)
	cfg.Sessions.MaxEntries = 2
	a := newTestAuthz(t, cfg, nil)
	tok := q(mintHS(t, []string{"*"}, time.Hour))
	for i := range 4 {
		if d := a.Authorize(viewer("a001", clientIP, "ua"+string(rune('0'+i))), tok, testNow); !d.Allowed() {
			t.Fatalf("untracked viewers are served when no limit applies: %+v", d)
		}
	}
	st := a.Stats().Sessions
	if st.Open != 2 || st.Untracked != 2 {
		t.Fatalf("stats %+v", st)
	}
	// With a limit that cannot be kept, the viewer is refused rather than served unlimited.
	cfg.Sessions.MaxPerUser = 5
	b := newTestAuthz(t, cfg, nil)
	for i := range 3 {
		d := b.Authorize(viewer("a001", clientIP, "ua"+string(rune('0'+i))), tok, testNow)
		if i < 2 && !d.Allowed() || i == 2 && !strings.HasSuffix(d.Reason, ErrSessionsFull.Error()) {
			t.Fatalf("viewer %d: %+v", i, d)
		}
	}
}

func TestSessionEventsWebhook(t *testing.T) {
	var mu sync.Mutex
	var got []SessionEvent
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var evs []SessionEvent
		if err := json.NewDecoder(r.Body).Decode(&evs); err != nil {
			w.WriteHeader(400)
			return
		}
		mu.Lock()
		got = append(got, evs...)
		mu.Unlock()
	}))
	defer hook.Close()
	cfg := sessionConfig(0, false)
	cfg.Sessions.Webhook = WebhookConfig{URL: hook.URL, BatchSize: 2}
	a, err := New(cfg, nil, WithoutJanitor())
	if err != nil {
		t.Fatal(err)
	}
	tok := mintHS(t, []string{"*"}, time.Hour)
	d := a.Authorize(viewer("a001", clientIP, "TV"), q(tok), testNow)
	d.AddBytes(1000)
	a.Sweep(testNow.Add(time.Minute))
	a.Close() // flushes the queue
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || got[0].Event != "open" || got[1].Event != "close" || got[1].Reason != "idle" ||
		got[1].Bytes != 1000 || got[1].User != "user-42" || got[1].Channel != "a001" || got[1].ID != got[0].ID {
		t.Fatalf("events %+v", got)
	}
	for _, e := range got {
		if strings.Contains(e.UserAgent+e.ID+e.Token, tok) {
			t.Fatal("token in an event")
		}
	}
}

func TestWebhookQueueBoundedDropsCounted(t *testing.T) {
	block := make(chan struct{})
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer hook.Close()
	// The post never times out while the test sends: a loaded machine slow to run the loop below must not
	// free the sender for a second event.
	w := newWebhook(WebhookConfig{URL: hook.URL, Timeout: time.Minute, QueueSize: 2, BatchSize: 1}, discardLog())
	defer w.close()
	// Deferred after w.close, so it runs first: the receiver answers before close flushes what is queued.
	defer close(block)
	// The sender holds at most one event in a post the receiver never answers, and the queue two.
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		for range 20 {
			w.send(SessionEvent{Event: "open"})
		}
	}()
	select {
	case <-sent:
	case <-time.After(30 * time.Second): // a bound on a hang, not a measure
		t.Fatal("send blocked on a full queue")
	}
	if d := w.dropped.Load(); d < 17 {
		t.Fatalf("dropped %d of 20 with a queue of 2 and a stuck receiver", d)
	}
}

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// FuzzRefererHost: the domain lock's parser never panics, and a host it returns is lower case, free of URL
// delimiters, and present in the input.
func FuzzRefererHost(f *testing.F) {
	for _, s := range []string{"https://tv.example.com/x", "http://u:p@Host.EXAMPLE:8080/?a#b", "https://[::1]:443/", "a://b", "://x", "https://", "https://a.b.", "tv.example.com"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var buf [253]byte
		h, ok := refererHost(buf[:0], []byte(s))
		if !ok {
			return
		}
		if len(h) == 0 || strings.ContainsAny(string(h), "/?#@ABCDEFGHIJKLMNOPQRSTUVWXYZ") {
			t.Fatalf("%q -> %q", s, h)
		}
		lower := []byte(s)
		for i, c := range lower {
			if c >= 'A' && c <= 'Z' {
				lower[i] = c + 'a' - 'A'
			}
		}
		if !strings.Contains(string(lower), string(h)) {
			t.Fatalf("%q -> %q not in the input", s, h)
		}
	})
}

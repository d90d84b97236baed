package signaling

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/golang-jwt/jwt/v5"
	"github.com/valyala/fasthttp"
)

var (
	mod   = user{name: "Moderator", email: "mod@example.com", id: "u-mod", moderator: true}
	alice = user{name: "Alice", email: "alice@example.com", id: "u-alice"}
	bob   = user{name: "Bob", email: "bob@example.com", id: "u-bob"}
	carol = user{name: "Carol", email: "carol@example.com", id: "u-carol"}
	dave  = user{name: "Dave", email: "dave@example.com", id: "u-dave"}
)

func participants(e event) []string {
	var d struct {
		Participants []Participant `json:"participants"`
	}
	_ = json.Unmarshal(e.Data, &d)
	out := []string{}
	for _, p := range d.Participants {
		out = append(out, p.Email)
	}
	return out
}

// barrier makes sure every event sent to c before now has arrived: the moderator chats, and each socket's
// events are delivered in order.
func barrier(t *testing.T, from *client, text string, cs ...*client) {
	t.Helper()
	from.send("chat_message", map[string]any{"text": text})
	for _, c := range append(cs, from) {
		for {
			e := c.expect("chat_message")
			if e.field("text") == text {
				break
			}
		}
	}
}

func TestWaitingRoomModeratorFlow(t *testing.T) {
	f := func(name string, detach bool) {
		t.Run(name, func(t *testing.T) { waitingRoomModeratorFlow(t, startServerMode(t, baseConfig(), detach)) })
	}
	f("detached", true)
	f("on the hijack goroutine", false)
}

func waitingRoomModeratorFlow(t *testing.T, ts *testServer) {
	const room, cid = "Weekly sync", "c-1"

	m := ts.connect(mod, room, cid)
	if got := participants(m.expect("waiting_room_list")); len(got) != 0 {
		t.Fatalf("initial list = %v, want empty", got)
	}
	ps := map[string]*client{}
	for _, u := range []user{alice, bob, carol, dave} {
		c := ts.connect(u, room, cid)
		c.send("join_waiting_room", map[string]any{"room_name": room, "email": u.email})
		c.expect("join_waiting_room_response")
		if j := m.expect("waiting_participant_joined"); !strings.Contains(string(j.Data), u.email) {
			t.Fatalf("moderator told %s, want %s", j.Data, u.email)
		}
		ps[u.email] = c
	}
	// A second moderator arriving later gets the whole list, in join order.
	m2 := ts.connect(user{name: "Mod2", email: "mod2@example.com", id: "u-mod2", moderator: true}, room, cid)
	if got := strings.Join(participants(m2.expect("waiting_room_list")), ","); got != "alice@example.com,bob@example.com,carol@example.com,dave@example.com" {
		t.Fatalf("late moderator list = %s", got)
	}

	// Admit one: only Alice gets the grant; the moderator gets the response, never the grant (the seed's bug).
	m.send("accept_participant", map[string]any{"room_name": room, "email": "ALICE@example.com"})
	if r := m.expect("accept_participant_response"); r.field("success") != true {
		t.Fatalf("accept response %s", r.Data)
	}
	if l := m.expect("waiting_participant_left"); l.field("email") != alice.email || l.field("reason") != "admitted" {
		t.Fatalf("left = %s", l.Data)
	}
	if g := ps[alice.email].expect("join_room_" + room); g.field("can_join") != true {
		t.Fatalf("alice grant %s", g.Data)
	}
	barrier(t, m, "after admit one", ps[bob.email], ps[carol.email], ps[dave.email], ps[alice.email], m2)
	for _, c := range []*client{ps[bob.email], ps[carol.email], ps[dave.email], m, m2} {
		if c.saw("join_room_" + room) {
			t.Fatalf("a grant reached a socket other than the admitted participant's: %v", c.names())
		}
	}

	// Reject Bob with a reason.
	m.send("reject_participant", map[string]any{"email": bob.email, "reason": "not on the list"})
	if r := m.expect("reject_participant_response"); r.field("success") != true {
		t.Fatalf("reject response %s", r.Data)
	}
	if g := ps[bob.email].expect("join_room_" + room); g.field("can_join") != false || g.field("reason") != "not on the list" {
		t.Fatalf("bob got %s", g.Data)
	}
	if l := m.expect("waiting_participant_left"); l.field("email") != bob.email || l.field("reason") != "rejected" {
		t.Fatalf("left = %s", l.Data)
	}
	// A rejected participant cannot queue again.
	ps[bob.email].send("join_waiting_room", nil)
	ps[bob.email].expect("error")

	// Admit everyone left: Carol and Dave.
	m.send("accept_participant", map[string]any{"accept_everyone": true})
	if r := m.expect("accept_participant_response"); r.field("success") != true || r.field("message") != "admitted 2 participants" {
		t.Fatalf("accept all response %s", r.Data)
	}
	for _, u := range []user{carol, dave} {
		if g := ps[u.email].expect("join_room_" + room); g.field("can_join") != true {
			t.Fatalf("%s grant %s", u.email, g.Data)
		}
	}
	barrier(t, m, "after admit all", ps[carol.email], ps[dave.email], m2)
	if m.saw("join_room_"+room) || m2.saw("join_room_"+room) {
		t.Fatalf("moderator received a grant: %v", m.names())
	}
	// Admitting again finds nobody.
	m.send("accept_participant", map[string]any{"email": alice.email})
	if r := m.expect("accept_participant_response"); r.field("success") != false {
		t.Fatalf("second accept %s", r.Data)
	}
}

func TestChatReachesWaitingRoomAndModeratorWithTokenIdentity(t *testing.T) {
	ts := startServer(t, baseConfig())
	const room, cid = "chat room", "c-2"
	m := ts.connect(mod, room, cid)
	a := ts.connect(alice, room, cid)
	b := ts.connect(bob, room, cid)
	for _, c := range []*client{a, b} {
		// The payload's email is a lie; the token's identity wins.
		c.send("join_waiting_room", map[string]any{"email": "ceo@example.com"})
		c.expect("join_waiting_room_response")
	}
	a.send("chat_message", map[string]any{"text": "  hello from alice  ", "room_name": room})
	for _, c := range []*client{m, a, b} {
		e := c.expect("chat_message")
		var msg ChatMessage
		if err := json.Unmarshal(e.Data, &msg); err != nil {
			t.Fatal(err)
		}
		if msg.Text != "hello from alice" || msg.From.Email != alice.email || msg.From.Name != "Alice" || msg.From.Moderator || msg.TS == 0 || msg.From.Avatar == "" {
			t.Fatalf("chat = %+v", msg)
		}
	}
	m.send("chat_message", map[string]any{"text": "welcome"})
	for _, c := range []*client{m, a, b} {
		if e := c.expect("chat_message"); e.field("from").(map[string]any)["moderator"] != true {
			t.Fatalf("moderator chat %s", e.Data)
		}
	}
	// Someone not in the waiting room can neither send nor receive.
	c := ts.connect(carol, room, cid)
	c.send("chat_message", map[string]any{"text": "sneaky"})
	if e := c.expect("error"); e.field("message") != ErrNotJoined.Error() {
		t.Fatalf("error %s", e.Data)
	}
	// A late joiner gets the history, oldest first.
	c.send("join_waiting_room", nil)
	h := c.expect("chat_history")
	var hist struct{ Messages []ChatMessage }
	_ = json.Unmarshal(h.Data, &hist)
	if len(hist.Messages) != 2 || hist.Messages[0].Text != "hello from alice" || hist.Messages[1].Text != "welcome" {
		t.Fatalf("history %s", h.Data)
	}
}

func TestNonModeratorAcceptIsRefused(t *testing.T) {
	ts := startServer(t, baseConfig())
	const room, cid = "r", "c-3"
	a := ts.connect(alice, room, cid)
	b := ts.connect(bob, room, cid)
	b.send("join_waiting_room", nil)
	b.expect("join_waiting_room_response")
	a.send("accept_participant", map[string]any{"accept_everyone": true})
	if r := a.expect("accept_participant_response"); r.field("success") != false || r.field("message") != ErrNotModerator.Error() {
		t.Fatalf("response %s", r.Data)
	}
	a.send("reject_participant", map[string]any{"email": bob.email})
	if r := a.expect("reject_participant_response"); r.field("success") != false {
		t.Fatalf("response %s", r.Data)
	}
	// Bob is still waiting: a moderator arriving now sees him.
	m := ts.connect(mod, room, cid)
	if got := participants(m.expect("waiting_room_list")); len(got) != 1 || got[0] != bob.email {
		t.Fatalf("list %v", got)
	}
	b.drain()
	if b.saw("join_room_" + room) {
		t.Fatal("bob was admitted by a non-moderator")
	}
}

func TestPayloadNamingAnotherRoomIsRefused(t *testing.T) {
	ts := startServer(t, baseConfig())
	const room, cid = "mine", "c-4"
	m := ts.connect(mod, room, cid)
	a := ts.connect(alice, room, cid)
	a.send("join_waiting_room", map[string]any{"room_name": "theirs"})
	if e := a.expect("error"); e.field("message") != errWrongRoomName.Error() || e.field("event") != "join_waiting_room" {
		t.Fatalf("error %s", e.Data)
	}
	a.send("chat_message", map[string]any{"room_name": "theirs", "text": "x"})
	a.expect("error")
	m.send("accept_participant", map[string]any{"room_name": "theirs", "accept_everyone": true})
	if r := m.expect("accept_participant_response"); r.field("success") != false {
		t.Fatalf("accept for another room %s", r.Data)
	}
	// The socket stays usable.
	a.send("join_waiting_room", map[string]any{"room_name": room})
	a.expect("join_waiting_room_response")
}

func TestBadInputKeepsConnection(t *testing.T) {
	ts := startServer(t, baseConfig())
	a := ts.connect(alice, "r", "c")
	for _, raw := range []string{
		`not json`,
		`{"event":"no_such_event","data":{}}`,
		`{"event":"chat_message","data":{"text":42}}`,
		`{"event":"chat_message","data":"text"}`,
		`{"data":{}}`,
		`[1,2,3]`,
	} {
		a.sendRaw(raw)
		a.expect("error")
	}
	a.send("chat_message", map[string]any{"text": strings.Repeat("x", 2001)})
	if e := a.expect("error"); e.field("message") != errLongChat.Error() {
		t.Fatalf("long chat %s", e.Data)
	}
	_ = a.ws.WriteMessage(websocket.BinaryMessage, []byte{1, 2})
	a.expect("error")
	a.send("join_waiting_room", nil)
	a.expect("join_waiting_room_response")
}

func TestCookieSelectionWithTwoConferences(t *testing.T) {
	ts := startServer(t, baseConfig())
	tokA := mint(t, alice, "room A", "cA")
	tokB := mint(t, alice, "room B", "cB")
	both := []dialOpt{withCookie("socket_io_token_cA", tokA), withCookie("socket_io_token_cB", tokB), withCookie("other", "x")}

	// Without registry entries, the cookie whose token names the room is used.
	for _, tc := range []struct{ room, cid string }{{"room A", "cA"}, {"room B", "cB"}} {
		c, st, body := ts.dial(tc.room, both...)
		if c == nil {
			t.Fatalf("%s: %d %s", tc.room, st, body)
		}
		if e := c.expect("connected"); e.field("content_id") != tc.cid || e.field("room") != tc.room {
			t.Fatalf("%s connected %s", tc.room, e.Data)
		}
	}
	// With a registry entry, the cookie is picked by the running content_id.
	postConference(t, ts, `{"room":"room B","content_id":"cB","waiting_room":true}`, 200)
	c, st, body := ts.dial("room B", both...)
	if c == nil {
		t.Fatalf("registered: %d %s", st, body)
	}
	c.expect("connected")
	// A new run of room B: the old run's cookie no longer opens it.
	postConference(t, ts, `{"room":"room B","content_id":"cB2"}`, 200)
	if _, st, body := ts.dial("room B", both...); st != http.StatusUnauthorized || !strings.Contains(body, ErrNoToken.Error()) {
		t.Fatalf("new run with old cookies: %d %s", st, body)
	}
	if e := c.waitClosed(); e == nil || e.Code != CloseConferenceEnded {
		t.Fatalf("old run's socket closed with %v", e)
	}
	// A token for run cA presented under run cB2's cookie name is refused.
	if _, st, body := ts.dial("room B", withCookie("socket_io_token_cB2", tokB)); st != http.StatusForbidden || !strings.Contains(body, ErrWrongConference.Error()) {
		t.Fatalf("old token under new name: %d %s", st, body)
	}
	// A cookie name that does not match its token's content_id is refused without a registry entry too.
	if _, st, body := ts.dial("room A", withCookie("socket_io_token_cX", tokA)); st != http.StatusForbidden {
		t.Fatalf("renamed cookie: %d %s", st, body)
	}
	// Non-browser clients: Bearer and the X-Room-Name header.
	c2, st, body := ts.dial("", withRoomHeader("room A"), withBearer(tokA))
	if c2 == nil {
		t.Fatalf("bearer: %d %s", st, body)
	}
	c2.expect("connected")
}

func postConference(t *testing.T, ts *testServer, body string, want int) []byte {
	t.Helper()
	return conferencesAPI(t, ts, "POST", body, want)
}

// conferencesAPI calls the admin API and checks the status.
func conferencesAPI(t *testing.T, ts *testServer, method, body string, want int) []byte {
	t.Helper()
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + ts.addr + "/api/conferences")
	req.Header.SetMethod(method)
	req.SetBodyString(body)
	if err := fasthttp.DoTimeout(req, resp, waitFor); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode() != want {
		t.Fatalf("%s %s: %d %s", method, body, resp.StatusCode(), resp.Body())
	}
	return append([]byte(nil), resp.Body()...)
}

func TestRefusedUpgrades(t *testing.T) {
	ts := startServer(t, baseConfig())
	const room, cid = "r", "c"
	cookie := func(c jwt.MapClaims) dialOpt { return withCookie("socket_io_token_"+cid, sign(t, c)) }
	good := func() jwt.MapClaims { return tokenClaimsFor(alice, room, cid, time.Now().Add(time.Hour)) }
	with := func(k string, v any) jwt.MapClaims { c := good(); c[k] = v; return c }
	without := func(k string) jwt.MapClaims { c := good(); delete(c, k); return c }
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, good()).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	hs512, _ := jwt.NewWithClaims(jwt.SigningMethodHS512, good()).SignedString([]byte(testSecret))
	forged, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, good()).SignedString([]byte("another-secret-another-secret-123456"))

	f := func(name string, want int, reason error, opts ...dialOpt) {
		t.Helper()
		c, st, body := ts.dial(room, opts...)
		if c != nil {
			t.Fatalf("%s: upgraded, want %d", name, want)
		}
		if st != want || !strings.Contains(body, reason.Error()) {
			t.Fatalf("%s: %d %q, want %d %q", name, st, body, want, reason)
		}
	}
	f("wrong origin", 403, ErrOrigin, withOrigin("https://evil.example.net"), cookie(good()))
	f("origin null", 403, ErrOrigin, withOrigin("null"), cookie(good()))
	f("origin wildcard needs a label", 403, ErrOrigin, withOrigin("https://example.org"), cookie(good()))
	f("expired", 401, ErrExpired, cookie(with("exp", ts.clock.Now().Add(-time.Minute).Unix())))
	f("no exp", 401, ErrNoExpiry, cookie(without("exp")))
	f("wrong aud", 401, ErrAudience, cookie(with("aud", "api")))
	f("no aud", 401, ErrAudience, cookie(without("aud")))
	f("wrong iss", 401, ErrIssuer, cookie(with("iss", "someone")))
	f("alg none", 401, ErrAlgorithm, withCookie("socket_io_token_"+cid, none))
	f("alg not in allow-list", 401, ErrAlgorithm, withCookie("socket_io_token_"+cid, hs512))
	f("bad signature", 401, ErrSignature, withCookie("socket_io_token_"+cid, forged))
	f("garbage", 401, ErrMalformed, withCookie("socket_io_token_"+cid, "a.b.c"))
	f("no token", 401, ErrNoToken)
	f("no identity", 401, ErrNoIdentity, cookie(with("context", map[string]any{"user": map[string]any{"name": "x"}})))
	f("wrong room", 403, ErrWrongRoom, cookie(with("room", "other")))
	f("not bearer", 401, ErrMalformed, func(h http.Header, _ *string) { h.Set("Authorization", "Basic eDp5") })
	f("no room", 400, ErrNoRoom, func(_ http.Header, q *string) { *q = "" }, cookie(good()))
	f("control char in room", 400, ErrBadRoom, func(_ http.Header, q *string) { *q = "?room=a%01b" }, cookie(good()))

	postConference(t, ts, `{"room":"r","content_id":"c-run2"}`, 200)
	f("old run", 401, ErrNoToken, cookie(good()))
	f("old run by bearer", 403, ErrWrongConference, withBearer(sign(t, good())))

	// Allowed origins: exact and wildcard; no Origin for non-browser clients.
	tok := sign(t, tokenClaimsFor(alice, "r2", "c2", time.Now().Add(time.Hour)))
	for _, o := range []dialOpt{withOrigin(testOrigin), withOrigin("https://a.example.org"), func(h http.Header, _ *string) { h.Del("Origin") }} {
		c, st, body := ts.dial("r2", o, withCookie("socket_io_token_c2", tok))
		if c == nil {
			t.Fatalf("allowed origin refused: %d %s", st, body)
		}
		c.expect("connected")
		_ = c.ws.Close()
	}
	// Plain HTTP to the WebSocket path.
	code, body, err := fasthttp.Get(nil, "http://"+ts.addr+"/ws?room=r")
	if err != nil || code != fasthttp.StatusUpgradeRequired {
		t.Fatalf("plain GET: %d %s %v", code, body, err)
	}
}

func TestTokenExpiryThenRefreshWhileConnected(t *testing.T) {
	cfg := baseConfig()
	zero := time.Duration(0)
	cfg.JWT.Leeway = &zero
	cfg.TokenExpiryWarning = time.Hour // every short token is inside the warning window at once
	ts := startServer(t, cfg)
	const room, cid = "r", "c"
	// Times on the server's clock, which only the test moves: the refresh cannot lose a race with the expiry.
	short := func(u user, d time.Duration) string {
		return sign(t, tokenClaimsFor(u, room, cid, ts.clock.Now().Add(d)))
	}

	// Refreshed: the warning comes, the refresh is accepted, and the socket outlives the first token.
	a, st, body := ts.dial(room, withCookie("socket_io_token_"+cid, short(alice, 2*time.Second)))
	if a == nil {
		t.Fatalf("dial: %d %s", st, body)
	}
	a.expect("connected")
	if e := a.expect("token_expiring"); e.field("expires_at") == nil {
		t.Fatalf("token_expiring %s", e.Data)
	}
	a.send("refresh_token", map[string]any{"token": short(bob, time.Hour)})
	if r := a.expect("refresh_token_response"); r.field("success") != false {
		t.Fatalf("another user's token accepted: %s", r.Data)
	}
	a.send("refresh_token", map[string]any{"token": sign(t, tokenClaimsFor(alice, "other room", cid, ts.clock.Now().Add(time.Hour)))})
	if r := a.expect("refresh_token_response"); r.field("success") != false {
		t.Fatalf("another room's token accepted: %s", r.Data)
	}
	a.send("refresh_token", map[string]any{"token": short(alice, time.Hour)})
	if r := a.expect("refresh_token_response"); r.field("success") != true {
		t.Fatalf("refresh refused: %s", r.Data)
	}

	// Not refreshed: closed at expiry with a clear reason.
	b, st, body := ts.dial(room, withCookie("socket_io_token_"+cid, short(bob, 2*time.Second)))
	if b == nil {
		t.Fatalf("dial: %d %s", st, body)
	}
	b.expect("token_expiring")
	ts.clock.Advance(3 * time.Second) // past both first tokens' expiry
	if e := b.waitClosed(); e == nil || e.Code != CloseTokenExpired || e.Text != "token expired" {
		t.Fatalf("close = %v", e)
	}
	// The refreshed socket is still alive after the first token's expiry.
	a.send("join_waiting_room", nil)
	a.expect("join_waiting_room_response")
}

func TestRateLimitClosesAbuserAndOversizedFrame(t *testing.T) {
	cfg := baseConfig()
	cfg.MessageRate, cfg.MessageBurst, cfg.MaxStrikes = 1, 5, 3
	cfg.ReadLimit = 4096
	ts := startServer(t, cfg)
	a := ts.connect(alice, "r", "c")
	a.send("join_waiting_room", nil)
	a.expect("join_waiting_room_response")
	for i := 0; i < 30; i++ {
		if err := a.ws.WriteMessage(websocket.TextMessage, []byte(`{"event":"chat_message","data":{"text":"spam"}}`)); err != nil {
			break // the server may already have closed
		}
	}
	a.expect("error")
	if e := a.waitClosed(); e == nil || e.Code != websocket.ClosePolicyViolation || e.Text != "rate limit exceeded" {
		t.Fatalf("close = %v", e)
	}
	var errs int
	for _, e := range a.seen {
		if e.Event == "error" && e.field("message") == "rate limit exceeded" {
			errs++
		}
	}
	if errs == 0 {
		t.Fatal("no rate limit error event before the close")
	}

	b := ts.connect(bob, "r", "c")
	_ = b.ws.WriteMessage(websocket.TextMessage, []byte(`{"event":"chat_message","data":{"text":"`+strings.Repeat("x", 5000)+`"}}`))
	if e := b.waitClosed(); e == nil || e.Code != websocket.CloseMessageTooBig {
		t.Fatalf("oversized frame close = %v", e)
	}
}

// observedHub reports the sessions whose sockets the server saw go, so that a test knows the grace period runs.
type observedHub struct {
	Hub
	disconnected chan Session
}

func (h *observedHub) Disconnect(k ConfKey, s Session) {
	h.Hub.Disconnect(k, s)
	h.disconnected <- s
}

func (h *observedHub) awaitDisconnect(t *testing.T, u user) {
	t.Helper()
	for {
		select {
		case s := <-h.disconnected:
			if s.User.Email == u.email {
				return
			}
		case <-time.After(waitFor):
			t.Fatalf("the server did not notice %s's socket close within %v", u.email, waitFor)
		}
	}
}

func TestReconnectWithinGraceKeepsPlace(t *testing.T) {
	cfg := baseConfig()
	cfg.ReconnectGrace = time.Minute
	ts := startServer(t, cfg)
	const room, cid = "r", "c"
	m := ts.connect(mod, room, cid)
	m.expect("waiting_room_list")
	a := ts.connect(alice, room, cid)
	a.send("join_waiting_room", nil)
	a.expect("join_waiting_room_response")
	b := ts.connect(bob, room, cid)
	b.send("join_waiting_room", nil)
	b.expect("join_waiting_room_response")
	m.expect("waiting_participant_joined")
	m.expect("waiting_participant_joined")

	_ = a.ws.Close()
	<-a.done
	a2 := ts.connect(alice, room, cid)
	a2.send("join_waiting_room", nil)
	a2.expect("join_waiting_room_response")

	m2 := ts.connect(user{name: "M2", email: "m2@example.com", id: "m2", moderator: true}, room, cid)
	if got := strings.Join(participants(m2.expect("waiting_room_list")), ","); got != "alice@example.com,bob@example.com" {
		t.Fatalf("list after reconnect = %s", got)
	}
	barrier(t, m, "sync", a2, b, m2)
	if m.saw("waiting_participant_left") {
		t.Fatalf("moderator told of a departure inside the grace period: %v", m.names())
	}
	// The reconnected socket is the one admitted.
	m.send("accept_participant", map[string]any{"email": alice.email})
	if g := a2.expect("join_room_" + room); g.field("can_join") != true {
		t.Fatalf("grant %s", g.Data)
	}
}

func TestDisconnectAfterGraceLeavesList(t *testing.T) {
	cfg := baseConfig()
	cfg.ReconnectGrace = 50 * time.Millisecond
	clk := newManualClock()
	hub := &observedHub{Hub: newMemHub(cfg.ReconnectGrace, 50, true, clk), disconnected: make(chan Session, 16)}
	t.Cleanup(hub.Close)
	ts := startServerOn(t, cfg, true, clk, WithHub(hub))
	m := ts.connect(mod, "r", "c")
	a := ts.connect(alice, "r", "c")
	a.send("join_waiting_room", nil)
	m.expect("waiting_participant_joined")
	_ = a.ws.Close()
	// The grace period runs from the server's noticing, on the server's clock.
	hub.awaitDisconnect(t, alice)
	barrier(t, m, "inside the grace period")
	if m.saw("waiting_participant_left") {
		t.Fatalf("moderator told of a departure inside the grace period: %v", m.names())
	}
	ts.clock.Advance(cfg.ReconnectGrace)
	if l := m.expect("waiting_participant_left"); l.field("reason") != "disconnected" || l.field("email") != alice.email {
		t.Fatalf("left %s", l.Data)
	}
	// The moderator's disconnect keeps the waiting room.
	b := ts.connect(bob, "r", "c")
	b.send("join_waiting_room", nil)
	m.expect("waiting_participant_joined")
	_ = m.ws.Close()
	<-m.done
	m2 := ts.connect(mod, "r", "c")
	if got := participants(m2.expect("waiting_room_list")); len(got) != 1 || got[0] != bob.email {
		t.Fatalf("list after moderator reconnect %v", got)
	}
}

func TestNoWaitingRoomAdmitsAtOnce(t *testing.T) {
	ts := startServer(t, baseConfig())
	postConference(t, ts, `{"room":"open","content_id":"o1","waiting_room":false}`, 200)
	a := ts.connect(alice, "open", "o1")
	a.send("join_waiting_room", nil)
	if g := a.expect("join_room_open"); g.field("can_join") != true {
		t.Fatalf("grant %s", g.Data)
	}
}

func TestConnectionLimits(t *testing.T) {
	cfg := baseConfig()
	cfg.MaxConnsPerUser, cfg.MaxConnsPerConference = 2, 3
	ts := startServer(t, cfg)
	ts.connect(alice, "r", "c")
	ts.connect(alice, "r", "c")
	if _, st, body := ts.dial("r", withCookie("socket_io_token_c", mint(t, alice, "r", "c"))); st != 403 || !strings.Contains(body, ErrTooManyUser.Error()) {
		t.Fatalf("third socket for one user: %d %s", st, body)
	}
	ts.connect(bob, "r", "c")
	if _, st, body := ts.dial("r", withCookie("socket_io_token_c", mint(t, carol, "r", "c"))); st != 403 || !strings.Contains(body, ErrTooManyConference.Error()) {
		t.Fatalf("fourth socket in the conference: %d %s", st, body)
	}
}

func TestSlowClientIsDropped(t *testing.T) {
	cfg := baseConfig()
	cfg.SendQueue = 16
	cfg.MessageRate, cfg.MessageBurst = 100000, 100000
	ts := startServer(t, cfg)
	m := ts.connect(mod, "r", "c")
	// The slow client's reader stops once a few events are unread: its kernel buffers fill, then its queue.
	ts.eventBuf = 4
	slow := ts.connect(alice, "r", "c")
	ts.eventBuf = 0
	slow.send("join_waiting_room", nil)
	text := strings.Repeat("y", 1900)
	dropped := false
	// Batches of 4, each waited for: the moderator, who reads, never has more than its queue can hold.
	for i := 0; i < 5000 && !dropped; i++ {
		for j := 0; j < 4; j++ {
			m.send("chat_message", map[string]any{"text": text})
		}
		for j := 0; j < 4; j++ {
			m.expect("chat_message")
		}
		m.discard()
		dropped = ts.sig.m.slow.Get() > 0
	}
	if !dropped {
		t.Fatal("slow client never dropped")
	}
	// The moderator, who reads, is still served.
	m.discard()
	m.send("join_waiting_room", nil)
	if e := m.expect("error"); e.field("message") != ErrModerator.Error() {
		t.Fatalf("error %s", e.Data)
	}
}

func TestAdminAPI(t *testing.T) {
	ts := startServer(t, baseConfig())
	f := func(method, uri, body string, want int, wantBody string) {
		t.Helper()
		req := fasthttp.AcquireRequest()
		resp := fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI("http://" + ts.addr + uri)
		req.Header.SetMethod(method)
		req.SetBodyString(body)
		if err := fasthttp.DoTimeout(req, resp, waitFor); err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode() != want || !strings.Contains(string(resp.Body()), wantBody) {
			t.Fatalf("%s %s %s: %d %s", method, uri, body, resp.StatusCode(), resp.Body())
		}
	}
	f("POST", "/api/conferences", `{"room":"a","content_id":17,"waiting_room":false}`, 200, `"content_id":"17"`)
	f("POST", "/api/conferences", `{"room":"b","content_id":"x"}`, 200, `"waiting_room":true`)
	f("POST", "/api/conferences", `{"room":"","content_id":"x"}`, 400, "'room'")
	f("POST", "/api/conferences", `{"room":"c","content_id":"a b"}`, 400, "'content_id'")
	f("POST", "/api/conferences", `{"room":`, 400, "JSON")
	f("GET", "/api/conferences", ``, 200, `{"conferences":[{"room":"a","content_id":"17","waiting_room":false},{"room":"b"`)
	c := ts.connect(alice, "b", "x")
	f("DELETE", "/api/conferences?room=b", ``, 200, `"ended_sockets":1`)
	if e := c.waitClosed(); e == nil || e.Code != CloseConferenceEnded || e.Text != "conference ended" {
		t.Fatalf("close %v", e)
	}
	f("DELETE", "/api/conferences", `{"room":"a"}`, 200, `"room":"a"`)
	f("DELETE", "/api/conferences", `{"room":"a"}`, 404, "no running conference")
	f("DELETE", "/api/conferences", ``, 400, "'room'")
	f("PUT", "/api/conferences", ``, 405, "method")
}

func TestServerCloseSendsGoingAway(t *testing.T) {
	ts := startServer(t, baseConfig())
	a := ts.connect(alice, "r", "c")
	ts.sig.Close()
	if e := a.waitClosed(); e == nil || e.Code != websocket.CloseGoingAway {
		t.Fatalf("close %v", e)
	}
	if _, st, _ := ts.dial("r", withCookie("socket_io_token_c", mint(t, bob, "r", "c"))); st != 503 {
		t.Fatalf("upgrade after Close: %d", st)
	}
}

func TestIdleTimeoutClosesSilentClient(t *testing.T) {
	cfg := baseConfig()
	cfg.PingInterval, cfg.IdleTimeout = 50*time.Millisecond, 300*time.Millisecond
	ts := startServer(t, cfg)
	// A client that reads answers pings and stays.
	a := ts.connect(alice, "r", "c")
	// A client that never answers a ping is closed.
	ts.noPong = true
	b, _, _ := ts.dial("r", withCookie("socket_io_token_c", mint(t, bob, "r", "c")))
	ts.noPong = false
	b.expect("connected")
	// Ping periods up to the idle timeout on the server's clock, each one answered by a and read by the server
	// before the next: only the pongs keep a open, and b, silent since it connected, times out at the last.
	for elapsed := cfg.PingInterval; elapsed < cfg.IdleTimeout; elapsed += cfg.PingInterval {
		ts.clock.Advance(cfg.PingInterval)
		a.heartbeat()
		if ts.sig.m.idle.Get() != 0 {
			t.Fatalf("a socket timed out after %v of a %v idle timeout", elapsed, cfg.IdleTimeout)
		}
	}
	ts.clock.Advance(cfg.PingInterval)
	b.waitClosed()
	a.send("join_waiting_room", nil)
	a.expect("join_waiting_room_response")
	if ts.sig.m.idle.Get() == 0 {
		t.Fatal("idle timeout not counted")
	}
}

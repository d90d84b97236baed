package signaling

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
)

// pollClient speaks Engine.IO's long polling over plain HTTP, packet by packet.
type pollClient struct {
	t       *testing.T
	ts      *testServer
	sid     string
	hdr     http.Header
	room    string
	pending []string // packets received and not yet matched by next
}

type openInfo struct {
	SID          string   `json:"sid"`
	Upgrades     []string `json:"upgrades"`
	PingInterval int64    `json:"pingInterval"`
	PingTimeout  int64    `json:"pingTimeout"`
	MaxPayload   int64    `json:"maxPayload"`
}

var httpClient = &http.Client{Timeout: waitFor}

// sioURL is the Socket.IO endpoint with query.
func (ts *testServer) sioURL(query string) string {
	return "http://" + ts.addr + "/socket.io/?" + query
}

// httpDo sends one request and returns the status and body.
func httpDo(t *testing.T, method, u string, h http.Header, body string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// pollOpen runs the polling handshake for u and returns the session.
func (ts *testServer) pollOpen(u user, room, cid string) (*pollClient, openInfo) {
	ts.t.Helper()
	h := http.Header{"Origin": {testOrigin}, "Cookie": {"socket_io_token_" + cid + "=" + mint(ts.t, u, room, cid)}}
	st, body, _ := httpDo(ts.t, http.MethodGet, ts.sioURL("EIO=4&transport=polling&room="+url.QueryEscape(room)), h, "")
	var o openInfo
	if st != http.StatusOK || !strings.HasPrefix(body, "0") || json.Unmarshal([]byte(body[1:]), &o) != nil || o.SID == "" {
		ts.t.Fatalf("polling handshake: %d %q", st, body)
	}
	return &pollClient{t: ts.t, ts: ts, sid: o.SID, hdr: h, room: room}, o
}

func (p *pollClient) url() string {
	return p.ts.sioURL("EIO=4&transport=polling&room=" + url.QueryEscape(p.room) + "&sid=" + url.QueryEscape(p.sid))
}

// get sends one GET and returns its status and packets.
func (p *pollClient) get() (int, []string) {
	p.t.Helper()
	st, body, _ := httpDo(p.t, http.MethodGet, p.url(), p.hdr, "")
	if st != http.StatusOK {
		return st, []string{body}
	}
	return st, strings.Split(body, "\x1e")
}

// post sends packets in one POST and returns the status.
func (p *pollClient) post(packets ...string) int {
	p.t.Helper()
	st, body, _ := httpDo(p.t, http.MethodPost, p.url(), p.hdr, strings.Join(packets, "\x1e"))
	if st == http.StatusOK && body != "ok" {
		p.t.Fatalf("POST answered %q", body)
	}
	return st
}

// next returns the first packet starting with prefix, polling for more as needed; packets before it stay
// pending for later calls.
func (p *pollClient) next(prefix string) string {
	p.t.Helper()
	for {
		for i, pkt := range p.pending {
			if strings.HasPrefix(pkt, prefix) {
				p.pending = append(p.pending[:i:i], p.pending[i+1:]...)
				return pkt
			}
		}
		st, pkts := p.get()
		if st != http.StatusOK {
			p.t.Fatalf("GET while waiting for %q: %d %v; pending %q", prefix, st, pkts, p.pending)
		}
		p.pending = append(p.pending, pkts...)
	}
}

// connect joins the main namespace and waits for `connected`.
func (p *pollClient) connect() {
	p.t.Helper()
	if st := p.post("40"); st != http.StatusOK {
		p.t.Fatalf("namespace connect: %d", st)
	}
	p.next(`40{"sid":"`)
	p.next(`42["connected",`)
}

func TestPollingSession(t *testing.T) {
	f := func(name string, detach bool) {
		t.Run(name, func(t *testing.T) { pollingSession(t, detach) })
	}
	// Detached, a GET that waits gives its connection up to the session; else it waits in the handler.
	f("detached", true)
	f("on fasthttp's goroutine", false)
}

func pollingSession(t *testing.T, detach bool) {
	cfg := baseConfig()
	cfg.PingInterval, cfg.IdleTimeout = 100*time.Millisecond, 2*time.Second
	ts := startServerMode(t, cfg, detach)
	p, o := ts.pollOpen(alice, "poll room", "c-p")
	if len(o.Upgrades) != 1 || o.Upgrades[0] != "websocket" || o.PingInterval != 100 || o.PingTimeout != 1900 || o.MaxPayload != 64<<10 {
		t.Fatalf("open packet %+v", o)
	}
	if n := ts.sig.Conns(); n != 1 {
		t.Fatalf("%d connections counted for a polling session, want 1", n)
	}
	p.connect()
	// Events and their acks: with the payload of the event that answers, or without arguments.
	p.post(`42["no_such_event",{}]`)
	if e := p.next(`42["error",`); !strings.Contains(e, "no_such_event") {
		t.Fatalf("error %s", e)
	}
	p.post(`427["join_waiting_room",{}]`)
	resp := p.next(`42["join_waiting_room_response",`)
	if ack := p.next("437["); ack != `437[{"success":true,"waiting":true}]` || !strings.Contains(resp, `{"success":true,"waiting":true}`) {
		t.Fatalf("join answered %s, acked %s", resp, ack)
	}
	// Two packets in one POST are handled in order.
	p.post(`428["chat_message",{"text":"hi"}]`, `429["no_such_event"]`)
	p.next(`42["chat_message",`)
	if ack := p.next("438"); ack != "438[]" {
		t.Fatalf("chat ack %s, want one without arguments", ack)
	}
	if ack := p.next("439"); ack != `439[{"event":"no_such_event","message":"unknown event"}]` {
		t.Fatalf("refused event's ack %s", ack)
	}
	// The heartbeat reaches a polling client in its GET, and its pong comes by POST.
	for range 3 {
		ts.clock.Advance(cfg.PingInterval)
		p.next("2")
		p.post("3")
	}
	if ts.sig.m.idle.Get() != 0 {
		t.Fatal("an answered session timed out")
	}
	// The client's close packet ends the session.
	p.post("1")
	if n := ts.sig.Conns(); n != 0 {
		t.Fatalf("%d connections after the client closed", n)
	}
	if st, pkts := p.get(); st != http.StatusOK || pkts[len(pkts)-1] != "1" {
		t.Fatalf("GET after the close: %d %q, want the close packet", st, pkts)
	}
	if st, body := p.get(); st != http.StatusBadRequest || !strings.Contains(body[0], ErrUnknownSession.Error()) {
		t.Fatalf("GET of a closed session: %d %q", st, body)
	}
}

// TestPollingIdleGETIsParked: a GET with nothing to answer leaves fasthttp (whose worker and buffers it would
// hold for as long as the session is idle) and is answered on its own connection, which then closes.
func TestPollingIdleGETIsParked(t *testing.T) {
	cfg := baseConfig()
	cfg.PingInterval, cfg.IdleTimeout = 10*time.Second, time.Minute
	ts := startServer(t, cfg)
	p, _ := ts.pollOpen(alice, "parked", "c-pk")
	p.connect()
	type result struct {
		st    int
		body  string
		close bool
		acao  string
	}
	done := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, p.url(), nil)
		req.Header = p.hdr.Clone()
		resp, err := httpClient.Do(req)
		if err != nil {
			done <- result{body: err.Error()}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		done <- result{resp.StatusCode, string(b), resp.Close, resp.Header.Get("Access-Control-Allow-Origin")}
	}()
	select {
	case <-ts.hijacked: // the GET found nothing to answer and gave its connection up
	case <-time.After(waitFor):
		t.Fatal("the idle GET was not parked")
	}
	ts.clock.Advance(cfg.PingInterval)
	select {
	case r := <-done:
		if r.st != 200 || r.body != "2" || !r.close || r.acao != testOrigin {
			t.Fatalf("parked GET answered %+v, want the ping, Connection: close and the CORS header", r)
		}
	case <-time.After(waitFor):
		t.Fatal("the parked GET was not answered")
	}
	// The session goes on with the next GET, on a new connection.
	p.post("3", `42["join_waiting_room",{}]`)
	p.next(`42["join_waiting_room_response"`)
}

func TestPollingAbandonedSessionsEnd(t *testing.T) {
	cfg := baseConfig()
	cfg.PingInterval, cfg.IdleTimeout, cfg.HandshakeTimeout = 10*time.Second, 30*time.Second, 5*time.Second
	cfg.ReconnectGrace = -1
	ts := startServer(t, cfg)
	const room, cid = "abandoned", "c-ab"
	m := ts.connect(mod, room, cid)
	m.expect("waiting_room_list")

	// Opened and never connected to the namespace: gone after the handshake timeout.
	ts.pollOpen(bob, room, cid)
	// Connected and waiting, then silent: gone after the idle timeout, and off the moderator's list.
	p, _ := ts.pollOpen(alice, room, cid)
	p.connect()
	p.post(`42["join_waiting_room",{}]`)
	p.next(`42["join_waiting_room_response",`)
	m.expect("waiting_participant_joined")
	if n := ts.sig.Conns(); n != 3 {
		t.Fatalf("%d connections, want 3", n)
	}
	ts.clock.Advance(cfg.HandshakeTimeout)
	if n := ts.sig.Conns(); n != 2 {
		t.Fatalf("%d connections after the handshake timeout, want 2", n)
	}
	// The moderator answers the pings; the abandoned session does not.
	for elapsed := time.Duration(0); elapsed < cfg.IdleTimeout; elapsed += cfg.PingInterval {
		ts.clock.Advance(cfg.PingInterval)
		m.heartbeat()
	}
	if n := ts.sig.Conns(); n != 1 {
		t.Fatalf("%d connections after the idle timeout, want the moderator's", n)
	}
	if l := m.expect("waiting_participant_left"); l.field("email") != alice.email {
		t.Fatalf("left %s", l.Data)
	}
	if ts.sig.m.idle.Get() != 2 {
		t.Fatalf("%d idle closes counted, want 2", ts.sig.m.idle.Get())
	}
	// A client that comes back finds the close packet, not the pings queued while it was away.
	if st, pkts := p.get(); st != http.StatusOK || strings.Join(pkts, ",") != "1" {
		t.Fatalf("GET after the idle close: %d %q", st, pkts)
	}
}

func TestPollingRefusals(t *testing.T) {
	cfg := baseConfig()
	cfg.NodeID = "edge-a"
	ts := startServer(t, cfg)
	const room, cid = "refused", "c-rf"
	cookie := http.Header{"Cookie": {"socket_io_token_" + cid + "=" + mint(t, alice, room, cid)}}
	f := func(method, query string, h http.Header, wantStatus int, wantReason string) {
		t.Helper()
		st, body, _ := httpDo(t, method, ts.sioURL(query), h, "")
		if st != wantStatus || !strings.Contains(body, wantReason) {
			t.Fatalf("%s %s: %d %q, want %d %q", method, query, st, body, wantStatus, wantReason)
		}
	}
	f("GET", "EIO=3&transport=polling&room=refused", cookie, 400, "EIO=4: socket.io-client 3.x and 4.x")
	f("GET", "EIO=3&transport=websocket&room=refused", cookie, 400, "socket.io-client 2.x (EIO=3) must be upgraded")
	f("GET", "transport=polling&room=refused", cookie, 400, "EIO=4")
	f("GET", "EIO=4&transport=flashsocket&room=refused", cookie, 400, ErrSocketIOTransport.Error())
	f("GET", "EIO=4&transport=polling&room=refused", nil, 401, ErrNoToken.Error())
	f("GET", "EIO=4&transport=polling&room=refused", http.Header{"Cookie": cookie["Cookie"], "Origin": {"https://evil.example.net"}}, 403, ErrOrigin.Error())
	f("POST", "EIO=4&transport=polling&room=refused", cookie, 400, "opens with a GET")
	f("GET", "EIO=4&transport=polling&sid=nope", cookie, 400, ErrUnknownSession.Error())
	f("GET", "EIO=4&transport=websocket&room=refused", cookie, 426, "websocket upgrade required")
	// The sid names the node that holds the session, so a request a balancer sent astray says where it belongs.
	f("GET", "EIO=4&transport=polling&sid=edge-b.abc", cookie, 400, `the session is node "edge-b"'s`)
	f("GET", "EIO=4&transport=polling&sid=edge-a.abc", cookie, 400, ErrUnknownSession.Error())
	p, o := ts.pollOpen(alice, room, cid)
	if !strings.HasPrefix(o.SID, "edge-a.") {
		t.Fatalf("sid %q does not start with the node id", o.SID)
	}
	f("PUT", "EIO=4&transport=polling&sid="+p.sid, nil, 405, "GET and POST")
	if n := ts.sig.Conns(); n != 1 {
		t.Fatalf("%d connections after the refusals, want the one session", n)
	}
}

func TestPollingBounds(t *testing.T) {
	t.Run("payload larger than maxPayload", func(t *testing.T) {
		cfg := baseConfig()
		cfg.ReadLimit = 4096
		ts := startServer(t, cfg)
		p, o := ts.pollOpen(alice, "r", "c")
		if o.MaxPayload != 4096 {
			t.Fatalf("maxPayload %d, want read_limit", o.MaxPayload)
		}
		p.connect()
		if st := p.post(`42["chat_message",{"text":"` + strings.Repeat("x", 5000) + `"}]`); st != http.StatusRequestEntityTooLarge {
			t.Fatalf("oversized POST: %d", st)
		}
		if n := ts.sig.Conns(); n != 0 {
			t.Fatalf("%d connections after an oversized POST", n)
		}
	})
	t.Run("overlapping GETs", func(t *testing.T) {
		ts := startServer(t, baseConfig())
		p, _ := ts.pollOpen(alice, "r", "c")
		p.connect()
		// Whichever arrives second is refused and ends the session; the other gets the close packet.
		type result struct {
			st   int
			pkts []string
		}
		first := make(chan result, 1)
		go func() {
			st, pkts := p.get()
			first <- result{st, pkts}
		}()
		st, pkts := p.get()
		var other result
		select {
		case other = <-first:
		case <-time.After(waitFor):
			t.Fatal("the first GET never returned")
		}
		got := map[int]string{st: strings.Join(pkts, ","), other.st: strings.Join(other.pkts, ",")}
		if len(got) != 2 || got[http.StatusOK] != "1" || !strings.Contains(got[http.StatusBadRequest], "overlapping GET") {
			t.Fatalf("overlapping GETs answered %v", got)
		}
		if n := ts.sig.Conns(); n != 0 {
			t.Fatalf("%d connections after overlapping GETs", n)
		}
	})
	t.Run("max polling sessions", func(t *testing.T) {
		cfg := baseConfig()
		cfg.MaxPollingSessions = 1
		ts := startServer(t, cfg)
		ts.pollOpen(alice, "r", "c")
		h := http.Header{"Cookie": {"socket_io_token_c=" + mint(t, bob, "r", "c")}}
		if st, body, _ := httpDo(t, "GET", ts.sioURL("EIO=4&transport=polling&room=r"), h, ""); st != 503 || !strings.Contains(body, ErrTooManyPolling.Error()) {
			t.Fatalf("second polling session: %d %q", st, body)
		}
		// The WebSocket transport is still served.
		ws := sioDial(t, ts, bob, "r", "c")
		if open := readText(t, ws); !strings.HasPrefix(open, `0{`) || !strings.Contains(open, `"upgrades":[]`) {
			t.Fatalf("open packet %s", open)
		}
	})
	t.Run("polling off", func(t *testing.T) {
		cfg := baseConfig()
		cfg.MaxPollingSessions = -1
		ts := startServer(t, cfg)
		h := http.Header{"Cookie": {"socket_io_token_c=" + mint(t, bob, "r", "c")}}
		if st, body, _ := httpDo(t, "GET", ts.sioURL("EIO=4&transport=polling&room=r"), h, ""); st != 400 || !strings.Contains(body, `transports: ["websocket"]`) {
			t.Fatalf("polling turned off: %d %q", st, body)
		}
	})
	t.Run("per-user limit", func(t *testing.T) {
		cfg := baseConfig()
		cfg.MaxConnsPerUser = 1
		ts := startServer(t, cfg)
		ts.pollOpen(alice, "r", "c")
		if _, st, body := ts.dial("r", withCookie("socket_io_token_c", mint(t, alice, "r", "c"))); st != 403 || !strings.Contains(body, ErrTooManyUser.Error()) {
			t.Fatalf("a socket beside a polling session over the user's limit: %d %s", st, body)
		}
	})
}

// TestPollingServerDisconnectTellsWhy: over polling, the reason and the namespace disconnect come in one
// response and the close packet in the next, since socket.io-client handles a response's close packet before its
// messages.
func TestPollingServerDisconnectTellsWhy(t *testing.T) {
	cfg := baseConfig()
	zero := time.Duration(0)
	cfg.JWT.Leeway = &zero
	cfg.TokenExpiryWarning = time.Hour
	ts := startServer(t, cfg)
	const room, cid = "ending", "c-end"

	// Token expiry.
	tok := sign(t, tokenClaimsFor(alice, room, cid, ts.clock.Now().Add(2*time.Second)))
	p := &pollClient{t: t, ts: ts, room: room, hdr: http.Header{"Cookie": {"socket_io_token_" + cid + "=" + tok}}}
	st, body, _ := httpDo(t, "GET", ts.sioURL("EIO=4&transport=polling&room="+room), p.hdr, "")
	var o openInfo
	if st != 200 || json.Unmarshal([]byte(strings.TrimPrefix(body, "0")), &o) != nil {
		t.Fatalf("handshake %d %q", st, body)
	}
	p.sid = o.SID
	p.connect()
	p.next(`42["token_expiring",`)
	ts.clock.Advance(3 * time.Second)
	if st, pkts := p.get(); st != 200 || strings.Join(pkts, "|") != `42["server_disconnect",{"code":4001,"reason":"token expired"}]|41` {
		t.Fatalf("at expiry: %d %q", st, pkts)
	}
	if st, pkts := p.get(); st != 200 || strings.Join(pkts, "|") != "1" {
		t.Fatalf("the GET after: %d %q, want the close packet", st, pkts)
	}
	if st, _ := p.get(); st != 400 {
		t.Fatalf("a GET after the close packet: %d, want the session gone", st)
	}

	// The conference's end.
	postConference(t, ts, `{"room":"ending","content_id":"c-end"}`, 200)
	q, _ := ts.pollOpen(carol, room, cid)
	q.connect()
	conferencesAPI(t, ts, "DELETE", `{"room":"ending"}`, 200)
	if e := q.next(`42["server_disconnect",`); e != `42["server_disconnect",{"code":4002,"reason":"conference ended"}]` {
		t.Fatalf("conference end: %s", e)
	}
	q.next("41")
	if n := ts.sig.Conns(); n != 0 {
		t.Fatalf("%d connections left", n)
	}
}

func TestPollingUpgradeToWebSocket(t *testing.T) {
	f := func(name string, detach bool) {
		t.Run(name, func(t *testing.T) { pollingUpgrade(t, detach) })
	}
	f("detached", true)
	f("on the hijack goroutine", false)
}

func pollingUpgrade(t *testing.T, detach bool) {
	cfg := baseConfig()
	cfg.PingInterval, cfg.IdleTimeout = 10*time.Second, time.Minute
	clk := newManualClock()
	hub := &observedHub{Hub: newMemHub(cfg.ReconnectGrace, 50, true, clk), disconnected: make(chan Session, 16)}
	t.Cleanup(hub.Close)
	ts := startServerOn(t, cfg, detach, clk, WithHub(hub))
	const room, cid = "upgrade", "c-up"
	m := ts.connect(mod, room, cid)
	m.expect("waiting_room_list")
	p, _ := ts.pollOpen(alice, room, cid)
	p.connect()
	p.post(`42["join_waiting_room",{}]`)
	p.next(`42["join_waiting_room_response",`)
	m.expect("waiting_participant_joined")

	// A GET waits, as polling does, when the probe comes.
	waiting := make(chan []string, 1)
	go func() {
		_, pkts := p.get()
		waiting <- pkts
	}()
	ws, _, err := (&websocket.Dialer{HandshakeTimeout: waitFor}).Dial("ws://"+ts.addr+"/socket.io/?EIO=4&transport=websocket&room="+
		url.QueryEscape(room)+"&sid="+url.QueryEscape(p.sid), http.Header{"Origin": {testOrigin}})
	if err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(waitFor))
	// A second WebSocket for the same session is refused while the first is probing.
	if _, resp, err := (&websocket.Dialer{HandshakeTimeout: waitFor}).Dial("ws://"+ts.addr+"/socket.io/?EIO=4&transport=websocket&sid="+
		url.QueryEscape(p.sid), http.Header{"Origin": {testOrigin}}); err == nil || resp == nil || resp.StatusCode != 400 {
		t.Fatalf("second probe: %v", err)
	}
	_ = ws.WriteMessage(websocket.TextMessage, []byte("2probe"))
	if got := readText(t, ws); got != "3probe" {
		t.Fatalf("probe answered %q", got)
	}
	// The pending GET ends with a noop, so that the client can pause polling; a GET now does not wait.
	select {
	case pkts := <-waiting:
		if strings.Join(pkts, ",") != "6" {
			t.Fatalf("the pending GET answered %q during the upgrade, want a noop", pkts)
		}
	case <-time.After(waitFor):
		t.Fatal("the pending GET did not end when the probe was answered")
	}
	// What is sent between the probe and the upgrade waits for the WebSocket.
	barrier(t, m, "during the upgrade")
	_ = ws.WriteMessage(websocket.TextMessage, []byte("5"))
	if got := readText(t, ws); !strings.HasPrefix(got, `42["chat_message",`) || !strings.Contains(got, "during the upgrade") {
		t.Fatalf("first frame after the upgrade %s", got)
	}
	// Polling is over for this session.
	if st, body := p.get(); st != 400 || !strings.Contains(body[0], "moved to its WebSocket") {
		t.Fatalf("GET after the upgrade: %d %q", st, body)
	}
	if st := p.post("3"); st != 400 {
		t.Fatalf("POST after the upgrade: %d", st)
	}
	// The session lives on over the WebSocket: events with acks, and the heartbeat.
	_ = ws.WriteMessage(websocket.TextMessage, []byte(`4211["chat_message",{"text":"over ws"}]`))
	var acked bool
	for !acked {
		got := readText(t, ws)
		acked = got == "4311[]"
	}
	ts.clock.Advance(cfg.PingInterval)
	for readText(t, ws) != "2" {
	}
	_ = ws.WriteMessage(websocket.TextMessage, []byte("3"))
	m.send("accept_participant", map[string]any{"email": alice.email})
	for got := ""; !strings.HasPrefix(got, `42["join_room_upgrade",{"can_join":true}]`); {
		got = readText(t, ws)
	}
	if n := ts.sig.Conns(); n != 2 {
		t.Fatalf("%d connections, want the moderator's and the upgraded session", n)
	}
	if ts.sig.m.transportUpgrades.Get() != 1 {
		t.Fatal("upgrade not counted")
	}
	_ = ws.Close()
	hub.awaitDisconnect(t, alice)
}

func TestPollingCORS(t *testing.T) {
	ts := startServer(t, baseConfig())
	h := http.Header{"Origin": {testOrigin}, "Access-Control-Request-Method": {"GET"}, "Access-Control-Request-Headers": {"x-room-name, content-type"}}
	st, _, rh := httpDo(t, "OPTIONS", ts.sioURL("EIO=4&transport=polling"), h, "")
	if st != 204 || rh.Get("Access-Control-Allow-Origin") != testOrigin || rh.Get("Access-Control-Allow-Credentials") != "true" ||
		rh.Get("Access-Control-Allow-Headers") != "x-room-name, content-type" || !strings.Contains(rh.Get("Access-Control-Allow-Methods"), "POST") {
		t.Fatalf("preflight: %d %v", st, rh)
	}
	h.Set("Access-Control-Request-Headers", "x-room-name, <script>")
	if _, _, rh := httpDo(t, "OPTIONS", ts.sioURL("EIO=4&transport=polling"), h, ""); rh.Get("Access-Control-Allow-Headers") != "" {
		t.Fatalf("odd header list echoed: %v", rh)
	}
	h.Set("Origin", "https://evil.example.net")
	if st, body, rh := httpDo(t, "OPTIONS", ts.sioURL("EIO=4&transport=polling"), h, ""); st != 403 || rh.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("preflight from another site: %d %q %v", st, body, rh)
	}
	p, _ := ts.pollOpen(alice, "cors", "c-cors")
	_ = p
	st, _, rh = httpDo(t, "GET", ts.sioURL("EIO=4&transport=polling&room=cors"), http.Header{
		"Origin": {testOrigin}, "Cookie": {"socket_io_token_c-cors=" + mint(t, bob, "cors", "c-cors")}}, "")
	if st != 200 || rh.Get("Access-Control-Allow-Origin") != testOrigin || !strings.Contains(rh.Get("Vary"), "Origin") {
		t.Fatalf("handshake from an allowed origin: %d %v", st, rh)
	}
}

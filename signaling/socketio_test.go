package signaling

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
)

func TestSocketIOCodec(t *testing.T) {
	f := func(frame, wantEv, wantData string) {
		t.Helper()
		ev, data, err := SocketIOCodec{}.Decode([]byte(frame))
		if wantEv == "" {
			if err == nil {
				t.Fatalf("%q decoded as %q %s, want an error", frame, ev, data)
			}
			return
		}
		if err != nil || ev != wantEv || string(data) != wantData {
			t.Fatalf("%q = %q %s %v, want %q %s", frame, ev, data, err, wantEv, wantData)
		}
	}
	f(`42["chat_message",{"text":"hi"}]`, "chat_message", `{"text":"hi"}`)
	f(`4217["join_waiting_room",{"room_name":"r"}]`, "join_waiting_room", `{"room_name":"r"}`) // with an ack id
	f(`42["join_waiting_room"]`, "join_waiting_room", "null")
	f(`42["a\u0001b",1]`, "a\x01b", "1")
	f(`42[]`, "", "")
	f(`42[1,2]`, "", "")
	f(`42[""]`, "", "")
	f(`42/admin,["x"]`, "", "") // another namespace
	f(`41`, "", "")
	f(`3`, "", "")
	f(`{"event":"x"}`, "", "")

	got := string(SocketIOCodec{}.Encode(nil, "join_room_Weekly sync", []byte(`{"can_join":true}`)))
	if want := `42["join_room_Weekly sync",{"can_join":true}]`; got != want {
		t.Fatalf("encode = %s, want %s", got, want)
	}
	if got := string(SocketIOCodec{}.Encode(nil, "a\"\x01", []byte("null"))); got != `42["a\"\u0001",null]` {
		t.Fatalf("encode quotes as JSON: %s", got)
	}
}

func FuzzSocketIOCodecDecode(f *testing.F) {
	f.Add([]byte(`42["chat_message",{"text":"hi"}]`))
	f.Add([]byte(`4212["join_waiting_room"]`))
	f.Add([]byte(`42["\u0001"]`))
	f.Add([]byte(`40`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, data, err := SocketIOCodec{}.Decode(b)
		if err != nil {
			return
		}
		if ev == "" || !json.Valid(data) {
			t.Fatalf("decoded %q %q without error", ev, data)
		}
		ev2, data2, err := SocketIOCodec{}.Decode(SocketIOCodec{}.Encode(nil, ev, data))
		if err != nil || ev2 != ev || !bytes.Equal(data2, data) {
			t.Fatalf("round trip of %q %s: %q %s %v", ev, data, ev2, data2, err)
		}
	})
}

// sioDial opens a raw socket on the Socket.IO endpoint, for the packet-level checks.
func sioDial(t *testing.T, ts *testServer, u user, room, cid string) *websocket.Conn {
	t.Helper()
	h := http.Header{"Origin": {testOrigin}, "Cookie": {"socket_io_token_" + cid + "=" + mint(t, u, room, cid)}}
	ws, resp, err := (&websocket.Dialer{HandshakeTimeout: waitFor}).Dial(
		"ws://"+ts.addr+"/socket.io/?EIO=4&transport=websocket&room="+url.QueryEscape(room), h)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial: %v (status %d)", err, status)
	}
	t.Cleanup(func() { _ = ws.Close() })
	_ = ws.SetReadDeadline(time.Now().Add(waitFor))
	return ws
}

func readText(t *testing.T, ws *websocket.Conn) string {
	t.Helper()
	_, b, err := ws.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(b)
}

func TestSocketIOPacketHandshake(t *testing.T) {
	cfg := baseConfig()
	cfg.PingInterval, cfg.IdleTimeout = 100*time.Millisecond, 2*time.Second
	ts := startServer(t, cfg)
	ws := sioDial(t, ts, alice, "sio room", "c-s")

	open := readText(t, ws)
	var o struct {
		SID          string   `json:"sid"`
		Upgrades     []string `json:"upgrades"`
		PingInterval int64    `json:"pingInterval"`
		PingTimeout  int64    `json:"pingTimeout"`
		MaxPayload   int64    `json:"maxPayload"`
	}
	if !strings.HasPrefix(open, "0") || json.Unmarshal([]byte(open[1:]), &o) != nil || o.SID == "" ||
		o.Upgrades == nil || len(o.Upgrades) != 0 || o.PingInterval != 100 || o.PingTimeout != 1900 || o.MaxPayload != 64<<10 {
		t.Fatalf("open packet %s", open)
	}
	// Nothing of the conference before the namespace connect; a namespace that does not exist is refused.
	_ = ws.WriteMessage(websocket.TextMessage, []byte("40/admin,"))
	if got := readText(t, ws); got != `44/admin,{"message":"Invalid namespace"}` {
		t.Fatalf("other namespace: %s", got)
	}
	_ = ws.WriteMessage(websocket.TextMessage, []byte(`40{"token":"ignored"}`))
	if got := readText(t, ws); !strings.HasPrefix(got, `40{"sid":"`) {
		t.Fatalf("namespace connect answer %s", got)
	}
	var events []string
	for len(events) < 2 {
		got := readText(t, ws)
		if !strings.HasPrefix(got, "42") {
			t.Fatalf("unexpected packet %s", got)
		}
		ev, _, err := SocketIOCodec{}.Decode([]byte(got))
		if err != nil {
			t.Fatalf("bad event %s", got)
		}
		events = append(events, ev)
		if len(events) == 1 {
			_ = ws.WriteMessage(websocket.TextMessage, []byte(`42["no_such_event",{}]`))
		}
	}
	if events[0] != "connected" || events[1] != "error" {
		t.Fatalf("events %v, want connected then the error for the unknown event", events)
	}
	// The heartbeat is a text frame every ping interval of the server's clock, which the client answers.
	for i := range 2 {
		ts.clock.Advance(cfg.PingInterval)
		if got := readText(t, ws); got != "2" {
			t.Fatalf("ping %d: %s, want the Engine.IO ping 2", i+1, got)
		}
		_ = ws.WriteMessage(websocket.TextMessage, []byte("3"))
	}
	// A Socket.IO disconnect ends the socket with a normal close.
	_ = ws.WriteMessage(websocket.TextMessage, []byte("41"))
	for {
		if _, _, err := ws.ReadMessage(); err != nil {
			if !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
				t.Fatalf("after 41: %v, want a 1000 close", err)
			}
			break
		}
	}
}

// TestSocketIOClientRunsUnchanged drives the whole waiting-room flow with the real socket.io-client (npm, pinned
// in package.json), the way the original front end connects: with its default options (long polling, then the
// upgrade to a WebSocket), and with each transport alone. Timers run on the server's manual clock: the script
// prints "advance" when it waits for the next ping and "expire" when it waits for a token to run out, and the
// test moves the clock. The intervals announced to the client are long, so its own wall-clock timers never fire
// during the test.
func TestSocketIOClientRunsUnchanged(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is missing: `make test` installs nodejs and npm")
	}
	if _, err := os.Stat(filepath.Join("..", "node_modules", "socket.io-client", "package.json")); err != nil {
		t.Fatal("socket.io-client is missing: `make test` runs npm ci")
	}
	f := func(transport string) {
		t.Run(transport, func(t *testing.T) { socketIOClientFlow(t, node, transport) })
	}
	f("default")
	f("polling")
	f("websocket")
}

func socketIOClientFlow(t *testing.T, node, transport string) {
	cfg := baseConfig()
	cfg.PingInterval, cfg.IdleTimeout = 50*time.Second, 2*time.Minute
	zero := time.Duration(0)
	cfg.JWT.Leeway = &zero
	const daveLife = 30 * time.Second // inside the default expiry warning, and shorter than a ping interval
	ts := startServer(t, cfg)
	const room, cid = "Weekly sync", "c-sio"
	mod2 := user{name: "Mod2", email: "mod2@example.com", id: "u-mod2", moderator: true}
	tokens, _ := json.Marshal(map[string]string{
		"mod": mint(t, mod, room, cid), "mod2": mint(t, mod2, room, cid),
		"alice": mint(t, alice, room, cid), "bob": mint(t, bob, room, cid), "carol": mint(t, carol, room, cid),
		"dave":         sign(t, tokenClaimsFor(dave, room, cid, ts.clock.Now().Add(daveLife))),
		"aliceRefresh": sign(t, tokenClaimsFor(alice, room, cid, ts.clock.Now().Add(2*time.Hour))),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join("testdata", "socketio_client.mjs"))
	// More server time than the idle timeout: only answered pings keep the sockets open.
	heartbeats := int(cfg.IdleTimeout/cfg.PingInterval) + 1
	cmd.Env = append(os.Environ(),
		"SIO_URL=http://"+ts.addr, "ROOM="+room, "CID="+cid, "ORIGIN="+testOrigin, "TRANSPORT="+transport,
		"TOKENS="+string(tokens), "HEARTBEATS="+strconv.Itoa(heartbeats))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out []byte
	advanced, expired := 0, 0
	sc := bufio.NewScanner(stdout)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		switch sc.Text() {
		case "advance":
			ts.clock.Advance(cfg.PingInterval)
			advanced++
		case "expire":
			ts.clock.Advance(daveLife + time.Second)
			expired++
		default:
			out = append(out[:0], sc.Bytes()...)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("socket.io-client run failed: %v\n%s\n%s", err, out, stderr.Bytes())
	}
	if advanced != heartbeats || expired != 1 {
		t.Fatalf("the script waited for %d pings and %d expiries, want %d and 1", advanced, expired, heartbeats)
	}
	type exchange struct {
		Ack    json.RawMessage
		Answer json.RawMessage
	}
	var r struct {
		OK                 bool
		ModeratorConnected struct {
			Moderator bool   `json:"moderator"`
			Room      string `json:"room"`
		}
		InitialList struct{ Participants []any }
		Joins       []exchange
		AliceJoined struct{ Participant struct{ Email string } }
		LateList    struct{ Participants []struct{ Email string } }
		AcceptOne   exchange
		AliceGrant  struct {
			CanJoin bool `json:"can_join"`
		}
		Reject     exchange
		BobRefusal struct {
			CanJoin bool `json:"can_join"`
			Reason  string
		}
		AcceptAll             exchange
		CarolGrant, DaveGrant struct {
			CanJoin bool `json:"can_join"`
		}
		Chat         exchange
		ChatReceived []ChatMessage
		WrongRoom    exchange
		Refresh      exchange
		DaveWarned   map[string]any
		DaveReason   struct {
			Code   int
			Reason string
		}
		DaveDisconnect           string
		DaveReconnects           bool
		ConnectedAfterHeartbeats []bool
		FirstTransports          []string
		Transports               []string
		BobGrants                []any
	}
	if err := json.Unmarshal(bytes.TrimSpace(out), &r); err != nil || !r.OK {
		t.Fatalf("client output %s (%v)", out, err)
	}
	// An ack carries exactly the payload of the event that answers it.
	sameAsAnswer := func(name string, e exchange, wantSuccess bool) {
		t.Helper()
		var ack map[string]any
		if err := json.Unmarshal(e.Ack, &ack); err != nil || string(e.Ack) != string(e.Answer) {
			t.Fatalf("%s: ack %s, answer %s", name, e.Ack, e.Answer)
		}
		if s, ok := ack["success"]; ok && s != wantSuccess {
			t.Fatalf("%s: success %v, want %v", name, s, wantSuccess)
		}
	}
	for i, j := range r.Joins {
		sameAsAnswer("join "+strconv.Itoa(i), j, true)
	}
	sameAsAnswer("accept one", r.AcceptOne, true)
	sameAsAnswer("reject", r.Reject, true)
	sameAsAnswer("accept all", r.AcceptAll, true)
	sameAsAnswer("refresh", r.Refresh, true)
	sameAsAnswer("wrong room", r.WrongRoom, false)
	wantFirst, wantNow := transport, transport
	if transport == "default" {
		wantFirst, wantNow = "polling", "websocket"
	}
	var emails []string
	for _, p := range r.LateList.Participants {
		emails = append(emails, p.Email)
	}
	switch {
	case len(r.Joins) != 4:
		t.Fatalf("%d join acks, want 4", len(r.Joins))
	case !r.ModeratorConnected.Moderator || r.ModeratorConnected.Room != room:
		t.Fatalf("connected event %+v", r.ModeratorConnected)
	case len(r.InitialList.Participants) != 0:
		t.Fatalf("initial list %v", r.InitialList.Participants)
	case r.AliceJoined.Participant.Email != alice.email:
		t.Fatalf("moderator saw %q join, want the token's %q, not the payload's", r.AliceJoined.Participant.Email, alice.email)
	case strings.Join(emails, ",") != "alice@example.com,bob@example.com,carol@example.com,dave@example.com":
		t.Fatalf("late moderator's list %v", emails)
	case !r.AliceGrant.CanJoin || r.BobRefusal.CanJoin || r.BobRefusal.Reason != "not on the list":
		t.Fatalf("alice's grant %+v, bob's refusal %+v", r.AliceGrant, r.BobRefusal)
	case !strings.Contains(string(r.AcceptAll.Ack), "admitted 2 participants") || !r.CarolGrant.CanJoin || !r.DaveGrant.CanJoin:
		t.Fatalf("admit all: %s, carol %+v, dave %+v", r.AcceptAll.Ack, r.CarolGrant, r.DaveGrant)
	case len(r.BobGrants) != 1:
		t.Fatalf("bob received %v, want only his refusal", r.BobGrants)
	case string(r.Chat.Ack) != "null":
		t.Fatalf("chat ack %s, want one without arguments", r.Chat.Ack)
	case len(r.ChatReceived) != 3 || r.ChatReceived[0].From.Email != carol.email || r.ChatReceived[0].Text != "hello from carol":
		t.Fatalf("chat received %+v", r.ChatReceived)
	case !strings.Contains(string(r.WrongRoom.Ack), errWrongRoomName.Error()):
		t.Fatalf("wrong room ack %s", r.WrongRoom.Ack)
	case r.DaveWarned["expires_at"] == nil:
		t.Fatalf("dave's warning %v", r.DaveWarned)
	case r.DaveReason.Code != CloseTokenExpired || r.DaveReason.Reason != "token expired":
		t.Fatalf("dave was told %+v, want the token's expiry", r.DaveReason)
	case r.DaveDisconnect != "io server disconnect" || r.DaveReconnects:
		t.Fatalf("dave's disconnect %q, reconnecting %v: want the server's disconnect, and no reconnect", r.DaveDisconnect, r.DaveReconnects)
	case len(r.ConnectedAfterHeartbeats) != 5 || slices.Contains(r.ConnectedAfterHeartbeats, false):
		t.Fatalf("sockets after heartbeats %v: one side missed pings or pongs", r.ConnectedAfterHeartbeats)
	case slices.ContainsFunc(r.FirstTransports, func(s string) bool { return s != wantFirst }):
		t.Fatalf("opened on %v, want %s", r.FirstTransports, wantFirst)
	case slices.ContainsFunc(r.Transports, func(s string) bool { return s != wantNow }):
		t.Fatalf("running on %v, want %s", r.Transports, wantNow)
	}
}

func TestSocketIOPathCanBeTurnedOff(t *testing.T) {
	f := func(socketIOPath string, path string, want bool) {
		t.Helper()
		cfg := baseConfig()
		cfg.SocketIOPath = socketIOPath
		s, err := New(cfg, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.Handles([]byte(path)); got != want {
			t.Fatalf("socketio_path %q: Handles(%q) = %v, want %v", socketIOPath, path, got, want)
		}
	}
	f("", "/socket.io/", true)
	f("", "/ws", true)
	f("", "/socket.io", false)
	f("off", "/socket.io/", false)
	f("off", "off", false)
	f("off", "/ws", true)
	f("/sio/", "/sio/", true)
}

func TestSocketIONamespaceAbuseIsClosed(t *testing.T) {
	ts := startServer(t, baseConfig())
	ws := sioDial(t, ts, alice, "sio abuse", "c-a")
	if open := readText(t, ws); !strings.HasPrefix(open, "0{") {
		t.Fatalf("open packet %s", open)
	}
	// A namespace that is not a plain name is not echoed into a text frame.
	_ = ws.WriteMessage(websocket.TextMessage, []byte("40/\xff\"<x>,"))
	if got := readText(t, ws); got != `44/,{"message":"Invalid namespace"}` {
		t.Fatalf("odd namespace answered %q", got)
	}
	for range 30 {
		if err := ws.WriteMessage(websocket.TextMessage, []byte("40/x,")); err != nil {
			break
		}
	}
	for {
		if _, _, err := ws.ReadMessage(); err != nil {
			if !websocket.IsCloseError(err, websocket.ClosePolicyViolation) {
				t.Fatalf("after a namespace flood: %v, want a 1008 close", err)
			}
			return
		}
	}
}

func TestSocketIOAcks(t *testing.T) {
	ts := startServer(t, baseConfig())
	const room, cid = "acks", "c-ack"
	open := func(u user) *websocket.Conn {
		ws := sioDial(t, ts, u, room, cid)
		readText(t, ws)
		_ = ws.WriteMessage(websocket.TextMessage, []byte("40"))
		for !strings.HasPrefix(readText(t, ws), `42["connected"`) {
		}
		return ws
	}
	// until reads until a frame starting with prefix and returns it.
	until := func(ws *websocket.Conn, prefix string) string {
		t.Helper()
		for {
			if got := readText(t, ws); strings.HasPrefix(got, prefix) {
				return got
			}
		}
	}
	m := open(mod)
	b := open(bob)
	_ = b.WriteMessage(websocket.TextMessage, []byte(`420["join_waiting_room",{}]`))
	if got := until(b, "430"); got != `430[{"success":true,"waiting":true}]` {
		t.Fatalf("join ack %s", got)
	}
	_ = m.WriteMessage(websocket.TextMessage, []byte(`425["reject_participant",{"email":"bob@example.com"}]`))
	resp := until(m, `42["reject_participant_response",`)
	if ack := until(m, "435"); ack != "435["+strings.TrimSuffix(strings.TrimPrefix(resp, `42["reject_participant_response",`), "]")+"]" {
		t.Fatalf("reject ack %s for %s", ack, resp)
	}
	// A join the hub refuses is acked with the refusal.
	_ = b.WriteMessage(websocket.TextMessage, []byte(`421["join_waiting_room",{}]`))
	if got := until(b, "431"); got != `431[{"event":"join_waiting_room","message":"`+ErrRejected.Error()+`"}]` {
		t.Fatalf("refused join ack %s", got)
	}
	// A moderator's join is refused by the hub too.
	_ = m.WriteMessage(websocket.TextMessage, []byte(`426["join_waiting_room"]`))
	if got := until(m, "436"); !strings.Contains(got, ErrModerator.Error()) {
		t.Fatalf("moderator's join ack %s", got)
	}
	// Bad data is acked with the error.
	_ = m.WriteMessage(websocket.TextMessage, []byte(`427["accept_participant","x"]`))
	if got := until(m, "437"); got != `437[{"message":"bad request","success":false}]` {
		t.Fatalf("bad accept ack %s", got)
	}
	// An ack id too long for the client's counter is no ack id: the event is answered, not acked.
	_ = m.WriteMessage(websocket.TextMessage, []byte(`421234567890123456789["leave_waiting_room"]`))
	if got := readText(t, m); !strings.HasPrefix(got, `42["error"`) {
		t.Fatalf("after a long ack id: %s", got)
	}
}

// TestSocketIOServerDisconnectTellsWhy: a session the server ends for good gets the reason and Socket.IO's
// disconnect before the close frame, so that socket.io-client does not reconnect with a cookie that will be
// refused.
func TestSocketIOServerDisconnectTellsWhy(t *testing.T) {
	cfg := baseConfig()
	zero := time.Duration(0)
	cfg.JWT.Leeway = &zero
	cfg.TokenExpiryWarning = time.Hour
	cfg.MessageRate, cfg.MessageBurst, cfg.MaxStrikes = 1, 2, 2
	ts := startServer(t, cfg)
	const room, cid = "ending", "c-end"
	connect := func(tok string) *websocket.Conn {
		h := http.Header{"Origin": {testOrigin}, "Cookie": {"socket_io_token_" + cid + "=" + tok}}
		ws, _, err := (&websocket.Dialer{HandshakeTimeout: waitFor}).Dial(
			"ws://"+ts.addr+"/socket.io/?EIO=4&transport=websocket&room="+url.QueryEscape(room), h)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ws.Close() })
		_ = ws.SetReadDeadline(time.Now().Add(waitFor))
		readText(t, ws)
		_ = ws.WriteMessage(websocket.TextMessage, []byte("40"))
		for !strings.HasPrefix(readText(t, ws), `42["connected"`) {
		}
		return ws
	}
	// ended reads up to the disconnect and checks the reason, the disconnect and the close frame, in that order.
	ended := func(ws *websocket.Conn, code int, reason string) {
		t.Helper()
		want := `42["server_disconnect",{"code":` + strconv.Itoa(code) + `,"reason":"` + reason + `"}]`
		for got := ""; got != want; {
			if got = readText(t, ws); strings.HasPrefix(got, `42["server_disconnect"`) && got != want {
				t.Fatalf("told %s, want %s", got, want)
			}
		}
		if got := readText(t, ws); got != "41" {
			t.Fatalf("after the reason: %s, want 41", got)
		}
		if _, _, err := ws.ReadMessage(); !websocket.IsCloseError(err, code) {
			t.Fatalf("then %v, want a %d close", err, code)
		}
	}
	expiring := connect(sign(t, tokenClaimsFor(alice, room, cid, ts.clock.Now().Add(2*time.Second))))
	flooding := connect(mint(t, bob, room, cid))
	ts.clock.Advance(3 * time.Second)
	ended(expiring, CloseTokenExpired, "token expired")
	for range 10 {
		if flooding.WriteMessage(websocket.TextMessage, []byte(`42["chat_message",{"text":"spam"}]`)) != nil {
			break
		}
	}
	ended(flooding, websocket.ClosePolicyViolation, "rate limit exceeded")
	postConference(t, ts, `{"room":"ending","content_id":"c-end"}`, 200)
	ending := connect(mint(t, carol, room, cid))
	conferencesAPI(t, ts, "DELETE", `{"room":"ending"}`, 200)
	ended(ending, CloseConferenceEnded, "conference ended")
}

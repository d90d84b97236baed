package signaling

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/golang-jwt/jwt/v5"
	"github.com/valyala/fasthttp"

	"github.com/hlsedge/hlsedge/authz/token"
)

const (
	testSecret = "0123456789abcdef0123456789abcdef-test"
	testIss    = "conference-backend"
	testOrigin = "https://meet.example.com"
	// waitFor bounds every wait for an event (and the clients' timeouts): it only turns a hang into a failure,
	// so it is far above what a dial, a Redis re-sync or a socket connecting while Redis is down (which waits
	// out the fleet's 1 s read timeout) takes on two busy cores. 5 s left them little room.
	waitFor = 30 * time.Second
)

// testServer is a real fasthttp server on loopback with the signaling endpoints mounted as the edge mounts them.
// Its timers run on a manual clock: pings, idle and expiry closes and reconnect grace happen when the test
// advances it, never because the machine was slow.
type testServer struct {
	t     *testing.T
	sig   *Server
	addr  string
	clock *manualClock

	// For the next dials: a small event buffer makes a client that stops reading; noPong one that never
	// answers pings.
	eventBuf int
	noPong   bool

	// hijacked hears of every connection the HTTP server handed over: an upgrade, or a polling GET that waits.
	hijacked chan struct{}
}

func baseConfig() Config {
	return Config{
		AllowedOrigins: []string{testOrigin, "https://*.example.org"},
		JWT:            token.JWTConfig{Secret: testSecret, Issuer: testIss},
	}
}

// startServer runs the signaling server the way the edge mounts it: sockets detached from fasthttp.
func startServer(t *testing.T, cfg Config) *testServer {
	t.Helper()
	return startServerMode(t, cfg, true)
}

// startServerMode with detach false keeps sockets on fasthttp's hijack goroutine, as on a server that was not
// given to DetachSockets.
func startServerMode(t *testing.T, cfg Config, detach bool) *testServer {
	t.Helper()
	return startServerOn(t, cfg, detach, newManualClock())
}

// startServerOn runs a detached or attached server on clk with opts, for tests that share the clock with a hub
// of their own.
func startServerOn(t *testing.T, cfg Config, detach bool, clk *manualClock, opts ...Option) *testServer {
	t.Helper()
	sig, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), nil, append([]Option{withClock(clk)}, opts...)...)
	if err != nil {
		t.Fatalf("new: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hijacked := make(chan struct{}, 64)
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			switch {
			case sig.Handles(ctx.Path()):
				sig.ServeWS(ctx)
			case string(ctx.Path()) == "/api/conferences":
				sig.ServeConferencesAPI(ctx)
			default:
				ctx.SetStatusCode(http.StatusNotFound)
			}
		},
		ReadBufferSize: 16 << 10,
		ConnState: func(_ net.Conn, st fasthttp.ConnState) {
			if st == fasthttp.StateHijacked {
				notify(hijacked)
			}
		},
	}
	if detach {
		sig.DetachSockets(srv)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		sig.Close()
		_ = srv.Shutdown()
	})
	return &testServer{t: t, sig: sig, addr: ln.Addr().String(), clock: clk, hijacked: hijacked}
}

type user struct {
	name, email, id string
	moderator       bool
}

// tokenClaimsFor builds the seed's claim set for a user.
func tokenClaimsFor(u user, room, contentID string, exp time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"context": map[string]any{
			"user":  map[string]any{"name": u.name, "email": u.email, "id": u.id, "roles": []string{"user"}, "pass_code_id": "-1", "avatar": "https://a.example/" + u.id + ".png"},
			"group": u.id,
		},
		"sub":        "socketio-sub",
		"aud":        "socketio",
		"iss":        testIss,
		"room":       room,
		"content_id": contentID,
		"moderator":  u.moderator,
		"exp":        exp.Unix(),
	}
}

func sign(t testing.TB, c jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mint(t testing.TB, u user, room, contentID string) string {
	return sign(t, tokenClaimsFor(u, room, contentID, time.Now().Add(time.Hour)))
}

// client is a real WebSocket client; a goroutine reads every event into a channel.
type client struct {
	t       *testing.T
	ws      *websocket.Conn
	events  chan event
	pings   chan struct{} // a ping from the server arrived (and was answered, unless noPong)
	pongs   chan struct{} // the server answered one of heartbeat's pings
	done    chan struct{}
	mu      sync.Mutex
	closeE  *websocket.CloseError
	seen    []event // everything received, in order
	pending []event // received but not yet matched by expect
}

type event struct {
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
}

func (e event) field(name string) any {
	var m map[string]any
	_ = json.Unmarshal(e.Data, &m)
	return m[name]
}

type dialOpt func(h http.Header, q *string)

func withCookie(name, val string) dialOpt {
	return func(h http.Header, _ *string) { h.Add("Cookie", name+"="+val) }
}
func withBearer(tok string) dialOpt {
	return func(h http.Header, _ *string) { h.Set("Authorization", "Bearer "+tok) }
}
func withOrigin(o string) dialOpt { return func(h http.Header, _ *string) { h.Set("Origin", o) } }
func withRoomHeader(room string) dialOpt {
	return func(h http.Header, q *string) { h.Set("X-Room-Name", room); *q = "" }
}

// dial opens a socket for room with opts; it returns the HTTP status and body on refusal.
func (ts *testServer) dial(room string, opts ...dialOpt) (*client, int, string) {
	ts.t.Helper()
	h := http.Header{"Origin": {testOrigin}}
	q := "?room=" + urlQueryEscape(room)
	for _, o := range opts {
		o(h, &q)
	}
	d := websocket.Dialer{HandshakeTimeout: waitFor}
	ws, resp, err := d.Dial("ws://"+ts.addr+"/ws"+q, h)
	if err != nil {
		if resp == nil {
			ts.t.Fatalf("dial: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		return nil, resp.StatusCode, string(body)
	}
	n := 4096
	if ts.eventBuf > 0 {
		n = ts.eventBuf
	}
	c := &client{t: ts.t, ws: ws, events: make(chan event, n), pings: make(chan struct{}, 64), pongs: make(chan struct{}, 64), done: make(chan struct{})}
	noPong := ts.noPong
	// The handlers run on the read goroutine: the pong is written before the ping is reported.
	ws.SetPingHandler(func(data string) error {
		if !noPong {
			if err := ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(waitFor)); err != nil {
				return err
			}
		}
		notify(c.pings)
		return nil
	})
	ws.SetPongHandler(func(string) error { notify(c.pongs); return nil })
	go c.readLoop()
	ts.t.Cleanup(func() { _ = ws.Close() })
	return c, http.StatusSwitchingProtocols, ""
}

// connect dials with a cookie token for u and waits for `connected`.
func (ts *testServer) connect(u user, room, contentID string) *client {
	ts.t.Helper()
	c, st, body := ts.dial(room, withCookie("socket_io_token_"+contentID, mint(ts.t, u, room, contentID)))
	if c == nil {
		ts.t.Fatalf("connect %s: %d %s", u.email, st, body)
	}
	c.expect("connected")
	return c
}

// joinWaiting puts c in the waiting room and waits for its answer, and for each moderator in mods to be told.
func (c *client) joinWaiting(mods ...*client) {
	c.t.Helper()
	c.send("join_waiting_room", nil)
	c.expect("join_waiting_room_response")
	for _, m := range mods {
		m.expect("waiting_participant_joined")
	}
}

func urlQueryEscape(s string) string {
	return strings.NewReplacer("%", "%25", " ", "%20", "&", "%26", "#", "%23", "+", "%2B").Replace(s)
}

func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// heartbeat waits for the server's ping, which c answers, and then until the server has read the answer: c pings
// the server behind its pong, and the server reads frames in order before it answers.
func (c *client) heartbeat() {
	c.t.Helper()
	c.await(c.pings, "a ping from the server")
	if err := c.ws.WriteControl(websocket.PingMessage, []byte("barrier"), time.Now().Add(waitFor)); err != nil {
		c.t.Fatalf("ping the server: %v", err)
	}
	c.await(c.pongs, "the server's pong")
}

func (c *client) await(ch chan struct{}, what string) {
	c.t.Helper()
	select {
	case <-ch:
	case <-c.done:
		c.t.Fatalf("socket closed (%v) while waiting for %s", c.closeErr(), what)
	case <-time.After(waitFor):
		c.t.Fatalf("no %s within %v", what, waitFor)
	}
}

func (c *client) readLoop() {
	defer close(c.done)
	for {
		_, b, err := c.ws.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				c.mu.Lock()
				c.closeE = ce
				c.mu.Unlock()
			}
			return
		}
		var e event
		if err := json.Unmarshal(b, &e); err != nil {
			c.t.Errorf("server sent a frame that is not an event: %q", b)
			return
		}
		c.events <- e
	}
}

func (c *client) send(ev string, data any) {
	c.t.Helper()
	b, _ := json.Marshal(map[string]any{"event": ev, "data": data})
	if err := c.ws.WriteMessage(websocket.TextMessage, b); err != nil {
		c.t.Fatalf("send %s: %v", ev, err)
	}
}

func (c *client) sendRaw(b string) {
	c.t.Helper()
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(b)); err != nil {
		c.t.Fatalf("send raw: %v", err)
	}
}

// expect returns the first unmatched event with that name, waiting for it if needed. Events of other names stay
// pending for later expects, so tests need not know how the server orders unrelated events.
func (c *client) expect(name string) event {
	c.t.Helper()
	for i, e := range c.pending {
		if e.Event == name {
			c.pending = append(c.pending[:i:i], c.pending[i+1:]...)
			return e
		}
	}
	timeout := time.After(waitFor)
	for {
		var e event
		select {
		case e = <-c.events:
		case <-c.done:
			select {
			case e = <-c.events: // what arrived before the close
			default:
				c.t.Fatalf("socket closed (%v) while waiting for %q; seen %v", c.closeErr(), name, c.names())
			}
		case <-timeout:
			c.t.Fatalf("no %q within %v; seen %v", name, waitFor, c.names())
		}
		c.seen = append(c.seen, e)
		if e.Event == name {
			return e
		}
		c.pending = append(c.pending, e)
	}
}

// drain moves every event already received into seen and pending.
func (c *client) drain() {
	for {
		select {
		case e := <-c.events:
			c.seen = append(c.seen, e)
			c.pending = append(c.pending, e)
		default:
			return
		}
	}
}

// discard drops every event already received.
func (c *client) discard() {
	c.pending = nil
	for {
		select {
		case <-c.events:
		default:
			return
		}
	}
}

func (c *client) names() []string {
	out := make([]string, 0, len(c.seen))
	for _, e := range c.seen {
		out = append(out, e.Event)
	}
	return out
}

func (c *client) saw(name string) bool {
	for _, e := range c.seen {
		if e.Event == name {
			return true
		}
	}
	return false
}

// waitClosed waits for the server's close frame and returns it.
func (c *client) waitClosed() *websocket.CloseError {
	c.t.Helper()
	select {
	case <-c.done:
	case <-time.After(waitFor):
		c.t.Fatalf("socket not closed within %v", waitFor)
	}
	return c.closeErr()
}

func (c *client) closeErr() *websocket.CloseError {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeE
}

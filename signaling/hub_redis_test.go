package signaling

import (
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hlsedge/hlsedge/internal/fleet"
	"github.com/hlsedge/hlsedge/internal/fleet/fleettest"
)

// Redis hub tests run real redis-servers (fleettest) and real signaling servers on loopback. They wait on
// events: sockets' events, fleet health changes and the hub's resync counter, never on intervals.

func testLog() *slog.Logger {
	if testing.Verbose() && os.Getenv("HUB_DEBUG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// newFleetMember connects a fleet member to srv and waits until it is healthy. Its pings are frequent so that
// a killed Redis is noticed quickly; the tests still wait on the health change, not on the interval.
func newFleetMember(t testing.TB, srv *fleettest.Server, node string) *fleet.Client {
	t.Helper()
	fc, err := fleet.New(fleet.Config{Address: srv.Addr, PingInterval: 20 * time.Millisecond, WriteTimeout: time.Minute}, node, testLog(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fc.Close)
	awaitHealth(t, fc, false)
	return fc
}

// awaitHealth waits, on health-change events, until fc is degraded or not.
func awaitHealth(t testing.TB, fc *fleet.Client, degraded bool) {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		ch := fc.HealthChanged()
		if fc.Degraded() == degraded {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("%s: degraded never became %v: %+v", fc.Node(), degraded, fc.Health())
		}
	}
}

// newTestRedisHub is a Redis hub for one node, closed when the test ends (before its fleet member, after the
// servers started later).
func newTestRedisHub(t testing.TB, srv *fleettest.Server, node string, cfg Config, clk clock) *RedisHub {
	t.Helper()
	h := newRedisHub(newFleetMember(t, srv, node), cfg, testLog(), nil, clk)
	t.Cleanup(h.Close)
	return h
}

func redisHubs(srv *fleettest.Server) twoHubs {
	return func(t *testing.T, cfg Config, clk *manualClock) (Hub, Hub) {
		return newTestRedisHub(t, srv, "node-a", cfg, clk), newTestRedisHub(t, srv, "node-b", cfg, clk)
	}
}

// redisNodes are two signaling servers on loopback, each with its Redis hub on one redis-server, on one manual
// clock.
type redisNodes struct {
	srv    *fleettest.Server
	clk    *manualClock
	ha, hb *RedisHub
	na, nb *testServer
}

// startRedisNodes starts two nodes with cfg. hubA, when set, wraps node A's hub, for a test to observe it.
func startRedisNodes(t *testing.T, cfg Config, hubA func(Hub) Hub) *redisNodes {
	t.Helper()
	n := &redisNodes{srv: fleettest.Start(t), clk: newManualClock()}
	n.ha = newTestRedisHub(t, n.srv, "node-a", cfg, n.clk)
	n.hb = newTestRedisHub(t, n.srv, "node-b", cfg, n.clk)
	a := Hub(n.ha)
	if hubA != nil {
		a = hubA(a)
	}
	n.na = startServerOn(t, cfg, true, n.clk, WithHub(a))
	n.nb = startServerOn(t, cfg, true, n.clk, WithHub(n.hb))
	return n
}

func TestTwoNodesShareRedis(t *testing.T) {
	srv := fleettest.Start(t)
	testTwoNodes(t, redisHubs(srv))
	assertNoTokens(t, srv)
}

// awaitResync waits until h finished a resync after the n-th.
func awaitResync(t *testing.T, h *RedisHub, n uint64) {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		got, ch := h.resyncs.get()
		if got > n {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("no resync after %d within %v", n, waitFor)
		}
	}
}

// assertNoTokens checks every key, field and value in Redis: no token (a JWT starts with "eyJ"), no secret.
func assertNoTokens(t *testing.T, srv *fleettest.Server) {
	t.Helper()
	keys := srv.MustDo("KEYS", "*")
	if keys == "" {
		t.Fatal("Redis is empty: the check would prove nothing")
	}
	for _, k := range strings.Split(keys, "\n") {
		var dump string
		switch typ := srv.MustDo("TYPE", k); typ {
		case "string":
			dump = srv.MustDo("GET", k)
		case "hash":
			dump = srv.MustDo("HGETALL", k)
		case "zset":
			dump = srv.MustDo("ZRANGE", k, "0", "-1")
		case "list":
			dump = srv.MustDo("LRANGE", k, "0", "-1")
		case "set":
			dump = srv.MustDo("SMEMBERS", k)
		case "none":
			// Gone since KEYS: a socket still closing released it.
		default:
			t.Fatalf("key %q of unexpected type %s", k, typ)
		}
		for _, s := range []string{k, dump} {
			if strings.Contains(s, "eyJ") || strings.Contains(s, testSecret) {
				t.Fatalf("Redis holds a token or the secret under %q: %q", k, s)
			}
		}
	}
}

// A participant who reconnects to another node inside the grace period keeps their place: no node tells the
// moderators they left, and the moderator's admission reaches the new socket.
func TestRedisHubReconnectOnAnotherNodeKeepsPlace(t *testing.T) {
	cfg := baseConfig()
	cfg.ReconnectGrace = 10 * time.Second
	obs := &observedHub{disconnected: make(chan Session, 16)}
	n := startRedisNodes(t, cfg, func(h Hub) Hub { obs.Hub = h; return obs })
	na, nb := n.na, n.nb
	const room, cid = "r", "c"

	m := na.connect(mod, room, cid)
	m.expect("waiting_room_list")
	a := na.connect(alice, room, cid)
	a.joinWaiting(m)
	_ = a.ws.Close()
	obs.awaitDisconnect(t, alice)

	a2 := nb.connect(alice, room, cid)
	a2.joinWaiting()
	// Past A's grace period: A's timer and both nodes' sweeps find B holding the place.
	n.clk.Advance(cfg.ReconnectGrace)
	m2 := nb.connect(user{name: "M2", email: "m2@example.com", id: "m2", moderator: true}, room, cid)
	if got := strings.Join(participants(m2.expect("waiting_room_list")), ","); got != alice.email {
		t.Fatalf("list after reconnecting elsewhere = %q", got)
	}
	barrier(t, m, "sync", a2, m2)
	if m.saw("waiting_participant_left") || countSeen(m, "waiting_participant_joined") != 1 {
		t.Fatalf("moderator told of a departure or a second arrival: %v", m.names())
	}
	m.send("accept_participant", map[string]any{"email": alice.email})
	if g := a2.expect("join_room_" + room); g.field("can_join") != true {
		t.Fatalf("grant %s", g.Data)
	}
	if l := m2.expect("waiting_participant_left"); l.field("reason") != leftAdmitted {
		t.Fatalf("left %s", l.Data)
	}
}

// A node that dies (its process gone: nothing is cleaned up) leaves nothing behind for longer than a lease: its
// waiting participants leave the moderators' lists and its users' sockets stop counting.
func TestRedisHubDeadNodeLeasesLapse(t *testing.T) {
	cfg := baseConfig()
	cfg.MaxConnsPerUser = 1
	n := startRedisNodes(t, cfg, nil)
	na, nb, rb := n.na, n.nb, n.hb
	const room, cid = "r", "c"
	m := nb.connect(mod, room, cid)
	m.expect("waiting_room_list")
	a := na.connect(alice, room, cid)
	a.joinWaiting(m)
	if _, st, _ := nb.dial(room, withCookie("socket_io_token_"+cid, mint(t, alice, room, cid))); st != 403 {
		t.Fatalf("alice's second socket on another node: %d, want 403 (limit 1)", st)
	}

	// Node A dies: its hub stops and its member loses Redis before its sockets go, so nothing is released.
	ra := n.ha
	ra.Close()
	ra.fc.Close()
	na.sig.Close()
	<-a.done

	barrier(t, m, "before the lease ends")
	if m.saw("waiting_participant_left") {
		t.Fatal("a dead node's participant left before the lease ended")
	}
	if _, st, _ := nb.dial(room, withCookie("socket_io_token_"+cid, mint(t, alice, room, cid))); st != 403 {
		t.Fatalf("alice's socket on the dead node stopped counting before its lease ended: %d", st)
	}
	resyncs, _ := rb.resyncs.get()
	n.clk.Advance(hubLease)
	if l := m.expect("waiting_participant_left"); l.field("email") != alice.email || l.field("reason") != leftDisconnected {
		t.Fatalf("left %s", l.Data)
	}
	if got, _ := rb.resyncs.get(); got != resyncs {
		t.Fatal("a resync ran: the lease lapsing proved nothing")
	}
	nb.connect(alice, room, cid)
}

// Garbage on a conference's channel is counted and dropped; the conference carries on.
func TestRedisHubDropsUndecodableEvents(t *testing.T) {
	n := startRedisNodes(t, baseConfig(), nil)
	na, nb := n.na, n.nb
	postConference(t, na, `{"room":"r","content_id":"c","waiting_room":false}`, 200)
	p := na.connect(alice, "r", "c")
	p.send("join_waiting_room", nil)
	p.expect("join_room_r")
	q := nb.connect(bob, "r", "c")
	q.send("join_waiting_room", nil)
	q.expect("join_room_r")

	ch := n.ha.fc.ConfKey("r", "c", "ch")
	for _, garbage := range []string{
		`{not json`,
		`{"from":"x","d":[{"to":99}]}`,
		`{"from":"x","d":[{"to":2,"ev":"chat_message"}]}`,
		`{"from":"x","d":[null]}`,
	} {
		if got := n.srv.MustDo("PUBLISH", ch, garbage); got != "2" {
			t.Fatalf("garbage reached %s subscribers, want both nodes", got)
		}
	}
	// Redis delivers a connection's messages in order: a chat from the other node arrives after the garbage
	// was handled.
	barrier(t, q, "still talking", p)
	barrier(t, p, "still talking too", q)
	for _, h := range []*RedisHub{n.ha, n.hb} {
		if st := h.fc.Stats(); st.DecodeErrors != 4 {
			t.Fatalf("%s counted %d undecodable events, want 4", h.fc.Node(), st.DecodeErrors)
		}
	}
}

func countSeen(c *client, name string) int {
	n := 0
	for _, e := range c.seen {
		if e.Event == name {
			n++
		}
	}
	return n
}

// Redis is killed in the middle of a conference spread over two nodes and comes back empty. Meanwhile each node
// serves its own members: a moderator admits a participant on their node, chat reaches the members on the
// sender's node. Once both nodes re-synced, the fleet is whole again: the waiting participant on the other node
// is listed, decisions and chat cross nodes, the decision and chat taken while cut off are in Redis, and the
// per-user limit counts every node's sockets.
func TestRedisHubSurvivesRedisRestart(t *testing.T) {
	cfg := baseConfig()
	cfg.MaxConnsPerUser = 2
	n := startRedisNodes(t, cfg, nil)
	srv, ra, rb, na, nb := n.srv, n.ha, n.hb, n.na, n.nb
	const room, cid = "fleet", "c-f"
	postConference(t, na, `{"room":"fleet","content_id":"c-f"}`, 200)

	m := na.connect(mod, room, cid)
	m.expect("waiting_room_list")
	x := na.connect(alice, room, cid)
	x.send("join_waiting_room", nil)
	m.expect("waiting_participant_joined")
	m.send("accept_participant", map[string]any{"email": alice.email})
	x.expect("join_room_" + room)
	p := nb.connect(bob, room, cid)
	p.joinWaiting(m)
	barrier(t, m, "before", x, p)
	na0, _ := ra.resyncs.get()
	nb0, _ := rb.resyncs.get()

	srv.Kill()
	awaitHealth(t, ra.fc, true)
	awaitHealth(t, rb.fc, true)

	// Node A serves its own: a new socket (the registry as last seen, the limit counted here), the waiting room
	// and its moderator's decision, chat among its members.
	r := na.connect(carol, room, cid)
	r.send("join_waiting_room", nil)
	r.expect("join_waiting_room_response")
	if j := m.expect("waiting_participant_joined"); !strings.Contains(string(j.Data), carol.email) {
		t.Fatalf("joined %s", j.Data)
	}
	m.send("accept_participant", map[string]any{"email": carol.email})
	if resp := m.expect("accept_participant_response"); resp.field("success") != true {
		t.Fatalf("accept while Redis is down: %s", resp.Data)
	}
	if g := r.expect("join_room_" + room); g.field("can_join") != true {
		t.Fatalf("grant %s", g.Data)
	}
	barrier(t, x, "during", m, r)

	srv.Restart()
	awaitResync(t, ra, na0)
	awaitResync(t, rb, nb0)

	// B's waiting participant is in the fleet's list again; A's chat from the outage is in the history.
	m2 := na.connect(user{name: "M2", email: "m2@example.com", id: "m2", moderator: true}, room, cid)
	if got := strings.Join(participants(m2.expect("waiting_room_list")), ","); got != bob.email {
		t.Fatalf("list after the restart = %q, want %s", got, bob.email)
	}
	if h := m2.expect("chat_history"); !strings.Contains(string(h.Data), `"during"`) {
		t.Fatalf("history after the restart %s, want the chat sent while Redis was down", h.Data)
	}
	// A moderator on A admits the participant on B; chat crosses nodes again.
	m.send("accept_participant", map[string]any{"email": bob.email})
	if g := p.expect("join_room_" + room); g.field("can_join") != true {
		t.Fatalf("grant across nodes after the restart %s", g.Data)
	}
	barrier(t, p, "after", m, x, r, m2)
	p.drain()
	for _, e := range p.seen {
		if e.Event == "chat_message" && e.field("text") == "during" {
			t.Fatalf("B's member got %s: chat while Redis was down crossed nodes", e.Data)
		}
	}
	// The admission taken on A while cut off stands on B, and carol's socket on A counts on B again.
	r2 := nb.connect(carol, room, cid)
	r2.send("join_waiting_room", nil)
	if g := r2.expect("join_room_" + room); g.field("can_join") != true {
		t.Fatalf("decision taken during the outage not honoured on the other node: %s", g.Data)
	}
	if _, st, body := nb.dial(room, withCookie("socket_io_token_"+cid, mint(t, carol, room, cid))); st != 403 || !strings.Contains(body, ErrTooManyUser.Error()) {
		t.Fatalf("third socket for one user after the restart: %d %s", st, body)
	}
	assertNoTokens(t, srv)
}

// Decisions and registry changes made on one node reach sockets on the other: a rejection, and the reconnect it
// turns away; a participant with a tab on each node who leaves from one; turning the waiting room off; and a new
// run replacing the conference.
func TestRedisHubDecisionsAndRegistryAcrossNodes(t *testing.T) {
	n := startRedisNodes(t, baseConfig(), nil)
	na, nb := n.na, n.nb
	const room, cid = "r", "c1"
	postConference(t, na, `{"room":"r","content_id":"c1"}`, 200)
	m := na.connect(mod, room, cid)
	m.expect("waiting_room_list")

	// Bob waits on B and is turned away from A; his new socket on A is turned away at once.
	b := nb.connect(bob, room, cid)
	b.send("join_waiting_room", nil)
	m.expect("waiting_participant_joined")
	m.send("reject_participant", map[string]any{"email": bob.email, "reason": "not today"})
	if r := m.expect("reject_participant_response"); r.field("success") != true {
		t.Fatalf("reject %s", r.Data)
	}
	if g := b.expect("join_room_" + room); g.field("can_join") != false || g.field("reason") != "not today" {
		t.Fatalf("rejection on B %s", g.Data)
	}
	if l := m.expect("waiting_participant_left"); l.field("reason") != leftRejected {
		t.Fatalf("left %s", l.Data)
	}
	b2 := na.connect(bob, room, cid)
	b2.send("join_waiting_room", nil)
	if g := b2.expect("join_room_" + room); g.field("can_join") != false {
		t.Fatalf("rejected participant's new socket %s", g.Data)
	}

	// Carol waits with a tab on each node: one place; leaving from B takes both tabs out, on both nodes.
	c1 := na.connect(carol, room, cid)
	c2 := nb.connect(carol, room, cid)
	c1.joinWaiting(m)
	c2.joinWaiting()
	c2.send("leave_waiting_room", nil)
	if l := m.expect("waiting_participant_left"); l.field("email") != carol.email || l.field("reason") != leftLeft {
		t.Fatalf("left %s", l.Data)
	}
	barrier(t, m, "after carol left")
	if countSeen(m, "waiting_participant_joined") != 2 {
		t.Fatalf("carol's second tab was announced again: %v", m.names())
	}
	c1.send("chat_message", map[string]any{"text": "still here?"})
	if e := c1.expect("error"); e.field("message") != ErrNotJoined.Error() {
		t.Fatalf("chat from a tab that left on the other node: %s", e.Data)
	}

	// Dave waits on B; turning the waiting room off, through B, admits him.
	d := nb.connect(dave, room, cid)
	d.send("join_waiting_room", nil)
	m.expect("waiting_participant_joined")
	postConference(t, nb, `{"room":"r","content_id":"c1","waiting_room":false}`, 200)
	if g := d.expect("join_room_" + room); g.field("can_join") != true {
		t.Fatalf("grant when the waiting room was turned off %s", g.Data)
	}
	if l := m.expect("waiting_participant_left"); l.field("email") != dave.email || l.field("reason") != leftAdmitted {
		t.Fatalf("left %s", l.Data)
	}

	// A new run replaces the conference through B: every socket of the old run ends, on both nodes.
	if body := postConference(t, nb, `{"room":"r","content_id":"c2"}`, 200); !strings.Contains(string(body), `"ended_sockets":6`) {
		t.Fatalf("replace %s, want 6 sockets ended", body)
	}
	for _, c := range []*client{m, b, b2, c1, c2, d} {
		if e := c.waitClosed(); e == nil || e.Code != CloseConferenceEnded || e.Text != conferenceReplacedReason {
			t.Fatalf("close %v", e)
		}
	}
	assertNoTokens(t, n.srv)
}

package signaling

import (
	"strings"
	"testing"
	"time"
)

// TestTwoNodesShareOneHub runs two servers on one memory hub, as the edges of a fleet share a Redis hub: what
// one node decides reaches sockets on the other only through the hub's deliveries, and limits are the hub's.
// TestTwoNodesShareRedis runs the same scenario on two Redis hubs.
func TestTwoNodesShareOneHub(t *testing.T) {
	testTwoNodes(t, func(t *testing.T, cfg Config, clk *manualClock) (a, b Hub) {
		h := newMemHub(cfg.ReconnectGrace, 50, true, clk)
		t.Cleanup(h.Close) // after both servers: cleanups run last registered first
		return h, h
	})
}

// twoHubs returns the hubs of two nodes built from cfg on clk, closed when the test ends; one shared hub is
// returned twice.
type twoHubs func(t *testing.T, cfg Config, clk *manualClock) (a, b Hub)

func testTwoNodes(t *testing.T, newHubs twoHubs) {
	cfg := baseConfig()
	cfg.MaxConnsPerUser = 2
	const grace = 10 * time.Second // shorter than a ping interval: advancing by it times nobody out
	cfg.ReconnectGrace = grace
	clk := newManualClock()
	a, b := newHubs(t, cfg, clk)
	disconnected := make(chan Session, 64)
	hub := &observedHub{Hub: a, disconnected: disconnected}
	na := startServerOn(t, cfg, true, clk, WithHub(hub))
	nb := startServerOn(t, cfg, true, clk, WithHub(&observedHub{Hub: b, disconnected: disconnected}))
	const room, cid = "fleet", "c-f"

	// The registry is shared: announced on A, running on B.
	postConference(t, na, `{"room":"fleet","content_id":"c-f"}`, 200)
	m := nb.connect(mod, room, cid)
	if got := participants(m.expect("waiting_room_list")); len(got) != 0 {
		t.Fatalf("initial list = %v, want empty", got)
	}
	p := na.connect(alice, room, cid)
	p.send("join_waiting_room", nil)
	p.expect("join_waiting_room_response")
	if j := m.expect("waiting_participant_joined"); !strings.Contains(string(j.Data), alice.email) {
		t.Fatalf("moderator on B told %s, want %s", j.Data, alice.email)
	}
	q := nb.connect(bob, room, cid)
	q.send("join_waiting_room", nil)
	q.expect("join_waiting_room_response")
	m.expect("waiting_participant_joined")

	// A moderator on B admits a participant on A: the grant reaches A's socket, and no other.
	m.send("accept_participant", map[string]any{"email": alice.email})
	if r := m.expect("accept_participant_response"); r.field("success") != true {
		t.Fatalf("accept response %s", r.Data)
	}
	if l := m.expect("waiting_participant_left"); l.field("email") != alice.email || l.field("reason") != "admitted" {
		t.Fatalf("left %s", l.Data)
	}
	if g := p.expect("join_room_" + room); g.field("can_join") != true {
		t.Fatalf("grant on A %s", g.Data)
	}
	// Chat from A reaches the members on both nodes.
	p.send("chat_message", map[string]any{"text": "from node A"})
	for _, c := range []*client{m, p, q} {
		if e := c.expect("chat_message"); e.field("text") != "from node A" {
			t.Fatalf("chat %s", e.Data)
		}
	}
	if m.saw("join_room_"+room) || q.saw("join_room_"+room) {
		t.Fatal("a grant reached a socket other than the admitted participant's")
	}

	// A user's sockets count on every node.
	na.connect(carol, "other", "c-o")
	nb.connect(carol, "other", "c-o")
	for _, n := range []*testServer{na, nb} {
		if _, st, body := n.dial("other", withCookie("socket_io_token_c-o", mint(t, carol, "other", "c-o"))); st != 403 || !strings.Contains(body, ErrTooManyUser.Error()) {
			t.Fatalf("third socket for one user over two nodes: %d %s", st, body)
		}
	}

	// A participant who leaves B leaves the waiting list for the moderator, wherever the grace period ends.
	_ = q.ws.Close()
	hub.awaitDisconnect(t, bob)
	clk.Advance(grace)
	if l := m.expect("waiting_participant_left"); l.field("email") != bob.email || l.field("reason") != "disconnected" {
		t.Fatalf("left %s", l.Data)
	}

	// Ending the conference through A closes its sockets on both nodes.
	if body := conferencesAPI(t, na, "DELETE", `{"room":"fleet"}`, 200); !strings.Contains(string(body), `"ended_sockets":2`) {
		t.Fatalf("delete %s, want the moderator on B and the participant on A ended", body)
	}
	for _, c := range []*client{m, p} {
		if e := c.waitClosed(); e == nil || e.Code != CloseConferenceEnded || e.Text != conferenceEndedReason {
			t.Fatalf("close %v", e)
		}
	}
}

package redisstate_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hlsedge/hlsedge/authz"
	"github.com/hlsedge/hlsedge/authz/redisstate"
	"github.com/hlsedge/hlsedge/internal/fleet/fleettest"
)

// A ban made on one node refuses on another from its next request: the viewer's original token (whose allow
// is in the decision cache) and the child token its playlist handed out.
func TestBanOnOneNodeRefusesOnAnother(t *testing.T) {
	srv := fleettest.Start(t)
	a := startNode(t, srv, "a", authConfig(0, false))
	b := startNode(t, srv, "b", authConfig(0, false))
	f := func(req authz.BanRequest, v viewer) {
		t.Helper()
		d := b.authorize(v)
		if !d.Allowed() {
			t.Fatalf("before the ban: %+v", d)
		}
		child := b.child(t, v, &d)
		b.waitCached(t, v)
		if d := b.authorize(child); !d.Allowed() {
			t.Fatalf("child token before the ban: %+v", d)
		}
		ban, err := a.az.Ban(req, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		b.waitFor(t, "the ban arriving", func() bool { return b.hasBan(ban.ID) })
		for _, x := range []viewer{v, child} {
			if d := b.authorize(x); d.Status != http.StatusForbidden || !strings.Contains(d.Reason, authz.ErrBanned.Error()) {
				t.Fatalf("after %+v: %+v", req, d)
			}
		}
		// The session the ban covers is closed on the node that holds it.
		b.waitFor(t, "the banned session closing", func() bool {
			return len(b.az.Sessions(authz.SessionFilter{Channel: v.ch})) == 0
		})
		if !a.az.Unban(ban.ID) {
			t.Fatalf("unban %s on the node that made it", ban.ID)
		}
		b.waitFor(t, "the unban arriving", func() bool { return !b.hasBan(ban.ID) })
		if d := b.authorize(v); !d.Allowed() {
			t.Fatalf("after the unban: %+v", d)
		}
	}
	f(authz.BanRequest{User: "alice"}, viewer{tok: mint(t, "alice", 0), ch: "a001", ua: "TV", ip: viewerIP})
	f(authz.BanRequest{IP: "198.51.100.0/24"}, viewer{tok: mint(t, "bob", 0), ch: "a002", ua: "TV", ip: netip.MustParseAddr("198.51.100.9")})
	// A token without a user, whose children carry its fingerprint.
	anon := mint(t, "", 0)
	f(authz.BanRequest{Token: anon}, viewer{tok: anon, ch: "a003", ua: "TV", ip: viewerIP})
}

// A kick on one node of a session another node holds: the holder closes it, and the session's token on that
// channel and its child tokens are refused on every node.
func TestKickReachesTheNodeThatHoldsTheSession(t *testing.T) {
	srv := fleettest.Start(t)
	a := startNode(t, srv, "a", authConfig(0, false))
	b := startNode(t, srv, "b", authConfig(0, false))
	v := viewer{tok: mint(t, "dave", 0), ch: "a001", ua: "TV", ip: viewerIP}
	d := b.authorize(v)
	if !d.Allowed() {
		t.Fatalf("before the kick: %+v", d)
	}
	child := b.child(t, v, &d)
	ss := b.az.Sessions(authz.SessionFilter{})
	if len(ss) != 1 {
		t.Fatalf("sessions on b: %+v", ss)
	}
	// No node answers for a session nobody holds, so the asker waits its whole kick wait, which for a and b is
	// two of the tests' 10 s round trips; c waits a moment, and the answer does not depend on how long.
	c := startNode(t, srv, "c", authConfig(0, false), redisstate.WithKickWait(100*time.Millisecond))
	if _, err := c.az.Kick("0123456789abcdef", time.Now()); !errors.Is(err, authz.ErrNoSession) {
		t.Fatalf("kick of a session no node holds: %v", err)
	}
	info, err := a.az.Kick(ss[0].ID, time.Now())
	if err != nil || info.ID != ss[0].ID || info.User != "dave" {
		t.Fatalf("kick through a: %+v, %v", info, err)
	}
	// b closed the session before it answered.
	if ss := b.az.Sessions(authz.SessionFilter{}); len(ss) != 0 {
		t.Fatalf("b still holds %+v", ss)
	}
	for _, n := range []*node{a, b} {
		n.waitFor(t, "the kick arriving", func() bool { return n.az.Stats().Kicks > 0 })
		for _, x := range []viewer{v, child} {
			if d := n.authorize(x); d.Status != http.StatusForbidden || !strings.Contains(d.Reason, authz.ErrKicked.Error()) {
				t.Fatalf("%s after the kick: %+v", n.name, d)
			}
		}
	}
	// The same user on another channel is not kicked.
	if d := a.authorize(viewer{tok: v.tok, ch: "a002", ua: "TV", ip: viewerIP}); !d.Allowed() {
		t.Fatalf("another channel after the kick: %+v", d)
	}
}

// A node that joins later loads the bans and kicks in force.
func TestNodeStartedLaterLoadsBansAndKicks(t *testing.T) {
	srv := fleettest.Start(t)
	a := startNode(t, srv, "a", authConfig(0, false))
	ban, err := a.az.Ban(authz.BanRequest{User: "erin", TTL: time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	kicked := viewer{tok: mint(t, "frank", 0), ch: "a001", ua: "TV", ip: viewerIP}
	if d := a.authorize(kicked); !d.Allowed() {
		t.Fatal(d)
	}
	if _, err := a.az.Kick(a.az.Sessions(authz.SessionFilter{})[0].ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	c := startNode(t, srv, "c", authConfig(0, false))
	if !c.hasBan(ban.ID) {
		t.Fatalf("c's bans after its first re-sync: %+v", c.az.Bans(time.Now()))
	}
	if d := c.authorize(viewer{tok: mint(t, "erin", 0), ch: "a001", ua: "TV", ip: viewerIP}); d.Status != http.StatusForbidden {
		t.Fatalf("banned user on the late node: %+v", d)
	}
	if d := c.authorize(kicked); d.Status != http.StatusForbidden || d.Reason != "jwt: "+authz.ErrKicked.Error() {
		t.Fatalf("kicked session on the late node: %+v", d)
	}
}

// max_per_user 2, with one user's four devices asking at once, two on each node: exactly two are admitted,
// and each keeps its answer on its next requests.
func TestSessionLimitCountsAcrossNodes(t *testing.T) {
	srv := fleettest.Start(t)
	a := startNode(t, srv, "a", authConfig(2, false))
	b := startNode(t, srv, "b", authConfig(2, false))
	tok := mint(t, "gina", 0)
	devices := make([]viewer, 4)
	for i := range devices {
		devices[i] = viewer{tok: tok, ch: "a001", ua: fmt.Sprintf("device-%d", i), ip: viewerIP}
	}
	nodes := []*node{a, a, b, b}
	allowed := admitAll(nodes, devices)
	if n := count(allowed); n != 2 {
		t.Fatalf("%d of 4 devices admitted across two nodes with max_per_user 2: %v", n, allowed)
	}
	for i, v := range devices {
		if d := nodes[i].authorize(v); d.Allowed() != allowed[i] {
			t.Fatalf("device %d changed its answer: %+v", i, d)
		}
	}
	// The token's own claim takes precedence over the configured limit, across nodes too.
	one := mint(t, "hank", 1)
	first := a.authorize(viewer{tok: one, ch: "a001", ua: "TV", ip: viewerIP})
	second := b.authorize(viewer{tok: one, ch: "a001", ua: "Phone", ip: viewerIP})
	if !first.Allowed() || second.Status != http.StatusForbidden || !strings.Contains(second.Reason, authz.ErrSessionLimit.Error()) {
		t.Fatalf("max_sessions 1 over two nodes: %+v then %+v", first, second)
	}
}

// In soft mode a channel switch on one device stays one session, whichever node serves the new channel.
func TestSoftLimitFollowsAChannelSwitchAcrossNodes(t *testing.T) {
	srv := fleettest.Start(t)
	a := startNode(t, srv, "a", authConfig(1, true))
	b := startNode(t, srv, "b", authConfig(1, true))
	tok := mint(t, "ivy", 0)
	if d := a.authorize(viewer{tok: tok, ch: "a001", ua: "TV", ip: viewerIP}); !d.Allowed() {
		t.Fatal(d)
	}
	if d := b.authorize(viewer{tok: tok, ch: "a002", ua: "TV", ip: viewerIP}); !d.Allowed() {
		t.Fatalf("the same device on another channel and node: %+v", d)
	}
	if d := b.authorize(viewer{tok: tok, ch: "a002", ua: "Phone", ip: viewerIP}); d.Status != http.StatusForbidden {
		t.Fatalf("a second device with limit 1: %+v", d)
	}
}

// admitAll sends every device's first request at once, device i through nodes[i].
func admitAll(nodes []*node, devices []viewer) []bool {
	allowed := make([]bool, len(devices))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range devices {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			allowed[i] = nodes[i].authorize(devices[i]).Allowed()
		}()
	}
	close(start)
	wg.Wait()
	return allowed
}

func count(bs []bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

// Redis dies in the middle of a run and comes back empty: serving goes on, known bans stay, a ban made
// meanwhile applies on its node, limits are counted per node; once Redis returns the bans are shared again,
// the one made meanwhile reaches the other node, and the limit is the fleet's again.
func TestRedisRestartMidRun(t *testing.T) {
	srv := fleettest.Start(t)
	a := startNode(t, srv, "a", authConfig(2, false))
	b := startNode(t, srv, "b", authConfig(2, false))
	tok := mint(t, "jack", 0)
	devices := make([]viewer, 4)
	for i := range devices {
		devices[i] = viewer{tok: tok, ch: "a001", ua: fmt.Sprintf("device-%d", i), ip: viewerIP}
	}
	nodes := []*node{a, a, b, b}
	for i := range 2 {
		if d := a.authorize(devices[i]); !d.Allowed() {
			t.Fatalf("device %d before the outage: %+v", i, d)
		}
	}
	before, err := a.az.Ban(authz.BanRequest{User: "mallory"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b.waitFor(t, "the ban made before the outage", func() bool { return b.hasBan(before.ID) })
	mallory := viewer{tok: mint(t, "mallory", 0), ch: "a001", ua: "TV", ip: viewerIP}
	resyncs := [2]uint64{a.st.FleetStats().Resyncs, b.st.FleetStats().Resyncs}

	srv.Kill()
	a.waitHealth(t, true)
	b.waitHealth(t, true)
	// Serving never stops: the open sessions, and new ones counted on their node alone.
	for i := range 2 {
		if d := a.authorize(devices[i]); !d.Allowed() {
			t.Fatalf("device %d during the outage: %+v", i, d)
		}
	}
	for i := 2; i < 4; i++ {
		if d := b.authorize(devices[i]); !d.Allowed() {
			t.Fatalf("device %d during the outage, counted locally on b: %+v", i, d)
		}
	}
	if got := b.st.FleetStats().Local; got != 2 {
		t.Fatalf("local admissions on b: %d, want 2", got)
	}
	for _, n := range nodes[1:3] {
		if d := n.authorize(mallory); d.Status != http.StatusForbidden {
			t.Fatalf("%s: a ban known before the outage no longer applies: %+v", n.name, d)
		}
	}
	during, err := a.az.Ban(authz.BanRequest{User: "eve"}, time.Now())
	if err != nil {
		t.Fatalf("a ban while Redis is down: %v", err)
	}
	eve := viewer{tok: mint(t, "eve", 0), ch: "a001", ua: "TV", ip: viewerIP}
	if d := a.authorize(eve); d.Status != http.StatusForbidden {
		t.Fatalf("a ban made while Redis is down, on its node: %+v", d)
	}
	if got := a.st.FleetStats().Pending; got != 1 {
		t.Fatalf("pending changes on a: %d", got)
	}

	srv.Restart()
	for i, n := range []*node{a, b} {
		n.waitFor(t, "the re-sync after the restart", func() bool { return n.st.FleetStats().Resyncs > resyncs[i] })
	}
	b.waitFor(t, "the ban made during the outage", func() bool { return b.hasBan(during.ID) })
	for _, n := range []*node{a, b} {
		if !n.hasBan(before.ID) {
			t.Fatalf("%s lost the ban made before the outage: %+v", n.name, n.az.Bans(time.Now()))
		}
		for _, x := range []viewer{mallory, eve} {
			if d := n.authorize(x); d.Status != http.StatusForbidden {
				t.Fatalf("%s after the restart: %+v", n.name, d)
			}
		}
	}
	if out := srv.MustDo("HLEN", "{hlsedge:revoke}"); out != "3" {
		t.Fatalf("the restarted Redis holds %s revocations, want the two bans and the epoch", out)
	}
	allowed := make([]bool, 4)
	for i, v := range devices {
		allowed[i] = nodes[i].authorize(v).Allowed()
	}
	if n := count(allowed); n != 2 {
		t.Fatalf("%d of 4 devices admitted after the re-sync, want the fleet's limit 2: %v", n, allowed)
	}
	if d := b.authorize(viewer{tok: tok, ch: "a001", ua: "device-5", ip: viewerIP}); d.Status != http.StatusForbidden {
		t.Fatalf("a fifth device after the re-sync: %+v", d)
	}
}

// Nothing in Redis holds a raw token: users, fingerprints and session fingerprints only.
func TestNoRawTokenInRedis(t *testing.T) {
	srv := fleettest.Start(t)
	a := startNode(t, srv, "a", authConfig(2, false))
	b := startNode(t, srv, "b", authConfig(2, false))
	userTok, anonTok := mint(t, "kate", 0), mint(t, "", 0)
	v := viewer{tok: userTok, ch: "a001", ua: "TV", ip: viewerIP}
	d := b.authorize(v)
	if !d.Allowed() {
		t.Fatal(d)
	}
	child := b.child(t, v, &d)
	anon := viewer{tok: anonTok, ch: "a002", ua: "TV", ip: viewerIP}
	if d := a.authorize(anon); !d.Allowed() {
		t.Fatal(d)
	}
	if _, err := a.az.Ban(authz.BanRequest{Token: anonTok}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := a.az.Kick(b.az.Sessions(authz.SessionFilter{})[0].ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	dump := dumpRedis(t, srv)
	for _, tok := range []string{userTok, anonTok, child.tok} {
		// The signature alone would do as well as the whole token.
		sig := tok[strings.LastIndexByte(tok, '.')+1:]
		if strings.Contains(dump, tok) || len(sig) > 8 && strings.Contains(dump, sig) {
			t.Fatalf("a token reached Redis:\n%s", dump)
		}
	}
	if !strings.Contains(dump, "kate") || !strings.Contains(dump, "~") {
		t.Fatalf("the dump misses what it should hold (a user, a fingerprint):\n%s", dump)
	}
}

// dumpRedis returns every key and value.
func dumpRedis(t *testing.T, srv *fleettest.Server) string {
	t.Helper()
	var b strings.Builder
	for _, k := range strings.Split(srv.MustDo("KEYS", "*"), "\n") {
		if k == "" {
			continue
		}
		b.WriteString(k + " =")
		switch typ := srv.MustDo("TYPE", k); typ {
		case "hash":
			b.WriteString(srv.MustDo("HGETALL", k))
		case "zset":
			b.WriteString(srv.MustDo("ZRANGE", k, "0", "-1", "WITHSCORES"))
		case "list":
			b.WriteString(srv.MustDo("LRANGE", k, "0", "-1"))
		case "set":
			b.WriteString(srv.MustDo("SMEMBERS", k))
		case "string":
			b.WriteString(srv.MustDo("GET", k))
		case "none":
			// Gone since KEYS: a kicked session's place, freed a moment after the kick.
		default:
			t.Fatalf("key %s of type %s", k, typ)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

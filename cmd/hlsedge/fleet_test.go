package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hlsedge/hlsedge/authz/token"
	"github.com/hlsedge/hlsedge/internal/fleet/fleettest"
	"github.com/hlsedge/hlsedge/internal/testkit"
	"github.com/hlsedge/hlsedge/proxy/admin"
)

// fleetConfig pings Redis often, so that a node back in touch with it re-syncs at once. Its timeouts are a loaded
// machine's: a command, ping or probe slow on two busy cores must not turn a node degraded, where it would count
// admissions alone and let a user over the fleet's limit. A Redis that dies is noticed by its closed connections.
const fleetConfig = `
listen: 127.0.0.1:0
admin: {listen: 127.0.0.1:0, token: admin-token}
origins: [{url: ORIGIN}]
node: NODE
redis: {address: REDIS, ping_interval: 20ms, probe_interval: 10m, read_timeout: 10s, write_timeout: 1m}
auth:
  jwt: {algorithms: [HS256], secret: ` + testJWTSecret + `}
  edge: {secret: cmd-edge-secret-0123456789abcdef0123}
  sessions: {max_per_user: 2}
signaling:
  jwt: {secret: cmd-signaling-secret-0123456789abcdef}
`

// fleetNode is one edge of a test fleet, served on loopback.
type fleetNode struct {
	*node
	edge, admin string
	stops       *stopLog
	cancel      context.CancelFunc
	served      chan error
	once        sync.Once
}

// startFleetNode starts an edge of the fleet on srv through the composition root and serves it, and waits
// until it has loaded the fleet's bans and kicks.
func startFleetNode(t *testing.T, srv *fleettest.Server, name string) *fleetNode {
	t.Helper()
	yaml := strings.NewReplacer("NODE", name, "REDIS", srv.Addr).Replace(fleetConfig)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	fn := &fleetNode{stops: &stopLog{}, served: make(chan error, 1)}
	n, err := startNode(nodeConfig(t, yaml), log, fn.stops.stopped)
	if err != nil {
		t.Fatal(err)
	}
	fn.node = n
	var ctx context.Context
	ctx, fn.cancel = context.WithCancel(context.Background())
	go func() { fn.served <- n.serve(ctx) }()
	t.Cleanup(fn.stop)
	fn.edge, fn.admin = "http://"+n.ln.Addr().String(), "http://"+n.adminAddr()
	fn.waitState(t, "the first re-sync", func() bool { return n.state.FleetStats().Resyncs > 0 })
	return fn
}

func (fn *fleetNode) stop() {
	fn.once.Do(func() {
		fn.cancel()
		select {
		case <-fn.served:
		case <-time.After(guard):
			panic("a fleet node did not stop within " + guard.String())
		}
	})
}

// waitState waits, on the node's viewer-state events, until cond holds.
func (fn *fleetNode) waitState(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(guard)
	defer deadline.Stop()
	for {
		ch := fn.state.Changed()
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("%s: %s never happened; %+v", fn.name, what, fn.state.FleetStats())
		}
	}
}

// waitFleet waits, on the member's health events, until its degraded state is want.
func (fn *fleetNode) waitFleet(t *testing.T, degraded bool) {
	t.Helper()
	deadline := time.NewTimer(guard)
	defer deadline.Stop()
	for {
		ch := fn.fleet.HealthChanged()
		if fn.fleet.Health().Degraded == degraded {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("%s: the fleet never became degraded=%v: %+v", fn.name, degraded, fn.fleet.Health())
		}
	}
}

// adminDo calls the admin API with the admin token.
func adminDo(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	hdr := []string{"Authorization", "Bearer admin-token"}
	if body != "" {
		hdr = append(hdr, "Content-Type", "application/json")
	}
	code, _, b := testkit.Do(t, httpClient, method, url, body, hdr...)
	return code, string(b)
}

var childURI = regexp.MustCompile(`(?m)^(seg7\.ts\?token=\S+)$`)

// play fetches the playlist through an edge as a player with user agent ua, and returns the segment URL the
// rewritten playlist hands out (with its child token).
func play(t *testing.T, edge, tok, ua string) (int, string) {
	t.Helper()
	code, body := fetch(t, edge+"/play/a001/index.m3u8?token="+tok, "User-Agent", ua)
	if code != http.StatusOK {
		return code, ""
	}
	m := childURI.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no child URI in %q", body)
	}
	return code, edge + "/play/a001/" + m[1]
}

func mintUser(t *testing.T, user string) string {
	t.Helper()
	tok, err := token.MintJWT(token.JWTMint{Alg: "HS256", Key: []byte(testJWTSecret), Streams: []string{"*"}, Subject: user, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestFleetOfEdges runs edges built by the composition root on one redis-server: a ban and a kick through one
// node's admin API stop a viewer on another (playlist and child segment), the admin views cover every node, a
// node started later loads the bans, one user's devices spread over two nodes get exactly the limit, and a Redis
// that dies and comes back stops nothing and is reported.
func TestFleetOfEdges(t *testing.T) {
	srv := fleettest.Start(t)
	a := startFleetNode(t, srv, "node-a")
	b := startFleetNode(t, srv, "node-b")

	// A viewer on b; the ban is made on a.
	alice := mintUser(t, "alice")
	code, seg := play(t, b.edge, alice, "TV")
	if code != 200 {
		t.Fatalf("alice on b: %d", code)
	}
	if code, _ := fetch(t, seg, "User-Agent", "TV"); code != 200 {
		t.Fatalf("alice's segment on b: %d", code)
	}
	code, body := adminDo(t, "POST", a.admin+"/api/bans", `{"user": "alice", "reason": "test"}`)
	if code != http.StatusCreated {
		t.Fatalf("ban on a: %d %s", code, body)
	}
	b.waitState(t, "alice refused", func() bool {
		c, _ := fetch(t, b.edge+"/play/a001/index.m3u8?token="+alice, "User-Agent", "TV")
		return c == http.StatusForbidden
	})
	if code, body := fetch(t, seg, "User-Agent", "TV"); code != http.StatusForbidden {
		t.Fatalf("alice's child token on b after the ban: %d %s", code, body)
	}

	// The admin views of a show b's viewer, and a kick on a stops it on b.
	bob := mintUser(t, "bob")
	if code, _ := play(t, b.edge, bob, "TV"); code != 200 {
		t.Fatalf("bob on b: %d", code)
	}
	if err := b.reporter.Announce(context.Background()); err != nil {
		t.Fatal(err)
	}
	code, body = adminDo(t, "GET", a.admin+"/api/sessions?user=bob", "")
	var ss []admin.FleetSession
	if err := json.Unmarshal([]byte(body), &ss); code != 200 || err != nil || len(ss) != 1 || ss[0].Node != "node-b" {
		t.Fatalf("a's fleet-wide sessions: %d %s", code, body)
	}
	_, seg = play(t, b.edge, bob, "TV")
	if code, body := adminDo(t, "DELETE", a.admin+"/api/sessions/"+ss[0].ID, ""); code != 200 || !strings.Contains(body, `"user":"bob"`) {
		t.Fatalf("kick on a of b's session: %d %s", code, body)
	}
	for _, u := range []string{seg, b.edge + "/play/a001/index.m3u8?token=" + bob} {
		if code, _ := fetch(t, u, "User-Agent", "TV"); code != http.StatusForbidden {
			t.Fatalf("bob on b after the kick: %s %d", u, code)
		}
	}
	code, body = adminDo(t, "GET", a.admin+"/api/stats", "")
	var st admin.Stats
	if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil || st.Node != "node-a" || st.Fleet == nil ||
		st.Fleet.Degraded || len(st.Fleet.Nodes) != 2 || st.Fleet.Nodes[1].Node != "node-b" {
		t.Fatalf("a's stats: %d %s", code, body)
	}

	// A node that joins later refuses alice too.
	c := startFleetNode(t, srv, "node-c")
	if code, _ := fetch(t, c.edge+"/play/a001/index.m3u8?token="+alice); code != http.StatusForbidden {
		t.Fatalf("alice on the node started after the ban: %d", code)
	}

	// max_per_user 2: one user's four devices, two through each of a and b.
	carol := mintUser(t, "carol")
	admitted := 0
	for i, edge := range []string{a.edge, a.edge, b.edge, b.edge} {
		if code, _ := play(t, edge, carol, fmt.Sprintf("device-%d", i)); code == 200 {
			admitted++
		}
	}
	if admitted != 2 {
		t.Fatalf("%d of carol's 4 devices admitted over two nodes, want 2", admitted)
	}

	// Redis dies: serving goes on and the operator sees it; it comes back and the fleet is healthy again.
	srv.Kill()
	a.waitFleet(t, true)
	if code, _ := play(t, a.edge, carol, "device-0"); code != 200 {
		t.Fatalf("carol's device on a while Redis is down: %d", code)
	}
	if code, _ := fetch(t, a.edge+"/play/a001/index.m3u8?token="+alice); code != http.StatusForbidden {
		t.Fatalf("alice on a while Redis is down: %d", code)
	}
	if code, body := fetch(t, a.admin+"/healthz"); code != 200 || !strings.Contains(body, "node: node-a\nfleet: degraded since ") {
		t.Fatalf("healthz while Redis is down: %d %q", code, body)
	}
	_, metrics := fetch(t, a.admin+"/metrics", "Authorization", "Bearer admin-token")
	for _, want := range []string{"hlsedge_fleet_degraded 1", "hlsedge_auth_fleet_limits_local 1", `hlsedge_node_info{node="node-a"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics while Redis is down lacks %s", want)
		}
	}
	resyncs := a.state.FleetStats().Resyncs
	srv.Restart()
	// The first command on a connection to the dead server may fail once more; the member then re-syncs again.
	a.waitState(t, "the re-sync", func() bool { return a.state.FleetStats().Resyncs > resyncs && !a.fleet.Degraded() })
	if code, body := fetch(t, a.admin+"/healthz"); code != 200 || body != "ok\nnode: node-a\nfleet: ok\n" {
		t.Fatalf("healthz after Redis returned: %d %q", code, body)
	}

	a.stop()
	if got := a.stops.get(); !slices.Equal(got, []string{"signaling", "edge", "admin", "listeners", "authorizer", "fleet"}) {
		t.Fatalf("a stopped %v", got)
	}
}

// TestDemoFleetKickOnOneNodeStopsAViewerOnTheOther is `make run-fleet` in-process: redis-server, the origin and
// two edges; each node's printed URL plays in the real ffprobe, and a kick through node 1's admin API of the
// viewer node 2 serves stops that viewer.
func TestDemoFleetKickOnOneNodeStopsAViewerOnTheOther(t *testing.T) {
	if _, err := exec.LookPath("ffprobe"); err != nil {
		t.Fatal("ffprobe is missing: `make test` installs ffmpeg")
	}
	out, done := startDemo(t, "--nodes", "2")
	out.waitFor(t, regexp.MustCompile(`stop with Ctrl-C`), done)
	printed := out.String()
	nodes := regexp.MustCompile(`(?m)^(node\d): edge (\S+), admin (\S+)\nplay:\s+ffplay '([^']+)'`).FindAllStringSubmatch(printed, -1)
	if len(nodes) != 2 || nodes[0][1] != "node1" || nodes[1][1] != "node2" {
		t.Fatalf("the demo printed no node line and play line per node:\n%s", printed)
	}
	if n := strings.Count(printed, "conference ("); n != 2 {
		t.Fatalf("the demo printed %d conference links:\n%s", n, printed)
	}
	for _, n := range nodes {
		pctx, pcancel := context.WithTimeout(context.Background(), 60*time.Second)
		probe, err := exec.CommandContext(pctx, "ffprobe", "-v", "error", "-user_agent", "ffprobe-"+n[1], "-show_streams", n[4]).CombinedOutput()
		pcancel()
		if err != nil || !strings.Contains(string(probe), "codec_name=h264") {
			t.Fatalf("ffprobe %s: %v\n%s", n[4], err, probe)
		}
	}
	admin1, admin2, play2 := nodes[0][3], nodes[1][3], nodes[1][4]
	_, body := fetch(t, admin2+"/api/sessions")
	var ss []admin.FleetSession
	if err := json.Unmarshal([]byte(body), &ss); err != nil {
		t.Fatalf("node2's sessions: %v %s", err, body)
	}
	id := ""
	for _, s := range ss {
		if s.Node == "node2" && s.UserAgent == "ffprobe-node2" {
			id = s.ID
		}
	}
	if id == "" {
		t.Fatalf("node2 lists no session of its viewer: %s", body)
	}
	if code, body := adminDo(t, "DELETE", admin1+"/api/sessions/"+id, ""); code != 200 {
		t.Fatalf("kick on node1: %d %s", code, body)
	}
	if code, _ := fetch(t, play2, "User-Agent", "ffprobe-node2"); code != http.StatusForbidden {
		t.Fatalf("node2's viewer after the kick on node1: %d", code)
	}
}

// A bad 'node' or 'redis' section stops serve with the field named, before anything connects.
func TestFleetConfigErrorsNameTheField(t *testing.T) {
	f := func(yaml, want string) { t.Helper(); refusesToServe(t, yaml, want) }
	const base = "origins: [{url: 'http://127.0.0.1:1'}]\nauth: {jwt: {algorithms: [HS256], secret: " + testJWTSecret + "}, edge: {secret: cmd-edge-secret-0123456789abcdef0123}}\n"
	f(base+"node: 'a b'\n", "'node' must be 1 to 64 letters")
	f(base+"redis: {address: nohost}\n", "'redis.address' must be host:port")
	f(base+"redis: {address: '127.0.0.1:6379', prefix: '{x}'}\n", "'redis.prefix'")
	f(base+"redis: {address: '127.0.0.1:6379', read_timeout: 1ms}\n", "'redis.read_timeout'")
	f(strings.Replace(base, ", edge: {secret: cmd-edge-secret-0123456789abcdef0123}", "", 1)+"redis: {address: '127.0.0.1:6379'}\n",
		"'auth.edge.secret' or 'auth.edge.secret_file' must be set with 'redis'")
}

// `hlsedge check` says whether the edge joins a fleet, and warns when Redis is reached in clear over a network.
func TestCheckSummarizesTheFleet(t *testing.T) {
	path := t.TempDir() + "/edge.yaml"
	yaml := "origins: [{url: 'http://127.0.0.1:1'}]\nnode: edge-7\nredis: {address: '10.0.0.9:6379'}\n" +
		"auth: {jwt: {algorithms: [HS256], secret: " + testJWTSecret + "}, edge: {secret: cmd-edge-secret-0123456789abcdef0123}}\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut lockedBuffer
	if code := run(context.Background(), []string{"check", "--config", path}, &out, &errOut); code != 0 {
		t.Fatalf("check: exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{`fleet:      node edge-7, redis 10.0.0.9:6379 db 0 prefix "hlsedge:", tls NOT set, password NOT set`,
		"redis 10.0.0.9:6379 is reached without TLS"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("check lacks %q:\n%s", want, out.String())
		}
	}
}

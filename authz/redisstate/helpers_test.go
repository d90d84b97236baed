package redisstate_test

import (
	"io"
	"log/slog"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hlsedge/hlsedge/authz"
	"github.com/hlsedge/hlsedge/authz/redisstate"
	"github.com/hlsedge/hlsedge/authz/token"
	"github.com/hlsedge/hlsedge/internal/fleet"
	"github.com/hlsedge/hlsedge/internal/fleet/fleettest"
)

// guard only turns a hang into a failure; no test waits on it to make progress.
const guard = 30 * time.Second

const (
	jwtSecret  = "redisstate-jwt-secret-0123456789abcdef"
	edgeSecret = "redisstate-edge-secret-0123456789abcdef"
)

var viewerIP = netip.MustParseAddr("203.0.113.7")

// node is one edge as the authorizer sees it: a fleet member, its viewer state and an authorizer around it.
type node struct {
	name string
	fc   *fleet.Client
	st   *redisstate.State
	az   *authz.Authorizer
}

func logger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// authConfig is an auth section with HS256 JWTs and a shared edge secret, as every node of a fleet has.
func authConfig(maxPerUser int, soft bool) authz.Config {
	return authz.Config{
		JWT:      &authz.JWTConfig{JWTConfig: token.JWTConfig{Algorithms: []string{"HS256"}, Secret: jwtSecret}},
		Edge:     authz.EdgeConfig{Secret: edgeSecret},
		Sessions: authz.SessionsConfig{MaxPerUser: maxPerUser, Soft: soft},
	}
}

// fleetConfig pings often, so that a member back in touch with Redis re-syncs at once; tests still wait on the
// events. Its timeouts are a loaded machine's: a command, a ping or a probe that takes long on two busy cores
// must not turn the member degraded (its admissions would then count on the node alone, and the fleet-wide
// limits the tests check would not hold). A Redis that is killed is noticed by its closed connections, not by
// a timeout.
func fleetConfig(addr string) fleet.Config {
	return fleet.Config{Address: addr, PingInterval: 20 * time.Millisecond, ProbeInterval: time.Minute,
		ReadTimeout: 10 * time.Second, WriteTimeout: time.Minute}
}

// startNode starts a node and waits for its first re-sync, after which it knows the fleet's bans and kicks.
func startNode(t testing.TB, srv *fleettest.Server, name string, cfg authz.Config, opts ...redisstate.Option) *node {
	t.Helper()
	log := logger().With("node", name)
	fc, err := fleet.New(fleetConfig(srv.Addr), name, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := redisstate.New(cfg, fc, log, nil, opts...)
	if err != nil {
		fc.Close()
		t.Fatal(err)
	}
	az, err := authz.New(cfg, log, authz.WithState(st))
	if err != nil {
		st.Close()
		fc.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		az.Close()
		st.Close()
		fc.Close()
	})
	n := &node{name: name, fc: fc, st: st, az: az}
	n.waitFor(t, "first re-sync", func() bool { return st.FleetStats().Resyncs > 0 })
	return n
}

// waitFor waits, on the state's change events, until cond holds.
func (n *node) waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(guard)
	defer deadline.Stop()
	for {
		ch := n.st.Changed()
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("%s: %s never happened; fleet %+v, state %+v", n.name, what, n.fc.Health(), n.st.FleetStats())
		}
	}
}

// waitHealth waits, on the member's health events, until its degraded state is want.
func (n *node) waitHealth(t testing.TB, degraded bool) {
	t.Helper()
	deadline := time.NewTimer(guard)
	defer deadline.Stop()
	for {
		ch := n.fc.HealthChanged()
		if n.fc.Health().Degraded == degraded {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("%s: never became degraded=%v; %+v", n.name, degraded, n.fc.Health())
		}
	}
}

func (n *node) hasBan(id string) bool {
	return slices.ContainsFunc(n.az.Bans(time.Now()), func(b authz.Ban) bool { return b.ID == id })
}

type carrier map[string][]byte

func (c carrier) QueryArg(name string) []byte { return c[name] }
func (c carrier) Cookie(string) []byte        { return nil }
func (c carrier) Header(string) []byte        { return nil }

// viewer is one player: a device (user agent) at an address watching a channel with a token.
type viewer struct {
	tok, ch, ua string
	ip          netip.Addr
}

func (n *node) authorize(v viewer) authz.Decision {
	return n.authorizeAt(v, time.Now())
}

func (n *node) authorizeAt(v viewer, now time.Time) authz.Decision {
	req := &authz.Request{Path: []byte("/play/" + v.ch + "/index.m3u8"), Channel: []byte(v.ch), ClientIP: v.ip, UserAgent: []byte(v.ua)}
	return n.az.Authorize(req, carrier{"token": []byte(v.tok)}, now)
}

// child returns the viewer as its player follows the rewritten playlist: with the child token.
func (n *node) child(t testing.TB, v viewer, d *authz.Decision) viewer {
	t.Helper()
	req := &authz.Request{Path: []byte("/play/" + v.ch + "/index.m3u8"), Channel: []byte(v.ch), ClientIP: v.ip, UserAgent: []byte(v.ua)}
	q := string(n.az.AppendChildQuery(nil, req, d, time.Now()))
	tok, ok := strings.CutPrefix(q, "token=")
	if !ok || tok == "" {
		t.Fatalf("no child token in %q", q)
	}
	c := v
	c.tok = tok
	return c
}

// waitCached repeats v's request until the decision cache answers it. The cache stores on a goroutine of its
// own, a moment after the first decision; this waits for that event, yielding in between, never sleeping. The
// bound is guard, not a number of tries, which a loaded machine could run through before that goroutine runs.
func (n *node) waitCached(t testing.TB, v viewer) {
	t.Helper()
	deadline := time.Now().Add(guard)
	for {
		d := n.authorize(v)
		if !d.Allowed() {
			t.Fatalf("%s: %+v", n.name, d)
		}
		if d.Cached {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the decision was never cached", n.name)
		}
		runtime.Gosched()
	}
}

func mint(t testing.TB, sub string, maxSessions int) string {
	t.Helper()
	tok, err := token.MintJWT(token.JWTMint{Alg: "HS256", Key: []byte(jwtSecret), Streams: []string{"*"}, Subject: sub,
		MaxSessions: maxSessions, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/hlsedge/hlsedge/authz"
	"github.com/hlsedge/hlsedge/authz/token"
	"github.com/hlsedge/hlsedge/internal/fleet"
	"github.com/hlsedge/hlsedge/internal/fleet/fleettest"
	"github.com/hlsedge/hlsedge/proxy/admin"
)

// quietEdge is a viewer listener with an empty cache, for the admin views that only need its figures.
type quietEdge struct{}

func (quietEdge) Stats() admin.EdgeStats                        { return admin.EdgeStats{CacheHits: 7} }
func (quietEdge) CachedChannels(time.Time) []admin.ChannelCache { return nil }
func (quietEdge) Channel(path, fallback []byte) []byte          { return nil }
func (quietEdge) WritePrometheus(w io.Writer)                   {}

type queryCarrier map[string][]byte

func (q queryCarrier) QueryArg(name string) []byte { return q[name] }
func (q queryCarrier) Cookie(string) []byte        { return nil }
func (q queryCarrier) Header(string) []byte        { return nil }

func member(t *testing.T, srv *fleettest.Server, node string) *fleet.Client {
	t.Helper()
	// A read timeout of a loaded machine: announcing two thousand sessions must not time out on two busy cores.
	fc, err := fleet.New(fleet.Config{Address: srv.Addr, ReadTimeout: 10 * time.Second}, node, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fc.Close)
	return fc
}

// Another node with more sessions than an announcement holds: this node's /api/sessions lists what it
// announced with its name, says how many were left out, and filters them; /api/stats has a row per node.
func TestFleetViewsCoverEveryNode(t *testing.T) {
	srv := fleettest.Start(t)
	fc1, fc2 := member(t, srv, "n1"), member(t, srv, "n2")
	cfg := authz.Config{JWT: &authz.JWTConfig{JWTConfig: token.JWTConfig{Algorithms: []string{"HS256"}, Secret: testJWTSecret}},
		Edge: authz.EdgeConfig{Secret: "edge-secret-0123456789abcdef012345678"}}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	auth1, err := authz.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(auth1.Close)
	auth2, err := authz.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(auth2.Close)

	const sessions = 2000
	tok, err := token.MintJWT(token.JWTMint{Alg: "HS256", Key: []byte(testJWTSecret), Streams: []string{"*"}, Subject: "viewer", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for i := range sessions {
		req := &authz.Request{Path: []byte("/play/a001/index.m3u8"), Channel: []byte("a001"),
			ClientIP: netip.MustParseAddr("203.0.113.7"), UserAgent: []byte(fmt.Sprintf("device-%d", i))}
		if d := auth2.Authorize(req, queryCarrier{"token": []byte(tok)}, time.Now()); !d.Allowed() {
			t.Fatal(d)
		}
	}
	if err := admin.NewReporter(fc2, func() *authz.Authorizer { return auth2 }, quietEdge{}, log).Announce(context.Background()); err != nil {
		t.Fatalf("announcing %d sessions: %v", sessions, err)
	}

	srv1, err := admin.New(admin.Config{MinBanPrefixV4: 16, MinBanPrefixV6: 48}, admin.Options{Log: log, Auth: auth1, Edge: quietEdge{}, Node: "n1", Fleet: fc1})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv1.Serve(ln)
	t.Cleanup(func() { srv1.Shutdown(context.Background()) })
	base := "http://" + ln.Addr().String()

	code, h, body := do(t, "GET", base+"/api/sessions", "")
	var ss []admin.FleetSession
	if err := json.Unmarshal([]byte(body), &ss); code != 200 || err != nil || len(ss) == 0 {
		t.Fatalf("/api/sessions: %d %v %.200s", code, err, body)
	}
	omitted, _ := strconv.Atoi(h.Get("X-Hlsedge-Sessions-Omitted"))
	if len(ss)+omitted != sessions || omitted == 0 {
		t.Fatalf("%d sessions listed and %d omitted, want %d in all, some omitted", len(ss), omitted, sessions)
	}
	for _, s := range ss {
		if s.Node != "n2" || s.User != "viewer" {
			t.Fatalf("session %+v", s)
		}
	}
	if _, _, body := do(t, "GET", base+"/api/sessions?user=nobody", ""); body != "[]\n" {
		t.Fatalf("filtered on a user with no session: %s", body)
	}
	code, _, body = do(t, "GET", base+"/api/stats", "")
	var st admin.Stats
	if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil || st.Fleet == nil || len(st.Fleet.Nodes) != 2 ||
		st.Fleet.Nodes[0].Node != "n1" || st.Fleet.Nodes[1].SessionsOpen != sessions || st.Fleet.Viewers["a001"] != sessions {
		t.Fatalf("/api/stats: %d %s", code, body)
	}
}

package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hlsedge/hlsedge/authz"
	"github.com/hlsedge/hlsedge/authz/token"
	"github.com/hlsedge/hlsedge/proxy"
)

const testPlaylist = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:3\n#EXT-X-MEDIA-SEQUENCE:7\n#EXTINF:3.000,\nseg7.ts\n"

// nodeConfig writes yaml (with ORIGIN replaced by a live test origin) to a file and loads it as serve does.
func nodeConfig(t *testing.T, yaml string) *proxy.Config {
	t.Helper()
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, ".m3u8") {
			w.Write([]byte(testPlaylist))
			return
		}
		w.Write([]byte("segment"))
	}))
	t.Cleanup(origin.Close)
	path := filepath.Join(t.TempDir(), "edge.yaml")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(yaml, "ORIGIN", origin.URL)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadEdgeConfig(path, "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

const fullConfig = `
listen: 127.0.0.1:0
admin: {listen: 127.0.0.1:0, token: admin-token}
origins: [{url: ORIGIN}]
auth:
  jwt: {algorithms: [HS256], secret: ` + testJWTSecret + `}
  edge: {secret: cmd-edge-secret-0123456789abcdef0123}
signaling:
  jwt: {secret: cmd-signaling-secret-0123456789abcdef}
`

// TestNodeWiresEverythingAndStopsItAll runs the composition root: a viewer plays through the edge, the admin
// listener sees that viewer's session (authorizer shared) and one /metrics carries the edge's, signaling's and the
// authorizer's figures (metrics set shared). Cancelling the context, as SIGTERM does, stops every part.
func TestNodeWiresEverythingAndStopsItAll(t *testing.T) {
	var stops stopLog
	n, err := startNode(nodeConfig(t, fullConfig), slog.New(slog.NewTextHandler(io.Discard, nil)), stops.stopped)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- n.serve(ctx) }()
	edge, adm := "http://"+n.ln.Addr().String(), "http://"+n.adminAddr()

	tok, err := token.MintJWT(token.JWTMint{Alg: "HS256", Key: []byte(testJWTSecret), Streams: []string{"a001"}, Subject: "alice", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if code, body := fetch(t, edge+"/play/a001/index.m3u8?token="+tok); code != 200 || !strings.Contains(body, "seg7.ts?token=") {
		t.Fatalf("playlist through the edge: %d %q", code, body)
	}
	if code, _ := fetch(t, edge+"/play/a001/index.m3u8"); code != 401 {
		t.Fatalf("playlist without a token: %d, want 401", code)
	}
	code, body := fetch(t, adm+"/api/sessions", "Authorization", "Bearer admin-token")
	var ss []authz.SessionInfo
	if err := json.Unmarshal([]byte(body), &ss); code != 200 || err != nil || len(ss) != 1 || ss[0].User != "alice" {
		t.Fatalf("sessions on the admin listener: %d %s", code, body)
	}
	_, metrics := fetch(t, adm+"/metrics", "Authorization", "Bearer admin-token")
	for _, want := range []string{`hlsedge_requests_total{route="playlist",status="200"} 1`, "hlsedge_signaling_",
		"hlsedge_auth_sessions_open 1", "go_goroutines"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("serve after cancel: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve still running 30 s after cancel")
	}
	if got, want := stops.get(), []string{"signaling", "edge", "admin", "listeners", "authorizer"}; !slices.Equal(got, want) {
		t.Fatalf("stopped %v, want %v", got, want)
	}
	for _, addr := range []string{n.ln.Addr().String(), n.adminAddr()} {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Fatalf("%s still accepts after the node stopped", addr)
		}
	}
}

// TestNodeReleasesWhatItStartedWhenALaterStepFails: the admin address is taken, which is found only after the
// authorizer, signaling and the edge are built and the public listener is open; all of them are released.
func TestNodeReleasesWhatItStartedWhenALaterStepFails(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg := nodeConfig(t, strings.Replace(fullConfig, "admin: {listen: 127.0.0.1:0", "admin: {listen: "+busy.Addr().String(), 1))
	var stops stopLog
	n, err := startNode(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), stops.stopped)
	if n != nil || err == nil || !strings.Contains(err.Error(), "listening on 'admin.listen'") {
		t.Fatalf("startNode with a taken admin address: %v, %v", n, err)
	}
	if got, want := stops.get(), []string{"signaling", "edge", "admin", "listeners", "authorizer"}; !slices.Equal(got, want) {
		t.Fatalf("released %v, want %v", got, want)
	}
}

// TestAdminListenEmptyTurnsTheListenerOff: `admin.listen: ""` is documented to disable the admin listener, and a
// default must not put it back; a config without the field gets the loopback default.
func TestAdminListenEmptyTurnsTheListenerOff(t *testing.T) {
	off := nodeConfig(t, strings.Replace(fullConfig, "admin: {listen: 127.0.0.1:0, token: admin-token}", `admin: {listen: ""}`, 1))
	n, err := startNode(off, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer n.stop(context.Background())
	if n.admin != nil || n.adminLn != nil || n.adminAddr() != "" {
		t.Fatalf("admin.listen \"\" still started an admin listener on %q", n.adminAddr())
	}
	unset := nodeConfig(t, strings.Replace(fullConfig, "admin: {listen: 127.0.0.1:0, token: admin-token}", "", 1))
	if got := unset.Admin.Addr(); got != "127.0.0.1:8090" {
		t.Fatalf("admin.listen unset: %q, want the loopback default", got)
	}
}

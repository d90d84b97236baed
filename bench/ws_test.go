package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hlsedge/hlsedge/authz/token"
	"github.com/hlsedge/hlsedge/signaling"
)

const wsTestSecret = "bench-secret-bench-secret-bench-secret"

func wsTestConfig() signaling.Config {
	return signaling.Config{
		AllowedOrigins: []string{"https://meet.example.com"},
		JWT:            token.JWTConfig{Secret: wsTestSecret, Issuer: "bench"},
	}
}

func TestRunWSAgainstSelfServer(t *testing.T) {
	srv, err := StartWSServer("127.0.0.1:0", wsTestConfig(), WSServerOptions{GCOnScrape: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	var progress bytes.Buffer
	cfg := WSConfig{
		URL: srv.URL(), Secret: wsTestSecret, Issuer: "bench", Origin: "https://meet.example.com",
		Participants: 30, Rooms: 3, Duration: 1500 * time.Millisecond, ChatRate: 10,
		AdmitInterval: 50 * time.Millisecond, MetricsURL: srv.MetricsURL(), Interval: 200 * time.Millisecond,
		Timeout: 10 * time.Second,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := RunWS(ctx, cfg, &progress)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Sockets != 33 || rep.Connected != 33 || len(rep.ConnectErrors) > 0 {
		t.Fatalf("sockets %d connected %d errors %v", rep.Sockets, rep.Connected, rep.ConnectErrors)
	}
	if rep.Admitted != 30 || rep.Admission.Count != 30 {
		t.Fatalf("admitted %d (%d recorded)", rep.Admitted, rep.Admission.Count)
	}
	// Every chat message reached every member of its room: 10 admitted participants and the moderator.
	if rep.ChatSent == 0 || rep.ChatDelivered != rep.ChatExpected || rep.ChatExpected != rep.ChatSent*11 {
		t.Fatalf("chat sent %d delivered %d expected %d", rep.ChatSent, rep.ChatDelivered, rep.ChatExpected)
	}
	if rep.FanOut.Count != uint64(rep.ChatDelivered) || rep.FanOut.P99Ms <= 0 {
		t.Fatalf("fan-out %+v", rep.FanOut)
	}
	if rep.Memory == nil || rep.Memory.LoadedHeapStack <= 0 || rep.Memory.BaselineRSS <= 0 {
		t.Fatalf("memory %+v", rep.Memory)
	}
	if len(rep.Dropped) > 0 {
		t.Fatalf("dropped %v", rep.Dropped)
	}
	if !strings.Contains(progress.String(), "ws ") || !strings.Contains(progress.String(), "admitted") {
		t.Fatalf("progress %q", progress.String())
	}
	var sum bytes.Buffer
	if err := rep.WriteSummary(&sum); err != nil || !strings.Contains(sum.String(), "chat fan-out") {
		t.Fatalf("summary %q %v", sum.String(), err)
	}
	p := filepath.Join(t.TempDir(), "ws.json")
	if err := rep.WriteJSON(p); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	var back WSReport
	if err := json.Unmarshal(b, &back); err != nil || back.Admitted != 30 || strings.Contains(string(b), wsTestSecret) {
		t.Fatalf("json report: %v", err)
	}
}

func TestRunWSReportsRefusedSockets(t *testing.T) {
	srv, err := StartWSServer("127.0.0.1:0", wsTestConfig(), WSServerOptions{GCOnScrape: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	rep, err := RunWS(context.Background(), WSConfig{
		URL: srv.URL(), Secret: "wrong-secret-wrong-secret-wrong-secret", Issuer: "bench",
		Participants: 2, Rooms: 1, ChatRate: 0, Timeout: 5 * time.Second,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Connected != 0 || len(rep.ConnectErrors) != 1 {
		t.Fatalf("connected %d errors %v", rep.Connected, rep.ConnectErrors)
	}
	for k, n := range rep.ConnectErrors {
		if n != 3 || !strings.Contains(k, "401") || !strings.Contains(k, "bad signature") {
			t.Fatalf("errors %v", rep.ConnectErrors)
		}
	}
}

func TestWSConfigValidate(t *testing.T) {
	f := func(c WSConfig, want string) {
		t.Helper()
		c.defaults()
		err := c.Validate()
		if err == nil || !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), want) {
			t.Fatalf("error %v, want %q", err, want)
		}
	}
	f(WSConfig{URL: "http://x/ws", Secret: "s"}, "'url'")
	f(WSConfig{URL: "ws://x/ws"}, "'secret'")
	f(WSConfig{URL: "ws://x/ws", Secret: "s", Rooms: -1}, "'rooms'")
	f(WSConfig{URL: "ws://x/ws", Secret: "s", ChatRate: -1}, "'chat-rate'")
}

// An edge with an admin.token answers /metrics with 401; the URL's user info carries the token as Basic.
func TestScrapeMemoryWithAdminToken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pass, ok := r.BasicAuth(); !ok || pass != "TOKEN" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte("go_memstats_heap_inuse_bytes 1000\ngo_memstats_stack_inuse_bytes 24\nprocess_resident_memory_bytes 5000\n"))
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	ctx := context.Background()
	if _, _, err := scrapeMemory(ctx, "http://"+ln.Addr().String()+"/metrics"); err == nil || !strings.Contains(err.Error(), "http://ops:TOKEN@host/metrics") {
		t.Fatalf("without the token: %v, want the hint", err)
	}
	hs, rss, err := scrapeMemory(ctx, "http://ops:TOKEN@"+ln.Addr().String()+"/metrics")
	if err != nil || hs != 1024 || rss != 5000 {
		t.Fatalf("with the token: %v %v %v", hs, rss, err)
	}
}

// TestRunWSSeveralEdges deals the sockets of one conference over two signaling servers standing in for two edges
// that share nothing: each edge's moderator admits the participants waiting on its own edge, and the report
// shows each edge's share.
func TestRunWSSeveralEdges(t *testing.T) {
	var edges []string
	for range 2 {
		srv, err := StartWSServer("127.0.0.1:0", wsTestConfig(), WSServerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Close)
		edges = append(edges, "ws://"+srv.Addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a safety net, not a measure
	defer cancel()
	rep, err := RunWS(ctx, WSConfig{
		URL: "ws://127.0.0.1:1/ws", Edges: edges, Secret: wsTestSecret, Issuer: "bench", Origin: "https://meet.example.com",
		Participants: 10, Rooms: 1, Moderators: 2, ChatRate: 0, AdmitInterval: 20 * time.Millisecond, Timeout: 10 * time.Second,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Connected != 12 || rep.Admitted != 10 || len(rep.Edges) != 2 {
		t.Fatalf("connected %d admitted %d edges %+v errors %v", rep.Connected, rep.Admitted, rep.Edges, rep.ConnectErrors)
	}
	for i, e := range rep.Edges {
		// Moderator i and participants i, i+2, ...: six sockets and five admissions on each edge.
		if e.Edge != edges[i] || e.Sockets != 6 || e.Connected != 6 || e.Admitted != 5 || e.ConnectErrors != 0 {
			t.Fatalf("edge %d: %+v", i, e)
		}
	}
	var sum bytes.Buffer
	if err := rep.WriteSummary(&sum); err != nil || !strings.Contains(sum.String(), "edge "+edges[1]+": 6 sockets, 6 connected") {
		t.Fatalf("summary %q %v", sum.String(), err)
	}
	c := WSConfig{URL: "ws://x/ws", Secret: "s", Edges: []string{"http://x"}}
	c.defaults()
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "'edges[0]'") {
		t.Fatalf("an http edge for ws: %v", err)
	}
}

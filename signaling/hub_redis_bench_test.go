package signaling

import (
	"bytes"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/valyala/fasthttp"

	"github.com/hlsedge/hlsedge/internal/fleet/fleettest"
)

// BenchmarkChatFanout1000 sends chat messages, one at a time, in a conference of 1,000 members split over two
// nodes, and reports the latency from a member's send to each member's receipt (every member, the sender
// included, over real WebSockets): p50, p99 and max. On the Redis hub half the members are reached through
// Redis pub/sub; the memory hub is the single-process baseline.
//
//	go test -run '^$' -bench ChatFanout1000 ./signaling
func BenchmarkChatFanout1000(b *testing.B) {
	b.Run("redis", func(b *testing.B) {
		srv := fleettest.Start(b)
		benchFanout(b, func(cfg Config, clk *manualClock) (Hub, Hub) {
			return newTestRedisHub(b, srv, "node-a", cfg, clk), newTestRedisHub(b, srv, "node-b", cfg, clk)
		})
	})
	b.Run("memory", func(b *testing.B) {
		benchFanout(b, func(cfg Config, clk *manualClock) (Hub, Hub) {
			h := newMemHub(cfg.ReconnectGrace, 50, false, clk)
			b.Cleanup(h.Close)
			return h, h
		})
	})
}

const fanoutMembers = 1000

func benchFanout(b *testing.B, newHubs func(Config, *manualClock) (Hub, Hub)) {
	cfg := baseConfig()
	cfg.MessageRate, cfg.MessageBurst = 1e6, 1e6
	cfg.DefaultWaitingRoom = new(bool) // everyone is admitted at once
	clk := newManualClock()
	ha, hb := newHubs(cfg, clk)
	addrs := []string{startBenchNode(b, cfg, clk, ha), startBenchNode(b, cfg, clk, hb)}

	r := &fanoutRecorder{done: map[int]chan struct{}{}, sent: map[int]time.Time{}}
	members := make([]*websocket.Conn, fanoutMembers)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	errs := make(chan error, fanoutMembers)
	for i := range members {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			ws, err := dialMember(b, addrs[i%2], i)
			if err != nil {
				errs <- err
				return
			}
			members[i] = ws
			go r.read(ws)
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	r.mu.Lock()
	r.lat = make([]time.Duration, 0, 1<<16)
	r.mu.Unlock()

	seq := 0
	for b.Loop() {
		seq++
		ch := r.expect(seq)
		frame := []byte(`{"event":"chat_message","data":{"text":"` + strconv.Itoa(seq) + `"}}`)
		if err := members[seq%fanoutMembers].WriteMessage(websocket.TextMessage, frame); err != nil {
			b.Fatal(err)
		}
		select {
		case <-ch:
		case <-time.After(waitFor):
			b.Fatalf("chat %d did not reach every member within %v", seq, waitFor)
		}
	}
	b.StopTimer()
	r.mu.Lock()
	lat := r.lat
	r.mu.Unlock()
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))]) / float64(time.Millisecond) }
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(q(1), "max-ms")
}

// fanoutRecorder collects each member's receipt of each chat message.
type fanoutRecorder struct {
	mu   sync.Mutex
	sent map[int]time.Time
	got  map[int]int
	done map[int]chan struct{}
	lat  []time.Duration
}

// expect registers chat seq as sent now and returns a channel closed once every member received it.
func (r *fanoutRecorder) expect(seq int) <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.got == nil {
		r.got = map[int]int{}
	}
	ch := make(chan struct{})
	r.done[seq], r.sent[seq] = ch, time.Now()
	return ch
}

func (r *fanoutRecorder) read(ws *websocket.Conn) {
	for {
		_, p, err := ws.ReadMessage()
		if err != nil {
			return
		}
		at := time.Now()
		if !bytes.Contains(p, []byte(`"chat_message"`)) {
			continue
		}
		i := bytes.Index(p, []byte(`"text":"`))
		if i < 0 {
			continue
		}
		p = p[i+8:]
		seq, err := strconv.Atoi(string(p[:bytes.IndexByte(p, '"')]))
		if err != nil {
			continue
		}
		r.mu.Lock()
		if sent, ok := r.sent[seq]; ok {
			r.lat = append(r.lat, at.Sub(sent))
			if r.got[seq]++; r.got[seq] == fanoutMembers {
				close(r.done[seq])
				delete(r.done, seq)
				delete(r.sent, seq)
				delete(r.got, seq)
			}
		}
		r.mu.Unlock()
	}
}

// dialMember connects member i, joins (admitted at once) and waits for the grant.
func dialMember(tb testing.TB, addr string, i int) (*websocket.Conn, error) {
	u := user{name: "M" + strconv.Itoa(i), email: "m" + strconv.Itoa(i) + "@example.com", id: "m" + strconv.Itoa(i)}
	h := http.Header{"Origin": {testOrigin}, "Cookie": {"socket_io_token_c-big=" + mint(tb, u, "big", "c-big")}}
	d := websocket.Dialer{HandshakeTimeout: waitFor}
	ws, _, err := d.Dial("ws://"+addr+"/ws?room=big", h)
	if err != nil {
		return nil, err
	}
	tb.Cleanup(func() { _ = ws.Close() })
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"event":"join_waiting_room"}`)); err != nil {
		return nil, err
	}
	_ = ws.SetReadDeadline(time.Now().Add(waitFor))
	for {
		_, p, err := ws.ReadMessage()
		if err != nil {
			return nil, err
		}
		if bytes.Contains(p, []byte(`"join_room_big"`)) {
			break
		}
	}
	_ = ws.SetReadDeadline(time.Time{})
	return ws, nil
}

// startBenchNode runs a signaling server with hub h on loopback, as startServerOn does for tests.
func startBenchNode(tb testing.TB, cfg Config, clk clock, h Hub) string {
	tb.Helper()
	sig, err := New(cfg, testLog(), nil, withClock(clk), WithHub(h))
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: sig.ServeWS, ReadBufferSize: 16 << 10}
	sig.DetachSockets(srv)
	go func() { _ = srv.Serve(ln) }()
	tb.Cleanup(func() {
		sig.Close()
		_ = srv.Shutdown()
	})
	return ln.Addr().String()
}

package signaling

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// The memory of an idle long-polling session, measured like bench's WebSocket figure: the server runs in its own
// process (this test binary, started again with SIGNALING_POLL_MEM_SERVER set), the sessions are real clients on
// loopback, and the figure is the growth of the server's Go heap and stacks in use (and of its resident set)
// divided by the sessions. An idle session is one a client opened, connected to its conference, and keeps a GET
// pending on, as socket.io-client does between two events.
//
//	go test -run XXX -bench BenchmarkPollingSessionMemory -benchtime=1x ./signaling/
//	POLL_SESSIONS=10000 go test ...   (default 2000; each session is one connection on each side)

const memServerEnv = "SIGNALING_POLL_MEM_SERVER"

// TestMain runs the server side of BenchmarkPollingSessionMemory when the benchmark starts this binary for it.
func TestMain(m *testing.M) {
	if os.Getenv(memServerEnv) != "" {
		if err := runMemServer(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runMemServer serves signaling as the edge does, and /mem, until stdin closes.
func runMemServer() error {
	cfg := baseConfig()
	cfg.MaxConns, cfg.MaxConnsPerConference, cfg.MaxPollingSessions = 1<<20, 1<<20, 1<<20
	sig, err := New(cfg, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			if string(ctx.Path()) == "/mem" {
				want, _ := strconv.Atoi(string(ctx.QueryArgs().Peek("pending")))
				ctx.SetBodyString(memReport(sig, want))
				return
			}
			sig.ServeWS(ctx)
		},
		// The edge's defaults (proxy/config.go).
		ReadBufferSize:     8192,
		WriteBufferSize:    64 << 10,
		ReadTimeout:        10 * time.Second,
		WriteTimeout:       10 * time.Second,
		MaxRequestBodySize: 64 << 10,
		Concurrency:        1 << 20,
	}
	sig.DetachSockets(srv)
	fmt.Println(ln.Addr().String())
	go func() { _ = srv.Serve(ln) }()
	_, _ = io.Copy(io.Discard, os.Stdin) // the benchmark closes stdin when it is done
	return nil
}

// memReport waits until want GETs are pending, then reports heap+stack in use and the resident set, in bytes.
func memReport(s *Server, want int) string {
	// The GETs are on their way: the client wrote them before asking. The deadline only bounds a broken run.
	for deadline := time.Now().Add(time.Minute); pendingGets(s) < want && time.Now().Before(deadline); {
		runtime.Gosched()
	}
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	rss := 0
	if b, err := os.ReadFile("/proc/self/statm"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 1 {
			pages, _ := strconv.Atoi(f[1])
			rss = pages * os.Getpagesize()
		}
	}
	return fmt.Sprintf("%d %d %d", pendingGets(s), ms.HeapInuse+ms.StackInuse, rss)
}

func pendingGets(s *Server) int {
	s.polls.mu.Lock()
	cs := make([]*conn, 0, len(s.polls.m))
	for _, c := range s.polls.m {
		cs = append(cs, c)
	}
	s.polls.mu.Unlock()
	n := 0
	for _, c := range cs {
		c.mu.Lock()
		if c.poll.getting {
			n++
		}
		c.mu.Unlock()
	}
	return n
}

func BenchmarkPollingSessionMemory(b *testing.B) {
	n := 2000
	if v, err := strconv.Atoi(os.Getenv("POLL_SESSIONS")); err == nil && v > 0 {
		n = v
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), memServerEnv+"=1")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = stdin.Close(); _ = cmd.Wait() }()
	addr, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatal(err)
	}
	addr = strings.TrimSpace(addr)
	mem := func(pending int) (heapStack, rss float64) {
		b.Helper()
		resp, err := http.Get("http://" + addr + "/mem?pending=" + strconv.Itoa(pending))
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var got int
		if _, err := fmt.Sscan(string(body), &got, &heapStack, &rss); err != nil || got < pending {
			b.Fatalf("server memory report %q: %d of %d GETs pending", body, got, pending)
		}
		return heapStack, rss
	}
	for range b.N {
		baseHS, baseRSS := mem(0)
		conns := make([]net.Conn, 0, n)
		for i := range n {
			c, err := idlePollingSession(b, addr, i)
			if err != nil {
				b.Fatalf("session %d: %v", i, err)
			}
			conns = append(conns, c)
		}
		hs, rss := mem(n)
		b.ReportMetric((hs-baseHS)/float64(n), "heap+stack-B/session")
		b.ReportMetric((rss-baseRSS)/float64(n), "rss-B/session")
		for _, c := range conns {
			_ = c.Close()
		}
	}
}

// idlePollingSession opens a session for participant i of room i%100 on one keep-alive connection, connects it
// to its conference, reads what the server queued, and leaves the next GET pending.
func idlePollingSession(b *testing.B, addr string, i int) (net.Conn, error) {
	room, cid := "room "+strconv.Itoa(i%100), "c"+strconv.Itoa(i%100)
	u := user{name: "P" + strconv.Itoa(i), email: "p" + strconv.Itoa(i) + "@example.com", id: "u" + strconv.Itoa(i)}
	nc, err := net.DialTimeout("tcp", addr, waitFor)
	if err != nil {
		return nil, err
	}
	_ = nc.SetDeadline(time.Now().Add(waitFor))
	br := bufio.NewReader(nc)
	cookie := "Cookie: socket_io_token_" + cid + "=" + mint(b, u, room, cid) + "\r\n"
	base := "/socket.io/?EIO=4&transport=polling&room=" + url.QueryEscape(room)
	do := func(method, uri, body string) (string, error) {
		req := method + " " + uri + " HTTP/1.1\r\nHost: " + addr + "\r\n" + cookie
		if method == http.MethodPost {
			req += "Content-Type: text/plain;charset=UTF-8\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n"
		}
		if _, err := io.WriteString(nc, req+"\r\n"+body); err != nil {
			return "", err
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		rb, err := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("%s %s: %d %s", method, uri, resp.StatusCode, rb)
		}
		return string(rb), err
	}
	open, err := do(http.MethodGet, base, "")
	if err != nil {
		return nil, err
	}
	sid := open[strings.Index(open, `"sid":"`)+7:]
	sid = sid[:strings.IndexByte(sid, '"')]
	uri := base + "&sid=" + url.QueryEscape(sid)
	if _, err := do(http.MethodPost, uri, "40"); err != nil {
		return nil, err
	}
	for got := ""; !strings.Contains(got, `42["connected"`); {
		if got, err = do(http.MethodGet, uri, ""); err != nil {
			return nil, err
		}
	}
	if _, err := io.WriteString(nc, "GET "+uri+" HTTP/1.1\r\nHost: "+addr+"\r\n"+cookie+"\r\n"); err != nil {
		return nil, err
	}
	_ = nc.SetDeadline(time.Time{})
	return nc, nil
}

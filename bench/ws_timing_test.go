package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"testing"
	"time"
)

// wsChildEnv makes the test binary a signaling server: BenchmarkWS* measure the server's memory in a process
// of its own, not mixed with ten thousand client sockets.
const wsChildEnv = "HLSEDGE_WS_CHILD"

// TestWSChildServer is the server process of BenchmarkWS*; run on its own it skips.
func TestWSChildServer(t *testing.T) {
	if os.Getenv(wsChildEnv) == "" {
		t.Skip("helper process for BenchmarkWS*")
	}
	raiseFDLimit(t)
	cfg := wsTestConfig()
	cfg.MaxConnsPerConference = 20000
	srv, err := StartWSServer("127.0.0.1:0", cfg, WSServerOptions{GCOnScrape: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if p := os.Getenv("HLSEDGE_WS_HEAPPROFILE"); p != "" {
		// kill -USR1 the server process while it is loaded to see where its memory goes.
		runtime.MemProfileRate = 4096
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGUSR1)
		defer signal.Stop(sig)
		go func() {
			for range sig {
				runtime.GC()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				fmt.Fprintf(os.Stderr, "server: sockets %d heap_inuse %d stack_inuse %d goroutines %d\n",
					srv.Sig.Conns(), ms.HeapInuse, ms.StackInuse, runtime.NumGoroutine())
				if f, err := os.Create(p); err == nil {
					_ = pprof.WriteHeapProfile(f)
					_ = f.Close()
				}
			}
		}()
	}
	os.Stdout.WriteString("ADDR " + srv.Addr + "\n")
	_, _ = io.Copy(io.Discard, os.Stdin) // serve until the parent closes our stdin
}

// startWSChild runs the server process and returns its address.
func startWSChild(b *testing.B) string {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestWSChildServer$", "-test.count=1")
	cmd.Env = append(os.Environ(), wsChildEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
		}
	})
	sc := bufio.NewScanner(out)
	for i := 0; i < 100 && sc.Scan(); i++ {
		if a, ok := strings.CutPrefix(sc.Text(), "ADDR "); ok {
			go func() { _, _ = io.Copy(io.Discard, out) }()
			return a
		}
	}
	b.Fatal("server process gave no address")
	return ""
}

func raiseFDLimit(tb testing.TB) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		tb.Fatal(err)
	}
	if l.Cur < l.Max {
		l.Cur = l.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
			tb.Logf("raising the fd limit: %v", err)
		}
	}
}

// benchWS runs one scenario against a server process and reports its numbers; b.N is ignored (use
// -benchtime=1x): the scenario is the unit.
func benchWS(b *testing.B, participants, rooms int, chatRate float64, d time.Duration) {
	raiseFDLimit(b)
	addr := startWSChild(b)
	b.ResetTimer()
	rep, err := RunWS(context.Background(), WSConfig{
		URL: "ws://" + addr + "/ws", Secret: wsTestSecret, Issuer: "bench", Origin: "https://meet.example.com",
		Participants: participants, Rooms: rooms, Duration: d, ChatRate: chatRate,
		MetricsURL: "http://" + addr + "/metrics", Timeout: 60 * time.Second,
	}, nil)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	_ = rep.WriteSummary(os.Stderr)
	if rep.Connected != int64(rep.Sockets) || rep.Admitted != int64(participants) {
		b.Fatalf("connected %d of %d, admitted %d of %d", rep.Connected, rep.Sockets, rep.Admitted, participants)
	}
	if rep.Memory != nil {
		b.ReportMetric(rep.Memory.PerConnHeapStack, "heap+stack-B/conn")
		b.ReportMetric(rep.Memory.PerConnRSS, "rss-B/conn")
	}
	b.ReportMetric(rep.ConnectRate, "conns/s")
	b.ReportMetric(rep.Admission.P99Ms, "admit-p99-ms")
	b.ReportMetric(rep.FanOut.P50Ms, "fanout-p50-ms")
	b.ReportMetric(rep.FanOut.P99Ms, "fanout-p99-ms")
	b.ReportMetric(float64(rep.ChatDelivered), "deliveries")
}

// BenchmarkWSConnections10k: 10,000 participants and 100 moderators over 100 conferences, one chat message per
// second per conference. Goal: at most 15 KB of server memory per socket.
func BenchmarkWSConnections10k(b *testing.B) { benchWS(b, 10000, 100, 1, 10*time.Second) }

// BenchmarkWSFanout1000: one conference of 1,000 participants and a moderator, 20 chat messages per second.
// Goal: p99 fan-out at most 50 ms.
func BenchmarkWSFanout1000(b *testing.B) { benchWS(b, 1000, 1, 20, 10*time.Second) }

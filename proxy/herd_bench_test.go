package proxy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkHerdLargeSegment is a thundering herd on a channel whose segments are larger than
// cache.max_object_size, the 4K case: each iteration, 1,000 viewers ask for a new segment at the same instant
// and read it whole. It reports the origin fetches per segment (goal: 1) and the viewers that did not get the
// whole segment (goal: 0).
//
//	go test -run '^$' -bench HerdLargeSegment -benchtime 5x ./proxy
func BenchmarkHerdLargeSegment(b *testing.B) {
	const viewers = 1000
	seg := pattern(3 << 19) // 1.5 MiB
	var fetches atomic.Int64
	origin := serveLoopback(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		w.Header().Set("Content-Length", strconv.Itoa(len(seg)))
		w.Write(seg)
	}))
	cfg := &Config{Origins: []OriginConfig{{URL: "http://" + origin}}}
	cfg.Auth.Disabled = true
	cfg.Cache.MaxObjectSize = 1 << 20
	cfg.Upstream.Timeout = 30 * time.Second
	srv := buildEdge(b, cfg, Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Shutdown(context.Background())
	base := "http://" + ln.Addr().String()
	tr := &http.Transport{MaxIdleConnsPerHost: viewers, MaxConnsPerHost: 0}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: time.Minute}
	var failed atomic.Int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		url := fmt.Sprintf("%s/play/a001/seg%d.ts", base, i)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for v := range viewers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				resp, err := hc.Get(url + "?token=viewer" + strconv.Itoa(v))
				if err != nil {
					failed.Add(1)
					return
				}
				n, err := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 || n != int64(len(seg)) {
					failed.Add(1)
				}
			}()
		}
		close(start)
		wg.Wait()
	}
	b.StopTimer()
	b.ReportMetric(float64(fetches.Load())/float64(b.N), "origin-fetches/segment")
	b.ReportMetric(float64(failed.Load())/float64(b.N), "failed-viewers/segment")
}

// serveLoopback serves h on a free loopback port until the benchmark ends and returns its address.
func serveLoopback(b *testing.B, h http.Handler) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	s := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go s.Serve(ln)
	b.Cleanup(func() { s.Close() })
	return ln.Addr().String()
}

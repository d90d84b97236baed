package synthorigin

import (
	"context"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// FuzzOriginRequest feeds arbitrary request URIs and Range headers to the origin's handler, in both modes: it
// must never panic, never answer 5xx, and a 206 must lie inside the segment. In LL mode a held request moves the
// clock on to what it waits for, so that no input can hang the fuzzer.
func FuzzOriginRequest(f *testing.F) {
	clk := newTestClock(time.Unix(3000, 0))
	o, err := New(Config{Channels: []string{"a001"}, Variants: 2, Now: clk.Now})
	if err != nil {
		f.Fatal(err)
	}
	llClk := newTestClock(time.Unix(3000, 0))
	ll, err := New(Config{Channels: []string{"a001"}, Variants: 2, LL: true, Now: llClk.Now,
		SleepUntil: func(_ context.Context, t time.Time) bool {
			for {
				cur := llClk.ns.Load()
				if t.UnixNano() <= cur || llClk.ns.CompareAndSwap(cur, t.UnixNano()) {
					return true
				}
			}
		}})
	if err != nil {
		f.Fatal(err)
	}
	_, last := o.Window()
	good := "/play/a001/" + o.SegmentName("a001", 1, last)
	f.Add("/play/a001/index.m3u8?token=x", "")
	f.Add(good, "bytes=0-9")
	f.Add(good, "bytes=-0")
	f.Add(good, "bytes=5-")
	f.Add("/play/a001/"+o.VariantPlaylist("a001", 1), "")
	f.Add("/play/a001/99999999999999999999_0000.ts", "")
	f.Add("/play/a001/%2e%2e/x.ts", "bytes=9-1")
	seq, parts := ll.LiveEdge()
	f.Add("/play/a001/"+ll.VariantPlaylist("a001", 1)+"?_HLS_msn=1001&_HLS_part=1", "")
	f.Add("/play/a001/"+ll.VariantPlaylist("a001", 0)+"?_HLS_part=1&_HLS_msn=", "")
	f.Add("/play/a001/"+ll.PartName("a001", 1, seq, parts), "bytes=0-9")
	f.Add("/play/a001/"+ll.PartName("a001", 0, seq-1, 4)+".m4s", "")
	f.Add("/play/a001/init_1.mp4", "")
	f.Add("/play/a001/"+ll.VariantPlaylist("a001", 0)+"?_HLS_skip=v2&_HLS_msn=1001", "")
	f.Add("/play/a001/"+ll.VariantPlaylist("a001", 1)+"?_HLS_skip=YES&_HLS_skip=no", "")
	handlers := []fasthttp.RequestHandler{o.Handler(), ll.Handler()}
	f.Fuzz(func(t *testing.T, uri, rng string) {
		for _, h := range handlers {
			var ctx fasthttp.RequestCtx
			ctx.Request.SetRequestURI(uri)
			if rng != "" {
				ctx.Request.Header.Set("Range", rng)
			}
			h(&ctx)
			code := ctx.Response.StatusCode()
			switch code {
			case 200, 400, 404, 416:
			case 206:
				if n := len(ctx.Response.Body()); n == 0 || n > 1<<20 {
					t.Fatalf("206 with %d bytes", n)
				}
			default:
				t.Fatalf("GET %q Range %q: status %d", uri, rng, code)
			}
		}
	})
}

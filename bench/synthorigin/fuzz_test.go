package synthorigin

import (
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// FuzzOriginRequest feeds arbitrary request URIs and Range headers to the origin's handler: it must never
// panic, never answer 5xx, and a 206 must lie inside the segment.
func FuzzOriginRequest(f *testing.F) {
	clk := newTestClock(time.Unix(3000, 0))
	o, err := New(Config{Channels: []string{"a001"}, Variants: 2, Now: clk.Now})
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
	h := o.Handler()
	f.Fuzz(func(t *testing.T, uri, rng string) {
		var ctx fasthttp.RequestCtx
		ctx.Request.SetRequestURI(uri)
		if rng != "" {
			ctx.Request.Header.Set("Range", rng)
		}
		h(&ctx)
		code := ctx.Response.StatusCode()
		switch code {
		case 200, 404, 416:
		case 206:
			if n := len(ctx.Response.Body()); n == 0 || n > 1<<20 {
				t.Fatalf("206 with %d bytes", n)
			}
		default:
			t.Fatalf("GET %q Range %q: status %d", uri, rng, code)
		}
	})
}

package synthorigin

import (
	"testing"

	"github.com/valyala/fasthttp"
)

// Handler-level costs of the origin's request kinds, without the network.

func benchOriginRequest(b *testing.B, uri func(o *Origin) string) {
	o, err := New(Config{Channels: []string{"a001", "a002"}, Variants: 2})
	if err != nil {
		b.Fatal(err)
	}
	h := o.Handler()
	u := uri(o)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var ctx fasthttp.RequestCtx
		for pb.Next() {
			ctx.Request.Reset()
			ctx.Response.Reset()
			ctx.Request.SetRequestURI(u)
			ctx.Request.Header.SetHost("127.0.0.1:8081")
			h(&ctx)
			if ctx.Response.StatusCode() != 200 {
				b.Fatalf("status %d", ctx.Response.StatusCode())
			}
		}
	})
}

func BenchmarkOriginMaster(b *testing.B) {
	benchOriginRequest(b, func(*Origin) string { return "/play/a001/index.m3u8" })
}

func BenchmarkOriginMediaPlaylist(b *testing.B) {
	benchOriginRequest(b, func(o *Origin) string { return "/play/a001/" + o.VariantPlaylist("a001", 1) })
}

func BenchmarkOriginSegment(b *testing.B) {
	benchOriginRequest(b, func(o *Origin) string {
		_, last := o.Window()
		// The newest segment stays in the window for a whole segment duration: enough for a benchmark run.
		return "/play/a001/" + o.SegmentName("a001", 0, last)
	})
}

package synthorigin

import (
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// Handler-level costs of the origin's request kinds, without the network.

func benchOriginRequest(b *testing.B, uri func(o *Origin) string) {
	// A stopped clock: the segment a benchmark asks for stays in the window however long the run takes.
	now := time.Unix(1_700_000_000, 0)
	benchOrigin(b, Config{Channels: []string{"a001", "a002"}, Variants: 2, Now: func() time.Time { return now }}, uri)
}

// benchOrigin measures the handler of an origin with cfg answering uri.
func benchOrigin(b *testing.B, cfg Config, uri func(o *Origin) string) {
	o, err := New(cfg)
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
				b.Errorf("status %d", ctx.Response.StatusCode()) // not Fatal: this is not the benchmark's goroutine
				return
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
		return "/play/a001/" + o.SegmentName("a001", 0, last)
	})
}

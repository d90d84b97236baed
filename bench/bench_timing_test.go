package bench

import (
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// Handler-level costs of the origin's request kinds and of the viewer's hot helpers, without the network.

func benchOriginRequest(b *testing.B, uri func(o *Origin) string) {
	o, err := NewOrigin(OriginConfig{Channels: []string{"a001", "a002"}, Variants: 2})
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

func BenchmarkHistogramRecord(b *testing.B) {
	var h histogram
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		d := time.Duration(0)
		for pb.Next() {
			d += 1237 * time.Nanosecond
			h.Record(d % time.Second)
		}
	})
}

func BenchmarkViewerParseMedia(b *testing.B) {
	pl := []byte("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:3\n#EXT-X-MEDIA-SEQUENCE:598445781\n" +
		"#EXT-X-DISCONTINUITY-SEQUENCE:119689156\n#EXTINF:3.000,\nhttp://127.0.0.1:8080/play/a001/598445781_f5f0.ts?token=e1.abcdef\n" +
		"#EXTINF:3.000,\nhttp://127.0.0.1:8080/play/a001/598445782_9ce0.ts?token=e1.abcdef\n#EXT-X-DISCONTINUITY\n" +
		"#EXTINF:3.000,\nhttp://127.0.0.1:8080/play/a001/598445783_bb80.ts?token=e1.abcdef\n" +
		"#EXTINF:3.000,\nhttp://127.0.0.1:8080/play/a001/598445784_7130.ts?token=e1.abcdef\n")
	var p mediaPlaylist
	b.ReportAllocs()
	b.SetBytes(int64(len(pl)))
	for b.Loop() {
		if !parseMedia(pl, &p) || len(p.segments) != 4 {
			b.Fatal("parse")
		}
	}
}

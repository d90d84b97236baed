package bench

import (
	"testing"
	"time"
)

// Costs of the viewer's hot helpers, without the network.

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

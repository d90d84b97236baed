package bench

import (
	"testing"
	"time"
)

// FuzzViewerPlaylist feeds arbitrary bytes to the viewer's playlist readers and URI resolver: no panic, sequence
// numbers consecutive, durations (segments, parts, LL targets) never negative nor absurd.
func FuzzViewerPlaylist(f *testing.F) {
	f.Add([]byte("#EXTM3U\n#EXT-X-TARGETDURATION:3\n#EXT-X-MEDIA-SEQUENCE:5\n#EXTINF:3.0,\na.ts\n#EXTINF:-1,\n/b.ts\n"))
	f.Add([]byte("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1,RESOLUTION=2x2\nv.m3u8\n#EXT-X-STREAM-INF:\n//x/y.m3u8\n"))
	f.Add([]byte("#EXTM3U\r\n#EXT-X-MEDIA-SEQUENCE:9223372036854775807\r\n#EXTINF:nan,\r\nhttp://h/z.ts\r\n#EXT-X-ENDLIST"))
	f.Add([]byte("#EXTM3U\n#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=NaN\n#EXT-X-PART-INF:PART-TARGET=1e300\n" +
		"#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:30.000Z\n#EXT-X-PART:DURATION=0.6,URI=\"a,\"b\",INDEPENDENT=YES\n" +
		"#EXT-X-PART:URI=\"c\",DURATION=-1\n#EXTINF:3,\ns.m4s\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"h\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var p mediaPlaylist
		if parseMedia(b, &p) {
			for i, s := range p.segments {
				if s.seq != p.seq+int64(i) || !(s.duration >= 0 && s.duration <= 86400) || !(p.target >= 0 && p.target <= 86400) {
					t.Fatalf("segment %d: %+v in %+v", i, s, p)
				}
				_ = resolveURI("http://h/play/a/index.m3u8?token=t", s.uri)
			}
		}
		if parseMedia(b, &p) {
			for _, q := range p.parts {
				if q.duration < 0 || q.duration > 86400*time.Second || q.index < 0 {
					t.Fatalf("part %+v in %+v", q, p)
				}
			}
			if !(p.partTarget >= 0 && p.partTarget <= 86400) || !(p.partHoldBack >= 0 && p.partHoldBack <= 86400) {
				t.Fatalf("part target %v, hold back %v", p.partTarget, p.partHoldBack)
			}
			_, _ = p.joinAt(), p.livePos()
		}
		for _, v := range parseMaster(b) {
			_ = resolveURI("http://h/play/a/index.m3u8", []byte(v.uri))
		}
	})
}

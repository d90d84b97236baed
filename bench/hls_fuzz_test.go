package bench

import "testing"

// FuzzViewerPlaylist feeds arbitrary bytes to the viewer's playlist readers and URI resolver: no panic, sequence
// numbers consecutive, durations never negative.
func FuzzViewerPlaylist(f *testing.F) {
	f.Add([]byte("#EXTM3U\n#EXT-X-TARGETDURATION:3\n#EXT-X-MEDIA-SEQUENCE:5\n#EXTINF:3.0,\na.ts\n#EXTINF:-1,\n/b.ts\n"))
	f.Add([]byte("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1,RESOLUTION=2x2\nv.m3u8\n#EXT-X-STREAM-INF:\n//x/y.m3u8\n"))
	f.Add([]byte("#EXTM3U\r\n#EXT-X-MEDIA-SEQUENCE:9223372036854775807\r\n#EXTINF:nan,\r\nhttp://h/z.ts\r\n#EXT-X-ENDLIST"))
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
		for _, v := range parseMaster(b) {
			_ = resolveURI("http://h/play/a/index.m3u8", []byte(v.uri))
		}
	})
}

package playlist

import (
	"strings"
	"testing"
	"time"
)

// Every URI place gets the query of its class: segments, parts, keys and init sections the media query,
// playlists, rendition reports, session data and steering the other. What the playlist says about its
// lifetime comes with the template.
func TestAppendMediaAndTiming(t *testing.T) {
	r := mustRewriter(t, Options{ParamNames: []string{"token"}, OriginHosts: []string{"origin.example.com"}})
	f := func(name string, src []byte, want Timing) {
		t.Helper()
		tmpl, err := r.Parse(src)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := tmpl.Timing(); got != want {
			t.Errorf("%s: timing %+v, want %+v", name, got, want)
		}
		out := string(tmpl.AppendMedia(nil, []byte("token=P"), []byte("token=S")))
		n := 0
		for _, u := range uriPlaces([]byte(out)) {
			if !strings.Contains(u, "token=") {
				continue // foreign or data: no token at all
			}
			n++
			media := !strings.Contains(u, ".m3u8") && !strings.Contains(u, "waitForMSN") && !strings.Contains(u, ".json") &&
				!strings.Contains(u, "steering")
			want := "token=P"
			if media {
				want = "token=S"
			}
			if !strings.Contains(u, want) || strings.Count(u, "token=") != 1 {
				t.Errorf("%s: %q, want %s", name, u, want)
			}
		}
		if n != tmpl.URICount() {
			t.Errorf("%s: %d places with a token, %d points", name, n, tmpl.URICount())
		}
		// Append is AppendMedia with one query for every place.
		if a, b := string(tmpl.Append(nil, []byte("token=X"))), string(tmpl.AppendMedia(nil, []byte("token=X"), []byte("token=X"))); a != b {
			t.Errorf("%s: Append and AppendMedia differ", name)
		}
	}
	f("astra live", liveN(4), Timing{Media: true, Live: true, Target: 3 * time.Second, Duration: 12 * time.Second})
	f("vod", vodN(3), Timing{Media: true, Target: 10 * time.Second, Duration: 30 * time.Second})
	// A delta update: the three segments EXT-X-SKIP stands for count a target duration each.
	f("ll-hls", mustRead(t, "llhls.m3u8"), Timing{Media: true, Live: true, Target: 4 * time.Second,
		Duration: 3*4*time.Second + 3*4000080*time.Microsecond})
	f("master", mustRead(t, "master_renditions.m3u8"), Timing{})
	f("aes media", mustRead(t, "aes_media.m3u8"), r.mustTiming(t, "aes_media.m3u8"))
	f("fmp4", mustRead(t, "fmp4_byterange.m3u8"), r.mustTiming(t, "fmp4_byterange.m3u8"))
	f("steering", mustRead(t, "steering.m3u8"), Timing{})

	g := func(name, src string, want Timing) {
		t.Helper()
		tmpl, err := r.Parse([]byte(src))
		if err != nil {
			t.Fatal(err)
		}
		if got := tmpl.Timing(); got != want {
			t.Errorf("%s: timing %+v, want %+v", name, got, want)
		}
	}
	g("event without end", "#EXTM3U\n#EXT-X-PLAYLIST-TYPE:EVENT\n#EXT-X-TARGETDURATION:6\n#EXTINF:6,\na.ts\n",
		Timing{Media: true, Live: true, Target: 6 * time.Second, Duration: 6 * time.Second})
	g("vod type without endlist", "#EXTM3U\n#EXT-X-PLAYLIST-TYPE: VOD \n#EXT-X-TARGETDURATION:6\n#EXTINF:6,\na.ts\n",
		Timing{Media: true, Target: 6 * time.Second, Duration: 6 * time.Second})
	g("odd numbers", "#EXTM3U\n#EXT-X-TARGETDURATION: 2.5\n#EXTINF:x,\na.ts\n#EXTINF:-1,\nb.ts\n#EXTINF:1e9,\nc.ts\n#EXTINF:NaN,\nd.ts\n#EXTINF:1.5\ne.ts\n",
		Timing{Media: true, Live: true, Target: 2500 * time.Millisecond, Duration: 1500 * time.Millisecond})
	// Delta updates span the whole playlist's window and stay live; the target may come after EXT-X-SKIP.
	g("delta", "#EXTM3U\n#EXT-X-TARGETDURATION:3\n#EXT-X-MEDIA-SEQUENCE:7\n#EXT-X-SKIP:SKIPPED-SEGMENTS=4\n#EXTINF:3,\na.m4s\n",
		Timing{Media: true, Live: true, Target: 3 * time.Second, Duration: 15 * time.Second})
	g("delta, v2, target last", "#EXTM3U\n#EXT-X-SKIP: RECENTLY-REMOVED-DATERANGES=\"a\tb\",SKIPPED-SEGMENTS=2\n#EXTINF:6,\na.m4s\n#EXT-X-TARGETDURATION:6\n",
		Timing{Media: true, Live: true, Target: 6 * time.Second, Duration: 18 * time.Second})
	g("delta without a target", "#EXTM3U\n#EXT-X-SKIP:SKIPPED-SEGMENTS=4\n#EXT-X-PART:DURATION=1,URI=\"p.m4s\"\n",
		Timing{Media: true, Live: true})
	g("odd skips", "#EXTM3U\n#EXT-X-TARGETDURATION:86400\n#EXT-X-SKIP:SKIPPED-SEGMENTS=-1\n#EXT-X-SKIP:SKIPPED-SEGMENTS=x\n"+
		"#EXT-X-SKIP\n#EXT-X-SKIP:SKIPPED-SEGMENTS=4294967295\n#EXT-X-SKIP:SKIPPED-SEGMENTS=4294967295\n",
		Timing{Media: true, Live: true, Target: 24 * time.Hour, Duration: 365 * 24 * time.Hour})
	g("an ended delta", "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-SKIP:SKIPPED-SEGMENTS=10\n#EXTINF:2,\na.m4s\n#EXT-X-ENDLIST\n",
		Timing{Media: true, Target: 2 * time.Second, Duration: 22 * time.Second})
	g("a variant line is no segment", "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n", Timing{})
}

// mustTiming is the timing of a media playlist from testdata as the parser reads it; the test above only
// checks the classes there.
func (r *Rewriter) mustTiming(t *testing.T, name string) Timing {
	t.Helper()
	tmpl, err := r.Parse(mustRead(t, name))
	if err != nil {
		t.Fatal(err)
	}
	if tm := tmpl.Timing(); !tm.Media || tm.Target == 0 {
		t.Fatalf("%s: %+v is not a media playlist's timing", name, tm)
	}
	return tmpl.Timing()
}

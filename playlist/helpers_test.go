package playlist

import (
	"fmt"
	"strings"
)

// liveN is an Astra-style live playlist of n 3-second segments with origin-absolute URIs.
func liveN(n int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:3\n#EXT-X-MEDIA-SEQUENCE:%d\n", 113900582)
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "#EXTINF:3.000,\nhttp://origin.example.com:8000/play/a0g2/%d_92b9.ts\n", 113900582+i)
	}
	return []byte(b.String())
}

// vodN is an ffmpeg-style VOD playlist of n relative segments.
func vodN(n int) []byte {
	var b strings.Builder
	b.WriteString("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:VOD\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "#EXTINF:10.000000,\nout%d.ts\n", i)
	}
	b.WriteString("#EXT-X-ENDLIST\n")
	return []byte(b.String())
}

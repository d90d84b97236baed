package playlist

import (
	"math"
	"strconv"
	"time"
)

// Timing is what a playlist says about how long it and its URIs are used, for the edge to size the
// lifetime of the tokens it puts there.
type Timing struct {
	// Media is true for a media playlist (segments, EXT-X-TARGETDURATION) and false for a master playlist.
	Media bool
	// Live is true for a media playlist that players reload: no EXT-X-ENDLIST and no EXT-X-PLAYLIST-TYPE:VOD
	// (which some players take as the end without the tag).
	Live bool
	// Target is EXT-X-TARGETDURATION; 0 when the playlist has none.
	Target time.Duration
	// Duration is the sum of the EXTINF durations: the presentation of a VOD playlist, the window of a live one.
	// In a delta update (rfc8216bis 6.2.5.1) each segment EXT-X-SKIP stands for counts as one target duration, so
	// that a delta spans the window of the whole playlist and never shortens the tokens sized by it.
	Duration time.Duration
}

// Timing returns what the playlist says about its own lifetime.
func (t *Template) Timing() Timing {
	if t == nil {
		return Timing{}
	}
	return t.timing
}

// maxTimingSeconds bounds parsed durations: a target or segment of more than a day is a broken playlist, and
// the sum must not overflow.
const maxTimingSeconds = 86400

// timingTag reads the tags that say how a playlist is used; value is nil for a tag without a colon. The
// lifetime of every URI place is only known once the whole playlist is read, so this only collects.
func (p *parser) timingTag(tag, value []byte) {
	tm := &p.t.timing
	switch string(tag) {
	case "#EXTINF":
		tm.Media = true
		if i := indexComma(value); i >= 0 {
			value = value[:i]
		}
		if d, ok := seconds(value); ok {
			tm.Duration = min(tm.Duration+d, 365*24*time.Hour)
		}
	case "#EXT-X-TARGETDURATION":
		tm.Media = true
		if d, ok := seconds(value); ok {
			tm.Target = d
		}
	case "#EXT-X-ENDLIST":
		p.ended = true
	case "#EXT-X-PLAYLIST-TYPE":
		if string(trimSpace(value)) == "VOD" {
			p.ended = true
		}
	case "#EXT-X-MEDIA-SEQUENCE":
		tm.Media = true
	case "#EXT-X-SKIP":
		// A delta update: only live media playlists have one. The skipped segments' durations are not known
		// until the target duration is, which may come later; endTiming adds them.
		tm.Media = true
		for i := 0; ; {
			a, ok := nextAttr(value, i, len(value))
			if !ok {
				break
			}
			if string(value[a.ns:a.ne]) == "SKIPPED-SEGMENTS" {
				if n, err := strconv.ParseUint(string(value[a.vs:a.ve]), 10, 32); err == nil {
					p.skipped = min(p.skipped+n, math.MaxUint32)
				}
			}
			i = a.next
		}
	}
}

// endTiming completes the timing once the whole playlist is read: a playlist is live unless it ended, and the
// segments a delta update skipped count for a target duration each.
func (p *parser) endTiming() {
	tm := &p.t.timing
	tm.Live = tm.Media && !p.ended
	if p.skipped > 0 && tm.Target > 0 {
		const most = 365 * 24 * time.Hour
		// Bounded before the product, which could overflow: Target is at most a day.
		tm.Duration = min(tm.Duration+min(time.Duration(p.skipped), most/tm.Target)*tm.Target, most)
	}
}

// seconds parses a decimal number of seconds as players do (RFC 8216 decimal-floating-point, surrounding
// blanks allowed); false for anything else.
func seconds(b []byte) (time.Duration, bool) {
	f, err := strconv.ParseFloat(string(trimSpace(b)), 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > maxTimingSeconds {
		return 0, false
	}
	return time.Duration(math.Round(f * float64(time.Second))), true
}

func indexComma(b []byte) int {
	for i, c := range b {
		if c == ',' {
			return i
		}
	}
	return -1
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

package bench

import (
	"bytes"
	"math"
	"strconv"
	"strings"
	"time"
)

// The viewer reads just what a player needs from a playlist, in one pass over the bytes: it never builds a full
// model, so thousands of viewers polling cost little.

type variantRef struct {
	bandwidth int64
	uri       string
}

type segmentRef struct {
	seq      int64
	duration float64
	uri      []byte // points into the viewer's playlist buffer until the next poll
}

type mediaPlaylist struct {
	target   float64
	seq      int64
	ended    bool
	segments []segmentRef

	// LL-HLS
	canBlock     bool    // EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES
	partTarget   float64 // EXT-X-PART-INF:PART-TARGET, seconds
	partHoldBack float64 // EXT-X-SERVER-CONTROL:PART-HOLD-BACK, seconds (0 if absent)
	mapURI       []byte  // EXT-X-MAP
	parts        []partRef
	hint         partRef // the EXT-X-PRELOAD-HINT of TYPE=PART; its uri is nil without one
}

// partRef is an EXT-X-PART (or the preload hint, with no duration).
type partRef struct {
	msn         int64 // the parent segment's media sequence number
	index       int   // within its segment, from 0
	duration    time.Duration
	independent bool
	uri         []byte // points into the viewer's playlist buffer until the next reload
	// avail is when the part was complete at the origin: its end on the EXT-X-PROGRAM-DATE-TIME timeline. Zero
	// when the playlist has no date.
	avail time.Time
}

func isMaster(b []byte) bool { return bytes.Contains(b, []byte("#EXT-X-STREAM-INF:")) }

// parseMaster lists the variants with their BANDWIDTH.
func parseMaster(b []byte) []variantRef {
	var out []variantRef
	var bw int64 = -1
	for len(b) > 0 {
		var line []byte
		line, b = nextLine(b)
		switch {
		case bytes.HasPrefix(line, []byte("#EXT-X-STREAM-INF:")):
			bw = 0
			if v, ok := attr(line[len("#EXT-X-STREAM-INF:"):], "BANDWIDTH"); ok {
				bw, _ = strconv.ParseInt(v, 10, 64)
			}
		case len(line) > 0 && line[0] != '#' && bw >= 0:
			out = append(out, variantRef{bandwidth: bw, uri: string(line)})
			bw = -1
		}
	}
	return out
}

// parseMedia fills p from b, reusing p's slices; URIs alias b.
func parseMedia(b []byte, p *mediaPlaylist) bool {
	*p = mediaPlaylist{segments: p.segments[:0], parts: p.parts[:0]}
	if !bytes.HasPrefix(b, []byte("#EXTM3U")) {
		return false
	}
	seq := int64(0)
	dur := -1.0
	// The date and the parts of the segment to come: an EXT-X-PART's end is its segment's date plus the
	// durations of the parts before it and its own.
	var segStart time.Time
	var partOff time.Duration
	partIdx := 0
	for len(b) > 0 {
		var line []byte
		line, b = nextLine(b)
		switch {
		case len(line) == 0:
		case line[0] != '#':
			if dur >= 0 {
				p.segments = append(p.segments, segmentRef{seq: p.seq + seq, duration: dur, uri: line})
				seq++
				if !segStart.IsZero() {
					segStart = segStart.Add(seconds(dur))
				}
				dur, partOff, partIdx = -1, 0, 0
			}
		case bytes.HasPrefix(line, []byte("#EXT-X-PART:")):
			list := line[len("#EXT-X-PART:"):]
			uri, ok := attrValue(list, "URI")
			d, err := strconv.ParseFloat(string(attrOr(list, "DURATION")), 64)
			if !ok || err != nil || !(d >= 0 && d <= 86400) {
				break
			}
			pr := partRef{msn: p.seq + seq, index: partIdx, duration: seconds(d), uri: uri,
				independent: string(attrOr(list, "INDEPENDENT")) == "YES"}
			partOff += pr.duration
			if !segStart.IsZero() {
				pr.avail = segStart.Add(partOff)
			}
			p.parts = append(p.parts, pr)
			partIdx++
		case bytes.HasPrefix(line, []byte("#EXT-X-PRELOAD-HINT:")):
			list := line[len("#EXT-X-PRELOAD-HINT:"):]
			if uri, ok := attrValue(list, "URI"); ok && string(attrOr(list, "TYPE")) == "PART" {
				p.hint = partRef{msn: p.seq + seq, index: partIdx, uri: uri}
			}
		case bytes.HasPrefix(line, []byte("#EXT-X-SERVER-CONTROL:")):
			list := line[len("#EXT-X-SERVER-CONTROL:"):]
			p.canBlock = string(attrOr(list, "CAN-BLOCK-RELOAD")) == "YES"
			p.partHoldBack = sane(attrOr(list, "PART-HOLD-BACK"))
		case bytes.HasPrefix(line, []byte("#EXT-X-PART-INF:")):
			p.partTarget = sane(attrOr(line[len("#EXT-X-PART-INF:"):], "PART-TARGET"))
		case bytes.HasPrefix(line, []byte("#EXT-X-MAP:")):
			p.mapURI, _ = attrValue(line[len("#EXT-X-MAP:"):], "URI")
		case bytes.HasPrefix(line, []byte("#EXT-X-PROGRAM-DATE-TIME:")):
			if t, err := time.Parse(time.RFC3339Nano, string(line[len("#EXT-X-PROGRAM-DATE-TIME:"):])); err == nil {
				segStart = t
			}
		case bytes.HasPrefix(line, []byte("#EXTINF:")):
			v := line[len("#EXTINF:"):]
			if i := bytes.IndexByte(v, ','); i >= 0 {
				v = v[:i]
			}
			d, err := strconv.ParseFloat(string(v), 64)
			if err != nil || !(d >= 0 && d <= 86400) { // NaN and absurd values would poison the playback clock
				d = 0
			}
			dur = d
		case bytes.HasPrefix(line, []byte("#EXT-X-TARGETDURATION:")):
			if t, err := strconv.ParseFloat(string(line[len("#EXT-X-TARGETDURATION:"):]), 64); err == nil && t > 0 && t <= 86400 {
				p.target = t
			}
		case bytes.HasPrefix(line, []byte("#EXT-X-MEDIA-SEQUENCE:")) && len(p.segments) == 0: // RFC 8216: before any segment
			p.seq, _ = strconv.ParseInt(string(line[len("#EXT-X-MEDIA-SEQUENCE:"):]), 10, 64)
		case bytes.HasPrefix(line, []byte("#EXT-X-ENDLIST")):
			p.ended = true
		}
	}
	return true
}

func nextLine(b []byte) (line, rest []byte) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		line, rest = b, nil
	} else {
		line, rest = b[:i], b[i+1:]
	}
	return bytes.TrimRight(line, "\r \t"), rest
}

// attr finds NAME=value in an attribute list.
func attr(list []byte, name string) (string, bool) {
	v, ok := attrValue(list, name)
	return string(v), ok
}

// attrOr is attrValue's value, nil when absent.
func attrOr(list []byte, name string) []byte {
	v, _ := attrValue(list, name)
	return v
}

// attrValue finds NAME=value in an attribute list (RFC 8216 4.2): a quoted value without its quotes, which may
// hold commas; the result aliases list.
func attrValue(list []byte, name string) ([]byte, bool) {
	for len(list) > 0 {
		eq := bytes.IndexByte(list, '=')
		if eq < 0 {
			return nil, false
		}
		key, rest := bytes.TrimSpace(list[:eq]), list[eq+1:]
		var val []byte
		if len(rest) > 0 && rest[0] == '"' {
			end := bytes.IndexByte(rest[1:], '"')
			if end < 0 {
				return nil, false
			}
			val, rest = rest[1:1+end], rest[2+end:]
			if c := bytes.IndexByte(rest, ','); c >= 0 {
				rest = rest[c+1:]
			} else {
				rest = nil
			}
		} else if c := bytes.IndexByte(rest, ','); c >= 0 {
			val, rest = rest[:c], rest[c+1:]
		} else {
			val, rest = rest, nil
		}
		if string(key) == name {
			return val, true
		}
		list = rest
	}
	return nil, false
}

// sane parses a number of seconds, 0 unless it lies in (0, 86400]: NaN and absurd values would poison the
// viewer's clocks.
func sane(v []byte) float64 {
	f, err := strconv.ParseFloat(string(v), 64)
	if err != nil || !(f > 0 && f <= 86400) {
		return 0
	}
	return f
}

// seconds converts a playlist duration, rounded to the microsecond so that sums of millisecond values are exact.
func seconds(s float64) time.Duration {
	return time.Duration(math.Round(s*1e6)) * time.Microsecond
}

// resolveURI resolves ref against the URL of the playlist that listed it (RFC 3986, the cases HLS uses):
// absolute, path-absolute, or relative to the playlist's directory. The base query is not inherited, so a token
// reaches children only if the server put it there, exactly as for a real player.
func resolveURI(base string, ref []byte) string {
	if bytes.HasPrefix(ref, []byte("http://")) || bytes.HasPrefix(ref, []byte("https://")) {
		return string(ref)
	}
	schemeEnd := strings.Index(base, "://")
	if schemeEnd < 0 {
		return string(ref)
	}
	hostEnd := strings.IndexByte(base[schemeEnd+3:], '/')
	if hostEnd < 0 {
		hostEnd = len(base)
	} else {
		hostEnd += schemeEnd + 3
	}
	if bytes.HasPrefix(ref, []byte("//")) {
		return base[:schemeEnd+1] + string(ref)
	}
	if len(ref) > 0 && ref[0] == '/' {
		return base[:hostEnd] + string(ref)
	}
	path := base[hostEnd:]
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	dir := path[:strings.LastIndexByte(path, '/')+1]
	if dir == "" {
		dir = "/"
	}
	return base[:hostEnd] + dir + string(ref)
}

package bench

import (
	"bytes"
	"strconv"
	"strings"
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

// parseMedia fills p from b, reusing p's slice; segment URIs alias b.
func parseMedia(b []byte, p *mediaPlaylist) bool {
	*p = mediaPlaylist{segments: p.segments[:0]}
	if !bytes.HasPrefix(b, []byte("#EXTM3U")) {
		return false
	}
	seq := int64(0)
	dur := -1.0
	for len(b) > 0 {
		var line []byte
		line, b = nextLine(b)
		switch {
		case len(line) == 0:
		case line[0] != '#':
			if dur >= 0 {
				p.segments = append(p.segments, segmentRef{seq: p.seq + seq, duration: dur, uri: line})
				seq++
				dur = -1
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

// attr finds NAME=value in an attribute list (unquoted values only, which BANDWIDTH always is).
func attr(list []byte, name string) (string, bool) {
	for _, kv := range strings.Split(string(list), ",") {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return v, true
		}
	}
	return "", false
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

package proxy

import (
	"bytes"
	"errors"
)

// kind is what a path serves; it decides caching, Content-Type and whether the body is rewritten.
type kind uint8

const (
	kindOther kind = iota
	kindPlaylist
	kindSegment
	kindKey
)

func (k kind) String() string {
	switch k {
	case kindPlaylist:
		return "playlist"
	case kindSegment:
		return "segment"
	case kindKey:
		return "key"
	}
	return "other"
}

// route is a matched request: the channel and the origin path, validated.
type route struct {
	channel    []byte
	chAt       int    // where channel starts in the raw path
	originPath []byte // appended into the caller's buffer
	kind       kind
}

var (
	errBadPath    = errors.New("bad path")
	errNoRoute    = errors.New("no route")
	errBadChannel = errors.New("bad channel name")
)

// matchRoute maps a raw request path onto an origin path. It works on the raw path as sent, not fasthttp's
// normalised one, and refuses anything that could climb out of the channel prefix on the origin: dot segments,
// encoded dots or slashes, backslashes, NUL and other control bytes. Set-top boxes never send those, so
// refusing them costs no viewer.
func matchRoute(routes []RouteConfig, raw []byte, dst []byte) (route, error) {
	if len(raw) < 2 || raw[0] != '/' {
		return route{}, errBadPath
	}
	if raw[len(raw)-1] == '/' {
		// A directory is never an HLS resource, and an origin may answer it with a listing.
		return route{}, errNoRoute
	}
	// Every byte allowed: one load per byte and no branch, since a refused byte is rare and a branch on each class
	// is mispredicted wherever letters, digits and dots alternate.
	refused := 0
	for _, c := range raw[1:] {
		if badPathByte(c) {
			refused++ // compiled to a flag added in (SETE, ADD), not a jump
		}
	}
	if refused != 0 {
		return route{}, errBadPath
	}
	// No segment empty, "." or "..": each of those starts with "//" or "/.", which most paths do not hold at all.
	if bytes.Contains(raw, []byte("//")) {
		return route{}, errBadPath
	}
	if bytes.Contains(raw, []byte("/.")) {
		// Slow path: a segment that starts with a dot, such as a hidden file or a traversal.
		seg := 1 // where the current segment starts
		for i := 1; i < len(raw); i++ {
			if raw[i] == '/' {
				if dotSegment(raw[seg:i]) {
					return route{}, errBadPath
				}
				seg = i + 1
			}
		}
		if dotSegment(raw[seg:]) {
			// (The last segment is not empty: a path ending in '/' was refused above.)
			return route{}, errBadPath
		}
	}
	for i := range routes {
		r := &routes[i]
		if len(raw) <= len(r.Prefix) || string(raw[:len(r.Prefix)]) != r.Prefix {
			continue
		}
		rest := raw[len(r.Prefix):]
		slash := bytes.IndexByte(rest, '/')
		if slash <= 0 || slash == len(rest)-1 {
			// A channel needs a file under it: "/play/a001/" or "/play/a001" are not HLS resources.
			continue
		}
		ch := rest[:slash]
		if !validChannel(ch) {
			return route{}, errBadChannel
		}
		dst = append(dst, r.OriginPrefix...)
		dst = append(dst, rest...)
		return route{channel: ch, chAt: len(r.Prefix), originPath: dst, kind: kindOf(rest)}, nil
	}
	return route{}, errNoRoute
}

// pathClass sorts every byte value for matchRoute: 'x' is refused in a path (controls and space, '#', '%', '?',
// '\\', DEL and every non-ASCII byte), '/' separates segments, 'c' may also appear in a channel name (ASCII letters
// and digits, '_', '-', '.'), 'p' is any other printable byte. Percent-encoding has no legitimate use in Astra or
// Flussonic HLS paths; refusing it outright closes every encoded traversal (%2e%2e, %2f, overlong forms) in one
// place. One load per byte: comparisons by range cost a mispredicted branch each time a path goes from letters to
// digits or dots and back.
const pathClass = "" +
	"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxppxpxpppppppcc/ccccccccccpppppx" +
	"pccccccccccccccccccccccccccpxppcpccccccccccccccccccccccccccppppx" +
	"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" +
	"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"

func badPathByte(c byte) bool { return pathClass[c] == 'x' }

func dotSegment(s []byte) bool {
	return len(s) == 1 && s[0] == '.' || len(s) == 2 && s[0] == '.' && s[1] == '.'
}

func validChannel(ch []byte) bool {
	if len(ch) == 0 || len(ch) > 128 {
		return false
	}
	for _, c := range ch {
		if pathClass[c] != 'c' {
			return false
		}
	}
	return true
}

func kindOf(p []byte) kind {
	switch {
	case bytes.HasSuffix(p, []byte(".m3u8")), bytes.HasSuffix(p, []byte(".m3u")):
		return kindPlaylist
	case bytes.HasSuffix(p, []byte(".ts")), bytes.HasSuffix(p, []byte(".m4s")), bytes.HasSuffix(p, []byte(".mp4")),
		bytes.HasSuffix(p, []byte(".aac")), bytes.HasSuffix(p, []byte(".m4a")), bytes.HasSuffix(p, []byte(".vtt")),
		bytes.HasSuffix(p, []byte(".webvtt")), bytes.HasSuffix(p, []byte(".mp3")), bytes.HasSuffix(p, []byte(".cmfv")),
		bytes.HasSuffix(p, []byte(".cmfa")):
		return kindSegment
	case bytes.HasSuffix(p, []byte(".key")):
		return kindKey
	}
	return kindOther
}

// contentType is what the viewer gets when the origin sent none, or sent a generic one.
func (k kind) contentType(path []byte) string {
	switch k {
	case kindPlaylist:
		return "application/vnd.apple.mpegurl"
	case kindKey:
		return "application/octet-stream"
	case kindSegment:
		switch {
		case bytes.HasSuffix(path, []byte(".ts")):
			return "video/MP2T"
		case bytes.HasSuffix(path, []byte(".aac")):
			return "audio/aac"
		case bytes.HasSuffix(path, []byte(".vtt")), bytes.HasSuffix(path, []byte(".webvtt")):
			return "text/vtt"
		case bytes.HasSuffix(path, []byte(".mp3")):
			return "audio/mpeg"
		case bytes.HasSuffix(path, []byte(".m4a")), bytes.HasSuffix(path, []byte(".cmfa")):
			return "audio/mp4"
		}
		return "video/mp4"
	}
	return "application/octet-stream"
}

package playlist

import (
	"bytes"
	"fmt"
)

var bom = []byte("\xEF\xBB\xBF")

// maxBody bounds a template body so that point offsets fit in uint32 (a PublicBase makes it outgrow the input).
const maxBody uint64 = 1<<32 - 1

// Parse runs once per origin playlist version: it finds every URI place and returns the Template that Append
// renders per viewer. It fails with ErrNotPlaylist or ErrTooLarge (wrapped), never on odd content: lines it
// does not understand are copied byte for byte.
func (r *Rewriter) Parse(src []byte) (*Template, error) {
	if len(src) > r.maxSize {
		return nil, fmt.Errorf("body of %d bytes exceeds the %d byte limit: %w", len(src), r.maxSize, ErrTooLarge)
	}
	start := 0
	if bytes.HasPrefix(src, bom) {
		start = len(bom)
	}
	if !isHeader(src[start:]) {
		return nil, fmt.Errorf("first line is not #EXTM3U: %w", ErrNotPlaylist)
	}
	p := parser{r: r, src: src, t: &Template{body: make([]byte, 0, len(src)+len(src)/8)}}
	for i := start; i < len(src); {
		end := len(src)
		next := end
		if n := bytes.IndexByte(src[i:], '\n'); n >= 0 {
			end = i + n
			next = end + 1
		}
		// CRLF and LF both end a line; the CR stays in the copied bytes, after any inserted query.
		if end > i && src[end-1] == '\r' {
			end--
		}
		p.line(i, end)
		i = next
	}
	p.t.body = append(p.t.body, src[p.last:]...)
	p.endTiming()
	if p.overflow || uint64(len(p.t.body)) > maxBody {
		return nil, fmt.Errorf("rewritten body exceeds %d bytes: %w", maxBody, ErrTooLarge)
	}
	return p.t, nil
}

func isHeader(b []byte) bool {
	const tag = "#EXTM3U"
	if !bytes.HasPrefix(b, []byte(tag)) {
		return false
	}
	if len(b) == len(tag) {
		return true
	}
	switch b[len(tag)] {
	case '\r', '\n', ' ', '\t':
		return true
	}
	return false
}

type parser struct {
	r   *Rewriter
	src []byte
	t   *Template
	// last is how much of src has been copied into t.body.
	last int
	// overflow is set when the body outgrows the uint32 offsets of the points.
	overflow bool
	// defines are the EXT-X-DEFINE NAME/VALUE pairs seen so far, to see through {$name} references.
	defines []define
	// media is the class of the URI place being parsed: a segment, part, key or init section (true), or a
	// playlist or other resource (false). streamInf is set between an EXT-X-STREAM-INF and its URI line.
	media, streamInf bool
	// ended is set by EXT-X-ENDLIST or EXT-X-PLAYLIST-TYPE:VOD: players do not reload the playlist.
	ended bool
	// skipped sums the SKIPPED-SEGMENTS of EXT-X-SKIP: the segments a delta update leaves out.
	skipped uint64
}

type define struct{ name, value []byte }

// line handles src[s:e], one line without its terminator.
func (p *parser) line(s, e int) {
	src := p.src
	// Players trim lines, so an indented tag is still a tag and not a URI.
	for s < e && isSpace(src[s]) {
		s++
	}
	if s == e {
		return
	}
	if src[s] != '#' {
		for isSpace(src[e-1]) {
			e--
		}
		// A URI line is a variant playlist after EXT-X-STREAM-INF, a segment everywhere else.
		p.media = !p.streamInf
		p.streamInf = false
		p.uri(s, e)
		return
	}
	if e-s < 4 || string(src[s:s+4]) != "#EXT" {
		return // a comment
	}
	colon := bytes.IndexByte(src[s:e], ':')
	if colon < 0 {
		p.timingTag(src[s:e], nil)
		return
	}
	colon += s
	switch tag := string(src[s:colon]); tag {
	case "#EXT-X-KEY", "#EXT-X-SESSION-KEY", "#EXT-X-MAP", "#EXT-X-PART", "#EXT-X-PRELOAD-HINT":
		p.media = true
		p.attrURIs(colon+1, e, "URI")
	case "#EXT-X-MEDIA", "#EXT-X-I-FRAME-STREAM-INF", "#EXT-X-SESSION-DATA", "#EXT-X-RENDITION-REPORT":
		// Renditions and rendition reports name playlists, which players reload.
		p.media = false
		p.attrURIs(colon+1, e, "URI")
	case "#EXT-X-CONTENT-STEERING":
		p.media = false
		p.attrURIs(colon+1, e, "SERVER-URI")
	case "#EXT-X-DEFINE":
		p.define(colon+1, e)
	case "#EXT-X-STREAM-INF":
		p.streamInf = true
	default:
		p.timingTag(src[s:colon], src[colon+1:e])
	}
}

// attrURIs treats the value of every attribute called name in the attribute list src[i:e] as a URI place.
func (p *parser) attrURIs(i, e int, name string) {
	for {
		a, ok := nextAttr(p.src, i, e)
		if !ok {
			return
		}
		if string(p.src[a.ns:a.ne]) == name {
			p.uri(a.vs, a.ve)
		}
		i = a.next
	}
}

func (p *parser) define(i, e int) {
	var d define
	for {
		a, ok := nextAttr(p.src, i, e)
		if !ok {
			break
		}
		switch string(p.src[a.ns:a.ne]) {
		case "NAME":
			d.name = p.src[a.vs:a.ve]
		case "VALUE":
			d.value = p.src[a.vs:a.ve]
		}
		i = a.next
	}
	// IMPORT and QUERYPARAM values come from elsewhere (the master, the request URL) and stay unknown.
	if d.name != nil && d.value != nil {
		p.defines = append(p.defines, d)
	}
}

type attr struct {
	ns, ne int // name
	vs, ve int // value, without quotes
	next   int
}

// nextAttr parses the attribute at or after i in src[:e]. It is as lenient as players are (spaces, unquoted
// values) and stops at an unterminated quoted string, leaving the rest of the line alone.
func nextAttr(src []byte, i, e int) (a attr, ok bool) {
	for {
		for i < e && (isSpace(src[i]) || src[i] == ',') {
			i++
		}
		a.ns = i
		for i < e && src[i] != '=' && src[i] != ',' {
			i++
		}
		if i >= e {
			return a, false
		}
		if src[i] == '=' {
			break
		}
		// A valueless attribute: skip it.
	}
	a.ne = i
	for a.ne > a.ns && isSpace(src[a.ne-1]) {
		a.ne--
	}
	i++
	for i < e && isSpace(src[i]) {
		i++
	}
	if i < e && src[i] == '"' {
		q := bytes.IndexByte(src[i+1:e], '"')
		if q < 0 {
			return a, false
		}
		a.vs, a.ve = i+1, i+1+q
		i = a.ve + 1
		for i < e && src[i] != ',' {
			i++
		}
	} else {
		a.vs = i
		for i < e && src[i] != ',' {
			i++
		}
		a.ve = i
		for a.ve > a.vs && isSpace(src[a.ve-1]) {
			a.ve--
		}
	}
	a.next = i
	return a, true
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' }

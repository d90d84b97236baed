package playlist

import "bytes"

type uriKind uint8

const (
	// kindRelative is a reference without a host of its own, path-absolute or not: it stays as it is and gets
	// the query, so the same template serves viewers who arrived on different URL layouts.
	kindRelative uriKind = iota
	// kindOrigin is an http(s) URI on an origin host: it becomes an edge URI and gets the query.
	kindOrigin
	// kindForeign is an http(s) URI on any other host, or one whose host depends on the playlist's scheme:
	// left alone, no query, reported.
	kindForeign
	// kindOpaque is any other scheme (data:, skd:, ...) or a URL no browser can fetch (no host): left alone
	// silently.
	kindOpaque
)

// target is where a browser sends the request for a URI reference found in a playlist the edge serves.
type target struct {
	kind uriKind
	// u is the reference as the browser reads it: without surrounding C0 controls and spaces, without tabs and
	// newlines, with '\' as '/' before the query. It aliases the input when that needed no cleaning.
	u []byte
	// scheme is "http" or "https" in the input's case; nil for a reference without scheme.
	scheme []byte
	// host is host[:port] as written, without userinfo; pathStart indexes u where the path (or query) begins.
	host      []byte
	pathStart int
	// odd is set when the spelling hides the host from a plain RFC 3986 reading: cleaning changed something
	// before the path, or the slashes before the host are not exactly two.
	odd bool
}

// resolve reads the reference u (without fragment) as a WHATWG URL parser (browsers, Smart TV engines, hls.js
// through fetch) does against the playlist's URL, an http(s) URL whose scheme the rewriter does not know. Only
// a reference that lands on that URL's host whatever its scheme is kindRelative.
func (r *Rewriter) resolve(u []byte) target {
	var t target
	// Leading and trailing C0 controls and spaces are stripped first: " //evil/x" is "//evil/x".
	i, j := 0, len(u)
	for i < j && u[i] <= ' ' {
		i++
	}
	for j > i && u[j-1] <= ' ' {
		j--
	}
	t.odd = i > 0
	u = u[i:j]
	changed := len(u) // the first byte of the cleaned u that differs from the input
	// Fast path: nothing to remove or translate, u is read in place.
	for k := 0; k < len(u); k++ {
		if c := u[k]; c == '\t' || c == '\n' || c == '\r' || c == '\\' {
			// Slow path: "/\t/evil" and "/\\evil" both mean "//evil".
			u, changed = clean(u, k)
			break
		}
	}
	t.u = u

	n := schemeLen(u)
	if n > 0 {
		t.scheme = u[:n]
		if !bytes.EqualFold(t.scheme, []byte("http")) && !bytes.EqualFold(t.scheme, []byte("https")) {
			t.kind = kindOpaque // non-http schemes are never fetched with the viewer's token
			return t
		}
		n++ // the ':'
	}
	slashes := 0
	for n+slashes < len(u) && u[n+slashes] == '/' {
		slashes++
	}
	ambiguous := false
	switch {
	case t.scheme == nil && slashes < 2:
		t.kind = kindRelative
		return t
	case t.scheme != nil && slashes < 2:
		// "http:x" is relative on an http page and names host x on an https one (and the other way round):
		// the parser skips any number of slashes, even none, when the scheme differs from the base's.
		ambiguous, t.odd = true, true
	case slashes > 2:
		// "///evil/x" and "http:///evil/x" name host evil: the parser ignores extra slashes.
		t.odd = true
	}
	authStart := n + slashes
	t.pathStart = authStart
	for t.pathStart < len(u) && u[t.pathStart] != '/' && u[t.pathStart] != '?' && u[t.pathStart] != '#' {
		t.pathStart++
	}
	if changed < t.pathStart {
		t.odd = true
	}
	t.host = u[authStart:t.pathStart]
	if at := bytes.LastIndexByte(t.host, '@'); at >= 0 {
		t.host = t.host[at+1:]
	}
	switch host, _ := splitHostPort(t.host); {
	case len(host) == 0:
		t.kind = kindOpaque // the parser fails: no request is made
	case !ambiguous && r.isOrigin(t.scheme, t.host):
		t.kind = kindOrigin
	default:
		t.kind = kindForeign
	}
	return t
}

// clean is resolve's slow path: a copy of u without tabs and newlines, with '\' read as '/' before the query
// (special schemes and references resolved against them), as the WHATWG parser does. k is the first byte to
// change; changed is its index in the copy.
func clean(u []byte, k int) (out []byte, changed int) {
	out = append(make([]byte, 0, len(u)), u[:k]...)
	query := bytes.IndexByte(u[:k], '?') >= 0
	for _, c := range u[k:] {
		switch {
		case c == '\t' || c == '\n' || c == '\r':
			continue
		case c == '?' || c == '#':
			query = true
		case c == '\\' && !query:
			c = '/'
		}
		out = append(out, c)
	}
	return out, k
}

// schemeLen is the length of u's scheme, 0 when u does not start with one (then it is a relative reference).
func schemeLen(u []byte) int {
	if len(u) == 0 || !isAlpha(u[0]) {
		return 0
	}
	for i := 1; i < len(u); i++ {
		switch c := u[i]; {
		case c == ':':
			return i
		case isAlpha(c), '0' <= c && c <= '9', c == '+', c == '-', c == '.':
		default:
			return 0
		}
	}
	return 0
}

func (r *Rewriter) isOrigin(scheme, hostport []byte) bool {
	host, port := splitHostPort(hostport)
	for _, o := range r.origins {
		if !bytes.EqualFold(host, []byte(o.host)) {
			continue
		}
		if o.port == "" || string(port) == o.port {
			return true
		}
		if len(port) == 0 {
			switch {
			case o.port == "80" && (scheme == nil || bytes.EqualFold(scheme, []byte("http"))),
				o.port == "443" && (scheme == nil || bytes.EqualFold(scheme, []byte("https"))):
				return true
			}
		}
	}
	return false
}

func isAlpha(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

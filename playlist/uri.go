package playlist

import "bytes"

type uriKind uint8

const (
	// kindRelative is a relative reference, path-absolute or not: it stays as it is and gets the query, so
	// the same template serves viewers who arrived on different URL layouts.
	kindRelative uriKind = iota
	// kindOrigin is an absolute http(s) URI on an origin host: it becomes an edge URI and gets the query.
	kindOrigin
	// kindForeign is an absolute http(s) URI on any other host: left alone, no query, reported.
	kindForeign
	// kindOpaque is any other scheme (data:, skd:, ...): left alone silently.
	kindOpaque
)

// uri handles the URI place src[s:e].
func (p *parser) uri(s, e int) {
	if s >= e {
		return // an empty URI means "this playlist"; a query there would change its meaning
	}
	src := p.src
	f := e // the fragment, which the query must precede
	if n := bytes.IndexByte(src[s:e], '#'); n >= 0 {
		f = s + n
	}
	kind, pathStart := p.r.classify(src[s:f])
	pathStart += s
	hasVars := len(p.defines) > 0 && bytes.Contains(src[s:f], []byte("{$"))
	if hasVars {
		// The player substitutes variables before resolving the URI, so judge what it will fetch.
		eff := p.expand(src[s:f])
		effKind, effPath := p.r.classify(eff)
		switch {
		case effKind == kindOpaque, bytes.IndexByte(eff, '#') >= 0:
			// A fragment inside a value would swallow any query put after the reference.
			return
		case effKind == kindForeign, effKind == kindOrigin && kind != kindOrigin:
			// Rewriting a host that a variable supplies would break the variable; leaving it is honest.
			p.report(eff, effPath)
			return
		}
	}
	switch kind {
	case kindOpaque:
		return
	case kindForeign:
		p.report(src[s:f], pathStart-s)
		return
	}

	body := append(p.t.body, src[p.last:s]...)
	out := len(body)
	if kind == kindOrigin {
		body = append(body, p.r.publicBase...)
		if pathStart == f || src[pathStart] != '/' {
			body = append(body, '/')
		}
	} else {
		pathStart = s
	}
	hasQuery := false
	if q := bytes.IndexByte(src[pathStart:f], '?'); q < 0 {
		body = append(body, src[pathStart:f]...)
	} else {
		q += pathStart
		body = append(body, src[pathStart:q]...)
		body, hasQuery = p.appendQuery(body, src[q+1:f])
	}
	if !hasQuery && hasVars {
		hasQuery = bytes.IndexByte(p.expand(body[out:]), '?') >= 0
	}
	sep := byte('?')
	if hasQuery {
		sep = '&'
	}
	if uint64(len(body)) > maxBody {
		p.overflow = true // offsets are uint32; Parse reports ErrTooLarge
	}
	p.t.points = append(p.t.points, point{off: uint32(len(body)), sep: sep})
	p.t.body = body
	p.last = f
}

// appendQuery appends '?' and the query q without the edge's own parameters, so that the viewer's replace
// them. It reports whether a query was written. Untouched queries are copied byte for byte.
func (p *parser) appendQuery(dst, q []byte) ([]byte, bool) {
	if !p.hasOwnParam(q) {
		return append(append(dst, '?'), q...), true
	}
	mark := len(dst)
	dst = append(dst, '?')
	wrote, nonEmpty := false, false
	for rest := q; ; {
		seg := rest
		n := bytes.IndexByte(rest, '&')
		if n >= 0 {
			seg, rest = rest[:n], rest[n+1:]
		}
		if !p.isOwnParam(seg) {
			if wrote {
				dst = append(dst, '&')
			}
			dst = append(dst, seg...)
			wrote, nonEmpty = true, nonEmpty || len(seg) > 0
		}
		if n < 0 {
			break
		}
	}
	if !nonEmpty {
		return dst[:mark], false
	}
	return dst, true
}

func (p *parser) hasOwnParam(q []byte) bool {
	if len(p.r.params) == 0 {
		return false
	}
	for rest := q; ; {
		seg := rest
		n := bytes.IndexByte(rest, '&')
		if n >= 0 {
			seg, rest = rest[:n], rest[n+1:]
		}
		if p.isOwnParam(seg) {
			return true
		}
		if n < 0 {
			return false
		}
	}
}

func (p *parser) isOwnParam(seg []byte) bool {
	name := seg
	if n := bytes.IndexByte(seg, '='); n >= 0 {
		name = seg[:n]
	}
	for _, own := range p.r.params {
		if string(name) == own {
			return true
		}
	}
	return false
}

// expand substitutes the known {$name} references in b; unknown ones stay as they are.
func (p *parser) expand(b []byte) []byte {
	var out []byte
	for {
		i := bytes.Index(b, []byte("{$"))
		if i < 0 {
			return append(out, b...)
		}
		j := bytes.IndexByte(b[i+2:], '}')
		if j < 0 {
			return append(out, b...)
		}
		name := b[i+2 : i+2+j]
		out = append(out, b[:i]...)
		if v, ok := p.lookup(name); ok {
			out = append(out, v...)
		} else {
			out = append(out, b[i:i+3+j]...)
		}
		b = b[i+3+j:]
	}
}

func (p *parser) lookup(name []byte) ([]byte, bool) {
	for _, d := range p.defines {
		if bytes.Equal(d.name, name) {
			return d.value, true
		}
	}
	return nil, false
}

// report records a foreign URI without userinfo, query and fragment; pathStart indexes u.
func (p *parser) report(u []byte, pathStart int) {
	if len(p.t.foreign) >= maxForeign {
		return
	}
	authStart := bytes.Index(u, []byte("//")) + 2
	b := make([]byte, 0, len(u))
	b = append(b, u[:authStart]...)
	auth := u[authStart:pathStart]
	if at := bytes.LastIndexByte(auth, '@'); at >= 0 {
		auth = auth[at+1:]
	}
	b = append(b, auth...)
	path := u[pathStart:]
	if n := bytes.IndexAny(path, "?#"); n >= 0 {
		path = path[:n]
	}
	b = append(b, path...)
	for _, s := range p.t.foreign {
		if s == string(b) {
			return
		}
	}
	p.t.foreign = append(p.t.foreign, string(b))
}

// classify tells what u (a URI without fragment) is and where the path of an absolute one starts.
func (r *Rewriter) classify(u []byte) (kind uriKind, pathStart int) {
	var scheme []byte
	authStart := -1
	if len(u) > 0 && isAlpha(u[0]) {
		i := 1
		for i < len(u) && (isAlpha(u[i]) || '0' <= u[i] && u[i] <= '9' || u[i] == '+' || u[i] == '-' || u[i] == '.') {
			i++
		}
		if i < len(u) && u[i] == ':' {
			scheme = u[:i]
			if !bytes.EqualFold(scheme, []byte("http")) && !bytes.EqualFold(scheme, []byte("https")) ||
				!bytes.HasPrefix(u[i+1:], []byte("//")) {
				return kindOpaque, 0
			}
			authStart = i + 3
		}
	}
	if authStart < 0 {
		if !bytes.HasPrefix(u, []byte("//")) {
			return kindRelative, 0
		}
		authStart = 2 // scheme-relative: the player keeps the playlist's scheme
	}
	pathStart = authStart
	for pathStart < len(u) && u[pathStart] != '/' && u[pathStart] != '?' && u[pathStart] != '#' {
		pathStart++
	}
	auth := u[authStart:pathStart]
	if at := bytes.LastIndexByte(auth, '@'); at >= 0 {
		auth = auth[at+1:]
	}
	if r.isOrigin(scheme, auth) {
		return kindOrigin, pathStart
	}
	return kindForeign, pathStart
}

func (r *Rewriter) isOrigin(scheme, auth []byte) bool {
	host, port := splitHostPort(auth)
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

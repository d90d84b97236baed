package playlist

import "bytes"

// uri handles the URI place src[s:e].
func (p *parser) uri(s, e int) {
	src := p.src
	// Browsers drop trailing C0 controls and spaces, so the query goes before them (and they stay as they are).
	for e > s && src[e-1] <= ' ' {
		e--
	}
	if s >= e {
		return // an empty URI means "this playlist"; a query there would change its meaning
	}
	f := e // the fragment, which the query must precede
	if n := bytes.IndexByte(src[s:e], '#'); n >= 0 {
		f = s + n
	}
	t := p.r.resolve(src[s:f])
	hasVars := len(p.defines) > 0 && bytes.Contains(src[s:f], []byte("{$"))
	if hasVars {
		// The player substitutes variables before resolving the URI, so judge what it will fetch.
		eff := p.expand(src[s:f])
		et := p.r.resolve(eff)
		switch {
		case et.kind == kindOpaque, bytes.IndexByte(eff, '#') >= 0:
			// A fragment inside a value would swallow any query put after the reference.
			return
		case et.kind == kindForeign, et.kind == kindOrigin && t.kind != kindOrigin:
			// Rewriting a host that a variable supplies would break the variable; leaving it is honest.
			p.report(et)
			return
		}
	}
	switch t.kind {
	case kindOpaque:
		return
	case kindForeign:
		p.report(t)
		return
	}

	body := append(p.t.body, src[p.last:s]...)
	out := len(body)
	// rest is the path and query that follow the host in the output: the input from s on for a relative
	// reference (byte for byte), the path of an origin URI as the browser reads it otherwise.
	rest := src[s:f]
	if t.kind == kindOrigin {
		rest = t.u[t.pathStart:]
		body = append(body, p.r.publicBase...)
		switch {
		case len(rest) == 0 || rest[0] != '/':
			body = append(body, '/')
		case p.r.publicBase == "" && len(rest) > 1 && rest[1] == '/':
			// "//x" alone would name host x; "/." keeps it a path on this host, where every resolver drops the
			// "." segment and requests "//x" from the edge as the origin URI did.
			body = append(body, '/', '.')
		}
	}
	hasQuery := false
	if q := bytes.IndexByte(rest, '?'); q < 0 {
		body = append(body, rest...)
	} else {
		body = append(body, rest[:q]...)
		body, hasQuery = p.appendQuery(body, rest[q+1:])
	}
	if t.kind == kindOrigin && p.r.publicBase == "" && hasVars {
		// Built as above, a path stays on the edge's host; but a variable in it can hold "/evil.net", so check
		// what the player will resolve.
		if et := p.r.resolve(p.expand(body[out:])); et.kind != kindRelative {
			et.odd = true
			p.report(et)
			return // body is dropped: p.t.body still ends before src[p.last:s]
		}
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
	p.t.points = append(p.t.points, point{off: uint32(len(body)), sep: sep, media: p.media})
	if !p.media {
		p.t.others++
	}
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

// report records where a foreign URI leads, without userinfo, query and fragment: the proxy logs these lists.
func (p *parser) report(t target) {
	b := make([]byte, 0, len(t.scheme)+3+len(t.host)+len(t.u)-t.pathStart)
	if t.scheme != nil {
		b = append(append(b, t.scheme...), ':')
	}
	b = append(append(b, "//"...), t.host...)
	path := t.u[t.pathStart:]
	if n := bytes.IndexAny(path, "?#"); n >= 0 {
		path = path[:n]
	}
	s := string(append(b, path...))
	p.t.foreign = addDistinct(p.t.foreign, s)
	if t.odd {
		p.t.disguised = addDistinct(p.t.disguised, s)
	}
}

// addDistinct appends s to list unless it is there already or the list is full: a hostile playlist must not
// flood the proxy's log.
func addDistinct(list []string, s string) []string {
	if len(list) >= maxForeign {
		return list
	}
	for _, have := range list {
		if have == s {
			return list
		}
	}
	return append(list, s)
}

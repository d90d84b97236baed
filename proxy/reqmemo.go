package proxy

// A player reloads its playlist down one keep-alive connection with the very same request line, every target
// duration. What the edge makes of that line before any decision (the route, the channel, the cache key's origin
// path, whether the query holds only token parameters, where the token is) depends on nothing but the line and
// the config, so the connection keeps it from its last playlist request, and the next identical line skips the
// parsing: matchRoute and the two scans of the raw query. Segment URIs do not repeat, so segments neither use the
// memo nor replace it, and a player's segment fetches between two reloads leave it in place.
//
// Everything downstream still runs on every request: the decision (with its own connection memo, bans, kicks
// and expiry), the session count, the cache lookup and the rewrite.

// maxMemoURI bounds what a connection keeps: longer request lines are parsed every time.
const maxMemoURI = 1024

// requestMemo is a connection's parse of its last playlist request line; the zero value is empty. fasthttp serves
// a connection's requests one at a time, on one goroutine, so it needs no lock.
type requestMemo struct {
	// s is the generation (the config) that parsed the line: after a reload the line is parsed again. It keeps
	// the replaced generation alive until the connection's next playlist request or its close.
	s          *Server
	uri        []byte // the raw request URI, as sent
	kind       kind
	chAt, chTo int // the channel: raw path[chAt:chTo]
	originPath []byte
	onlyTokens bool
	tok        queryArgMemo
}

// queryArgMemo is one answer requestCarrier.QueryArg read off the raw query: the argument name has the value
// query[start:end], or none when start < 0. The zero value (no name) answers nothing.
type queryArgMemo struct {
	name       string
	start, end int
}

// lookup is true when m holds line as parsed by s.
func (m *requestMemo) lookup(s *Server, line []byte) bool {
	return m.s == s && string(m.uri) == string(line)
}

// route is the memo's route for rawPath (the raw path of a line that lookup found), with the origin path appended
// to dst.
func (m *requestMemo) route(rawPath, dst []byte) route {
	return route{channel: rawPath[m.chAt:m.chTo], chAt: m.chAt, originPath: append(dst, m.originPath...), kind: m.kind}
}

// remember keeps what s made of line.
func (m *requestMemo) remember(s *Server, line []byte, rt *route, onlyTokens bool, tok queryArgMemo) {
	if len(line) > maxMemoURI {
		m.s = nil
		return
	}
	m.s = s
	m.uri = append(m.uri[:0], line...)
	m.kind = rt.kind
	m.chAt, m.chTo = rt.chAt, rt.chAt+len(rt.channel)
	m.originPath = append(m.originPath[:0], rt.originPath...)
	m.onlyTokens = onlyTokens
	m.tok = tok
}

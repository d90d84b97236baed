package proxy

import (
	"bytes"
	"errors"
	"hash/maphash"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/hlsedge/hlsedge/playlist"
)

// Low-latency HLS (draft-pantos-hls-rfc8216bis) through the edge. Three things make it cheap for the origin:
//
//   - A blocking playlist reload (_HLS_msn, _HLS_part, _HLS_skip) is keyed by its path and its directives, spelled
//     one way whatever order the player wrote them in, so every viewer waiting for one playlist version shares one
//     cache entry and one origin request. The edge waits for it as long as the origin may hold it (three target
//     durations of the last playlist seen of that path, within upstream.max_hold) instead of upstream.timeout, and
//     a hold that runs out is a 503 for every waiter, never cached and never held against the origin's health.
//   - Parts and hinted parts, which the edge learns from the playlists it takes, go through the shared stream
//     whatever their size: their bytes reach every coalesced viewer as the origin sends them, and the part is
//     cached once it arrived whole.
//   - Once a playlist has EXT-X-ENDLIST, its directives are ignored (6.2.5.2): every viewer gets the one cached
//     playlist.
//
// A delta update (_HLS_skip, 6.2.5.1) is a playlist like the others: its own cache entry, its URIs rewritten, its
// EXT-X-SKIP copied as is. It teaches observe what the whole playlist does, since EXT-X-SKIP only stands for old
// segments, never for the target duration or the parts; and its timing counts the skipped segments
// (playlist.Timing), so its segment tokens live as long as the whole playlist's.

// holdGrace is what the edge waits beyond the origin's hold, so that the origin's own 503 (or its answer at the
// last moment) arrives before the edge gives up.
const holdGrace = time.Second

// maxLLEntries bounds each generation of the LL state (playlists, part keys); see generations.
const maxLLEntries = 1 << 16

// llPlaylist is what the edge remembers of one media playlist path.
type llPlaylist struct {
	target time.Duration
	ended  bool
}

// llConfig is what the LL state takes from the config in force; a reload swaps it (configure), keeping what was
// learned from playlists.
type llConfig struct {
	maxHold time.Duration
	// hosts are the origins' hosts, lower case: a part URI on one of them is the edge's to serve.
	hosts []string
}

// llState is what the edge learns from the media playlists it takes from its origins. It lives in the core, so
// it outlives reloads.
type llState struct {
	cfg  atomic.Pointer[llConfig]
	seed maphash.Seed

	// mu is read-locked on every blocking reload and every part miss, locked once per playlist version taken.
	mu        sync.RWMutex
	playlists generations[string, llPlaylist]
	// parts holds the hashes of part keys (origin path and query): a collision only streams a segment that could
	// have been buffered, which serves it the same.
	parts generations[uint64, struct{}]

	blocking, holdTimeouts, partsStreamed, partsCached *metrics.Counter
}

func newLLState(cfg *Config, set *metrics.Set) *llState {
	l := &llState{seed: maphash.MakeSeed()}
	l.configure(cfg)
	l.playlists.max, l.parts.max = maxLLEntries, maxLLEntries
	l.blocking = set.NewCounter(`hlsedge_ll_blocking_requests_total`)
	l.holdTimeouts = set.NewCounter(`hlsedge_ll_hold_timeouts_total`)
	l.partsStreamed = set.NewCounter(`hlsedge_ll_parts_streamed_total`)
	l.partsCached = set.NewCounter(`hlsedge_ll_parts_cached_total`)
	return l
}

// configure takes upstream.max_hold and the origins' hosts from cfg: at start, and on every reload (Server.Apply),
// so that a new hold limit bounds the next blocking reload and parts on a new origin's host are recognised. The
// playlists and parts learned so far stay: they are keyed by origin path, which a new origin serves the same.
func (l *llState) configure(cfg *Config) {
	c := &llConfig{maxHold: cfg.Upstream.MaxHold}
	for _, o := range cfg.Origins {
		c.hosts = append(c.hosts, strings.ToLower(o.host))
	}
	l.cfg.Store(c)
}

// generations is a map bounded without a clock or a sweep: when the current generation is full it becomes the
// previous one and the one before is dropped, so what was seen recently stays and memory stays below 2×max.
type generations[K comparable, V any] struct {
	cur, prev map[K]V
	max       int
}

func (g *generations[K, V]) get(k K) (V, bool) {
	if v, ok := g.cur[k]; ok {
		return v, true
	}
	v, ok := g.prev[k]
	return v, ok
}

func (g *generations[K, V]) put(k K, v V) {
	if _, ok := g.cur[k]; !ok && len(g.cur) >= g.max || g.cur == nil {
		g.prev, g.cur = g.cur, make(map[K]V)
	}
	g.cur[k] = v
}

// playlist returns what is known of the media playlist at path (an origin path without query).
func (l *llState) playlist(path []byte) (llPlaylist, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.playlists.get(string(path))
}

// holdWait is how long the edge waits on its origin for a blocking reload of path: the origin holds it up to
// three target durations (6.2.5.2) and then answers 503, and the answer needs a moment to travel. It is bounded
// by upstream.max_hold, which is also the wait when the edge has not seen the playlist yet.
func (l *llState) holdWait(path []byte) time.Duration {
	maxHold := l.cfg.Load().maxHold
	if p, ok := l.playlist(path); ok && p.target > 0 {
		return min(3*p.target+holdGrace, maxHold)
	}
	return maxHold
}

// isPart reports whether key (origin path and query) was listed as a part or hinted in a playlist of late.
func (l *llState) isPart(key []byte) bool {
	h := maphash.Bytes(l.seed, key)
	l.mu.RLock()
	defer l.mu.RUnlock()
	_, ok := l.parts.get(h)
	return ok
}

// observe learns from a media playlist the edge took from its origin under key: its target duration, whether it
// ended, and its parts and hinted part, resolved to the keys viewers will ask for. A master playlist (no
// EXT-X-TARGETDURATION) teaches nothing. Byte-range parts are left out: their URI is the whole segment, which
// viewers ask for by Range and the edge serves from a whole cached copy, as any segment.
func (l *llState) observe(key, body []byte, isToken func([]byte) bool) {
	path := key[:pathLen(key)]
	var (
		p     llPlaylist
		media bool
		parts []uint64
		buf   []byte
	)
	for rest := body; len(rest) > 0; {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i], rest[i+1:]
		} else {
			rest = nil
		}
		line = bytes.TrimSpace(line)
		var uri []byte
		switch {
		case bytes.HasPrefix(line, []byte("#EXT-X-TARGETDURATION:")):
			if n, ok := parseDecimal(bytes.TrimSpace(line[len("#EXT-X-TARGETDURATION:"):])); ok {
				// A hostile playlist cannot stretch the hold past upstream.max_hold anyway; this keeps the product
				// from overflowing.
				p.target = time.Duration(min(n, 86400)) * time.Second
				media = true
			}
		case string(line) == "#EXT-X-ENDLIST":
			p.ended = true
		case bytes.HasPrefix(line, []byte("#EXT-X-PART:")):
			if attrs := line[len("#EXT-X-PART:"):]; attrValue(attrs, "BYTERANGE") == nil {
				uri = attrValue(attrs, "URI")
			}
		case bytes.HasPrefix(line, []byte("#EXT-X-PRELOAD-HINT:")):
			if attrs := line[len("#EXT-X-PRELOAD-HINT:"):]; string(attrValue(attrs, "TYPE")) == "PART" &&
				attrValue(attrs, "BYTERANGE-START") == nil {
				uri = attrValue(attrs, "URI")
			}
		}
		if len(uri) > 0 {
			var ok bool
			if buf, ok = l.resolve(buf[:0], path, uri, isToken); ok {
				parts = append(parts, maphash.Bytes(l.seed, buf))
			}
		}
	}
	if !media {
		return
	}
	l.mu.Lock()
	l.playlists.put(string(path), p)
	for _, h := range parts {
		l.parts.put(h, struct{}{})
	}
	l.mu.Unlock()
}

// resolve appends to dst the key a viewer's request for uri, listed in the playlist at base (an origin path),
// maps to: the origin path, then the query without token parameters, spelled as the request path spells it. It
// reports false for URIs the edge does not serve (another host) or will refuse (dot segments).
func (l *llState) resolve(dst, base, uri []byte, isToken func([]byte) bool) ([]byte, bool) {
	if i := bytes.IndexByte(uri, '#'); i >= 0 {
		uri = uri[:i]
	}
	var query []byte
	if i := bytes.IndexByte(uri, '?'); i >= 0 {
		uri, query = uri[:i], uri[i+1:]
	}
	switch {
	case hasPrefixFold(uri, "http://") || hasPrefixFold(uri, "https://"):
		rest := uri[bytes.Index(uri, []byte("//"))+2:]
		slash := bytes.IndexByte(rest, '/')
		if slash < 0 || !l.originHost(rest[:slash]) {
			return dst, false
		}
		dst = append(dst, rest[slash:]...)
	case bytes.HasPrefix(uri, []byte("//")):
		return dst, false
	case bytes.HasPrefix(uri, []byte("/")):
		dst = append(dst, uri...)
	default:
		dst = append(dst, base[:bytes.LastIndexByte(base, '/')+1]...)
		dst = append(dst, uri...)
	}
	if bytes.Contains(dst, []byte("/./")) || bytes.Contains(dst, []byte("/../")) || bytes.HasSuffix(dst, []byte("/..")) {
		return dst, false
	}
	if len(query) > 0 {
		var args fasthttp.Args
		args.ParseBytes(query)
		dst = appendOriginQuery(dst, &args, isToken)
	}
	return dst, true
}

func (l *llState) originHost(h []byte) bool {
	for _, o := range l.cfg.Load().hosts {
		if len(h) == len(o) && strings.EqualFold(string(h), o) {
			return true
		}
	}
	return false
}

func hasPrefixFold(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && strings.EqualFold(string(b[:len(prefix)]), prefix)
}

// attrValue finds attribute name in an attribute list (NAME=VALUE,NAME="VALUE") and returns its value without
// quotes, or nil.
func attrValue(attrs []byte, name string) []byte {
	for len(attrs) > 0 {
		attrs = bytes.TrimLeft(attrs, " \t,")
		eq := bytes.IndexByte(attrs, '=')
		if eq < 0 {
			return nil
		}
		key := bytes.TrimSpace(attrs[:eq])
		attrs = bytes.TrimLeft(attrs[eq+1:], " \t")
		var val []byte
		if len(attrs) > 0 && attrs[0] == '"' {
			end := bytes.IndexByte(attrs[1:], '"')
			if end < 0 {
				return nil
			}
			val, attrs = attrs[1:1+end], attrs[2+end:]
		} else {
			end := bytes.IndexByte(attrs, ',')
			if end < 0 {
				end = len(attrs)
			}
			val, attrs = bytes.TrimSpace(attrs[:end]), attrs[end:]
		}
		if string(key) == name {
			return val
		}
	}
	return nil
}

// The delivery directives of rfc8216bis 6.2.5, in the order the edge writes them into cache keys.
const (
	hlsMsn  = "_HLS_msn"
	hlsPart = "_HLS_part"
	hlsSkip = "_HLS_skip"
)

// llDirectives reads a playlist request's delivery directives and spells them one way in sc.query, and so in
// the cache key and the origin request: the other parameters in their order, then _HLS_msn, _HLS_part and
// _HLS_skip, numbers without leading zeros. Viewers waiting for one playlist version then share one cache entry
// and one origin request however their players wrote the query. Directives the spec refuses get 400 here, before
// any origin work; once the playlist has EXT-X-ENDLIST they are dropped, since the server must ignore them.
func (s *Server) llDirectives(ctx *fasthttp.RequestCtx, sc *scratch) bool {
	// Fast path: no directive. sc.query holds the decoded names re-escaped, and '_' is never escaped, so this
	// also finds a percent-encoded spelling.
	if !bytes.Contains(sc.query, []byte("_HLS_")) {
		return true
	}
	// Slow path: a blocking reload or a delta update.
	var (
		msn, part, skip          []byte
		hasMsn, hasPart, hasSkip bool
		dup                      bool
	)
	q := sc.query[:0]
	for k, v := range ctx.URI().QueryArgs().All() {
		switch string(k) {
		case hlsMsn:
			dup = dup || hasMsn
			msn, hasMsn = v, true
		case hlsPart:
			dup = dup || hasPart
			part, hasPart = v, true
		case hlsSkip:
			dup = dup || hasSkip
			skip, hasSkip = v, true
		default:
			if s.isTokenParam(k) {
				continue
			}
			q = appendQuerySep(q)
			q = playlist.AppendQueryEscape(q, k)
			if len(v) > 0 {
				q = append(q, '=')
				q = playlist.AppendQueryEscape(q, v)
			}
		}
	}
	sc.query = q
	if p, _ := s.ll.playlist(sc.originPath); p.ended {
		return true
	}
	why := ""
	n, msnOK := parseDecimal(msn)
	pn, partOK := parseDecimal(part)
	switch {
	case dup:
		why = "a delivery directive is given twice"
	case hasPart && !hasMsn:
		why = "_HLS_part requires _HLS_msn"
	case hasMsn && !msnOK:
		why = "_HLS_msn must be a decimal integer"
	case hasPart && !partOK:
		why = "_HLS_part must be a decimal integer"
	case hasSkip && string(skip) != "YES" && string(skip) != "v2":
		why = "_HLS_skip must be YES or v2"
	}
	if why != "" {
		s.reqLog.Info("bad delivery directives", "reason", why, "path", string(ctx.Request.URI().PathOriginal()),
			"ip", s.clientIP(ctx).String())
		fail(ctx, fasthttp.StatusBadRequest, "bad request: "+why)
		return false
	}
	if hasMsn {
		s.ll.blocking.Inc()
		q = append(appendQuerySep(q), hlsMsn+"="...)
		q = strconv.AppendUint(q, n, 10)
	}
	if hasPart {
		q = append(appendQuerySep(q), hlsPart+"="...)
		q = strconv.AppendUint(q, pn, 10)
	}
	if hasSkip {
		q = append(appendQuerySep(q), hlsSkip+"="...)
		q = append(q, skip...)
	}
	sc.query = q
	return true
}

func appendQuerySep(q []byte) []byte {
	if len(q) == 0 {
		return append(q, '?')
	}
	return append(q, '&')
}

// parseDecimal reads 1 to 18 ASCII digits.
func parseDecimal(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

// blockingKey reports whether a playlist cache key is a blocking reload, which llDirectives spelled.
func blockingKey(key []byte) bool {
	q := key[pathLen(key):]
	return bytes.HasPrefix(q, []byte("?"+hlsMsn+"=")) || bytes.Contains(q, []byte("&"+hlsMsn+"="))
}

// holdError passes on the error of a blocking reload and counts the holds that ran out: a 503 from the origin
// or from the edge's own wait (see Upstreams.try); a failure to reach the origin stays what it is.
func (s *Server) holdError(err error) error {
	var oe *OriginError
	if errors.As(err, &oe) && oe.Status == fasthttp.StatusServiceUnavailable {
		s.ll.holdTimeouts.Inc()
	}
	return err
}

// blockingTTL is how long a blocking reload's answer is cached: it answers one playlist version, which stays a
// valid answer to those directives, so it is kept for the hold at least, for viewers who ask a little late.
func (s *Server) blockingTTL(key []byte, ttl time.Duration) time.Duration {
	if p, ok := s.ll.playlist(key[:pathLen(key)]); ok {
		return max(ttl, 3*p.target)
	}
	return ttl
}

// setAge gives a cached playlist its Age (RFC 9111 4.2.3): what the origin said it was when it arrived plus the
// whole seconds it spent here. hls.js reads it to aim its next blocking reload at the live edge, and takes a
// missing one for 0, which is when it is left out: a playlist as fresh as the origin's.
func setAge(h *fasthttp.ResponseHeader, o *object, now time.Time) {
	age := (o.originAge + now.Sub(o.storedAt)) / time.Second
	if age <= 0 {
		return
	}
	var b [20]byte
	h.SetBytesV(fasthttp.HeaderAge, strconv.AppendInt(b[:0], int64(age), 10))
}

// parseAge reads an origin's Age header, in seconds; anything else counts as 0.
func parseAge(v []byte) time.Duration {
	n, ok := parseDecimal(v)
	if !ok {
		return 0
	}
	return time.Duration(min(n, 86400)) * time.Second
}

// streamPart passes a part's origin body to every viewer waiting for it as it arrives, however small the part:
// a hinted part is written by the origin as it is produced, and a viewer must not wait for its end. Once it
// arrived whole, the part is cached like any segment, so later viewers do not ask the origin again.
func (s *Server) streamPart(key []byte, resp *originResponse) fetchResult {
	s.ll.partsStreamed.Inc()
	resp.body.stream(s.cfg.Upstream.Timeout)
	size := max(resp.header.ContentLength(), -1)
	ct := string(resp.header.ContentType())
	if ct == "" || strings.HasPrefix(ct, "application/octet-stream") || strings.HasPrefix(ct, "text/plain") {
		ct = kindSegment.contentType(key[:pathLen(key)])
	}
	st := newSharedStream(s.fetches, string(key), string(key[:pathLen(key)]), size, nil, &resp.body,
		int64(s.cfg.Cache.StreamBuffer), s.log)
	limit := int(s.cfg.Cache.MaxObjectSize)
	st.fill = func(body []byte) {
		if len(body) > limit {
			return
		}
		now := s.now()
		o := &object{key: st.key, body: body, contentType: ct, kind: kindSegment, storedAt: now,
			expiresAt: now.Add(s.cfg.Cache.SegmentTTL)}
		o.keepUntil = o.expiresAt
		s.cache.Put(o)
		s.ll.partsCached.Inc()
	}
	return fetchResult{stream: st}
}

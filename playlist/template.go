package playlist

import "slices"

// Template is a parsed playlist: its rewritten bytes plus the places where a viewer's query goes.
// It is immutable and safe for concurrent use; the proxy caches one per origin playlist version.
type Template struct {
	// body is the output for an empty query: the input with origin hosts rewritten and the edge's own
	// parameters removed, otherwise byte for byte.
	body   []byte
	points []point
	// others counts the points that are not media ones (they take AppendMedia's query, not its media).
	others int
	// foreign are http(s) URIs on hosts that are not origins, as a browser resolves them, without userinfo,
	// query or fragment.
	foreign []string
	// disguised are the foreign URIs whose spelling hides their host (see Disguised).
	disguised []string
	// timing is what the playlist says about how long it and its segments are used (see Timing).
	timing Timing
}

// point is one URI place: the query goes at body[off], after sep.
type point struct {
	off uint32
	// sep is '&' when the URI already has a query and '?' otherwise. It is always written, even after a
	// URI that ends in '?' or '&', so that the inserted bytes can be told apart from the input.
	sep byte
	// media marks a segment, part, key or init-section URI, which AppendMedia gives its own query.
	media bool
}

// maxForeign bounds Foreign so that a hostile playlist cannot flood the proxy's log.
const maxForeign = 16

// Append is the per-viewer fast path: it appends the playlist to dst with query inserted at every URI place,
// before any '#fragment'. query is already percent-encoded ("token=abc", "md5=x&expires=1"; see
// AppendQueryParam) and must not contain '"', '#', CR or LF; a leading '?' or '&' is ignored.
// An empty query still yields the host rewriting. Append does not allocate when cap(dst) has room for Size.
func (t *Template) Append(dst []byte, query []byte) []byte {
	return t.AppendMedia(dst, query, query)
}

// AppendMedia is Append with its own query for the segment, part, key and init-section URIs (EXTINF lines,
// EXT-X-PART, EXT-X-PRELOAD-HINT, EXT-X-KEY, EXT-X-SESSION-KEY, EXT-X-MAP), and query for the rest (variant
// and rendition playlists, rendition reports, session data, steering): the edge gives segments of a live
// playlist short-lived tokens, minted again on every reload, and playlists the viewer's lifetime.
func (t *Template) AppendMedia(dst []byte, query, media []byte) []byte {
	if t == nil {
		return dst
	}
	query, media = trimSep(query), trimSep(media)
	if len(t.points) == 0 || len(query) == 0 && len(media) == 0 {
		return append(dst, t.body...)
	}
	dst = slices.Grow(dst, len(t.body)+len(t.points)*(max(len(query), len(media))+1))
	prev := uint32(0)
	for _, p := range t.points {
		dst = append(dst, t.body[prev:p.off]...)
		q := query
		if p.media {
			q = media
		}
		if len(q) > 0 {
			dst = append(dst, p.sep)
			dst = append(dst, q...)
		}
		prev = p.off
	}
	return append(dst, t.body[prev:]...)
}

func trimSep(q []byte) []byte {
	for len(q) > 0 && (q[0] == '?' || q[0] == '&') {
		q = q[1:]
	}
	return q
}

// Size is the length of Append's output for a query of queryLen bytes, for sizing buffers up front.
func (t *Template) Size(queryLen int) int {
	if t == nil {
		return 0
	}
	if queryLen == 0 {
		return len(t.body)
	}
	return len(t.body) + len(t.points)*(queryLen+1)
}

// Foreign lists the distinct http(s) URIs that a browser resolves to hosts that are not origins (Disguised
// included), at most 16, in the form it resolves them. They are left untouched
// and get no query, so the viewer's token never reaches a third party. Userinfo, query and fragment are cut
// off because they may hold a third party's credentials and the proxy logs this list. Do not modify it.
func (t *Template) Foreign() []string {
	if t == nil {
		return nil
	}
	return t.foreign
}

// Disguised lists the URIs among the foreign ones whose spelling hides where they lead: a browser (any WHATWG URL
// parser) strips surrounding control characters and spaces, drops tabs and newlines, reads '\' as '/' and skips
// extra slashes before a host, so "/\\evil.example/x" or "/\t/evil.example/x" go to evil.example. They get no
// token, like every foreign URI, and are listed here in the form the browser resolves; an origin that writes
// them is broken or hostile, so the proxy counts and logs them apart. At most 16. Do not modify it.
func (t *Template) Disguised() []string {
	if t == nil {
		return nil
	}
	return t.disguised
}

// QueriesPlaylists reports whether any URI place is not a media one (a variant or rendition playlist, a rendition
// report, session data, steering): only then does AppendMedia read its query argument.
func (t *Template) QueriesPlaylists() bool { return t != nil && t.others > 0 }

// URICount is the number of URI places that get the query.
func (t *Template) URICount() int {
	if t == nil {
		return 0
	}
	return len(t.points)
}

package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/valyala/fasthttp"
)

// fetchResult is what the coalesced leader hands to every waiter: a shareable object, or, when the body was too
// large to buffer, a stream that only the leader may use.
type fetchResult struct {
	obj    *object
	stream *originStream
}

// fetch asks the origins for uri (origin path plus origin query) once. It runs on the leader's request, but
// everything it returns is copied out of fasthttp's buffers so that waiters may keep it after the leader's
// handler returns.
func (s *Server) fetch(ctx *fasthttp.RequestCtx, k kind, uri []byte) (fetchResult, error) {
	resp, err := s.originGet(ctx, uri)
	if err != nil {
		return fetchResult{}, err
	}
	limit := int64(s.cfg.Cache.MaxObjectSize)
	if k == kindPlaylist {
		limit = int64(s.cfg.Cache.MaxPlaylistSize)
	}
	body, complete, err := readLimited(resp, limit)
	if err != nil {
		abandonResponse(resp)
		return fetchResult{}, &OriginError{Status: fasthttp.StatusBadGateway, Reason: "origin response body failed", Err: err}
	}
	if !complete {
		if k == kindPlaylist {
			abandonResponse(resp)
			return fetchResult{}, &OriginError{Status: fasthttp.StatusBadGateway,
				Reason: fmt.Sprintf("origin playlist larger than %d bytes", limit)}
		}
		s.m.streamed.Inc()
		return fetchResult{stream: &originStream{resp: resp, prefix: body, size: resp.Header.ContentLength()}}, nil
	}
	ct := string(resp.Header.ContentType())
	releaseResponse(resp)
	if ct == "" || strings.HasPrefix(ct, "application/octet-stream") || strings.HasPrefix(ct, "text/plain") {
		ct = k.contentType(uri)
	}
	now := s.now()
	o := &object{key: string(uri), body: body, contentType: ct, kind: k, storedAt: now}
	ttl := s.cfg.Cache.SegmentTTL
	switch k {
	case kindOther:
		ttl = *s.cfg.Cache.PlaylistTTL
	case kindPlaylist:
		ttl = *s.cfg.Cache.PlaylistTTL
		// A body that is not a playlist must not be cached or passed on: the player would choke on it and the
		// rewriter could not put tokens in it.
		tmpl, err := o.template(s.rewriter)
		if err != nil {
			s.m.rewriteErrors.Inc()
			return fetchResult{}, &OriginError{Status: fasthttp.StatusBadGateway, Reason: "origin sent an invalid playlist", Err: err}
		}
		if foreign := tmpl.Foreign(); len(foreign) > 0 {
			s.m.foreignURIs.Add(len(foreign))
			s.log.Warn("playlist links to a foreign host; left untouched and without a token",
				"path", string(uri[:pathLen(uri)]), "uris", foreign)
		}
	}
	if ttl > 0 {
		o.expiresAt = now.Add(ttl)
		s.cache.Put(o)
	}
	return fetchResult{obj: o}, nil
}

func pathLen(uri []byte) int {
	if i := bytes.IndexByte(uri, '?'); i >= 0 {
		return i
	}
	return len(uri)
}

// fetchStream is for waiters whose leader found the object too large to share: each streams its own copy.
func (s *Server) fetchStream(ctx *fasthttp.RequestCtx, uri []byte) (*originStream, error) {
	resp, err := s.originGet(ctx, uri)
	if err != nil {
		return nil, err
	}
	return &originStream{resp: resp, size: resp.Header.ContentLength()}, nil
}

// originGet sends one GET to the origins with failover and maps the answer: 200 goes on, 404 stays 404, anything
// else is the origin's fault and becomes 502.
func (s *Server) originGet(ctx *fasthttp.RequestCtx, uri []byte) (*fasthttp.Response, error) {
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	req.SetRequestURIBytes(uri)
	req.URI().DisablePathNormalizing = true
	req.Header.SetMethod(fasthttp.MethodGet)
	setForwardHeaders(&req.Header, ctx, s.clientIP(ctx))
	resp, err := s.up.Do(req)
	if err != nil {
		return nil, err
	}
	switch st := resp.StatusCode(); st {
	case fasthttp.StatusOK:
		return resp, nil
	case fasthttp.StatusNotFound:
		abandonResponse(resp)
		return nil, &OriginError{Status: fasthttp.StatusNotFound, Reason: "not found on origin"}
	default:
		abandonResponse(resp)
		return nil, &OriginError{Status: fasthttp.StatusBadGateway, Reason: fmt.Sprintf("origin answered %d", st)}
	}
}

// readLimited reads at most limit bytes of the body into a new slice that owns its memory. complete is false when
// the body is longer; the response's stream is then still open, positioned after the returned prefix.
func readLimited(resp *fasthttp.Response, limit int64) (body []byte, complete bool, err error) {
	r := resp.BodyStream()
	if r == nil {
		b := resp.Body()
		if int64(len(b)) > limit {
			return append([]byte(nil), b[:limit]...), false, nil
		}
		return append([]byte(nil), b...), true, nil
	}
	if cl := resp.Header.ContentLength(); cl > int(limit) {
		return nil, false, nil
	}
	var buf bytes.Buffer
	if cl := resp.Header.ContentLength(); cl > 0 {
		buf.Grow(cl)
	}
	n, err := io.Copy(&buf, io.LimitReader(r, limit+1))
	if err != nil {
		return nil, false, err
	}
	if n > limit {
		return buf.Bytes(), false, nil
	}
	return buf.Bytes(), true, nil
}

// errAbandoned closes an origin connection whose response body was not read to the end.
var errAbandoned = errors.New("origin response abandoned")

// releaseResponse is for a response whose body was read to the end: its connection goes back to the pool.
func releaseResponse(resp *fasthttp.Response) {
	_ = resp.CloseBodyStream()
	fasthttp.ReleaseResponse(resp)
}

// abandonResponse is for a response whose body is unwanted or half read. fasthttp's CloseBodyStream would return
// the connection to the pool with the unread bytes still in it, and the next request on it would read them as
// its answer; closing the stream with an error closes the connection instead. The response is then left to the
// garbage collector, because releasing it would close the stream a second time.
func abandonResponse(resp *fasthttp.Response) {
	if rc, ok := resp.BodyStream().(fasthttp.ReadCloserWithError); ok {
		_ = rc.CloseWithError(errAbandoned)
		return
	}
	fasthttp.ReleaseResponse(resp)
}

// originStream is an origin body too large to buffer, passed to the viewer as it arrives.
type originStream struct {
	resp   *fasthttp.Response
	prefix []byte
	size   int
	r      io.Reader
	eof    bool
}

func (st *originStream) Read(p []byte) (int, error) {
	if st.r == nil {
		body := st.resp.BodyStream()
		if body == nil {
			body = bytes.NewReader(st.resp.Body())
		}
		st.r = io.MultiReader(bytes.NewReader(st.prefix), body)
	}
	n, err := st.r.Read(p)
	if err == io.EOF {
		st.eof = true
	}
	return n, err
}

// Close returns the origin connection to the pool; fasthttp calls it when the response is written or dropped.
func (st *originStream) Close() error {
	if st.eof {
		releaseResponse(st.resp)
	} else {
		// The viewer went away mid-segment, or HEAD skipped the body.
		abandonResponse(st.resp)
	}
	return nil
}

func (s *Server) serveStream(ctx *fasthttp.RequestCtx, k kind, st *originStream) {
	ctx.Response.Header.SetContentType(k.contentType(ctx.Request.URI().PathOriginal()))
	ctx.Response.Header.Set(fasthttp.HeaderCacheControl, s.segmentCacheControl())
	size := st.size
	if size < 0 {
		size = -1
	}
	ctx.SetBodyStream(st, size)
}

// appendOriginQuery copies the query arguments the origin should see, dropping the edge's token parameters.
func appendOriginQuery(dst []byte, args *fasthttp.Args, isToken func([]byte) bool) []byte {
	first := true
	for k, v := range args.All() {
		if isToken(k) {
			continue
		}
		if first {
			dst = append(dst, '?')
			first = false
		} else {
			dst = append(dst, '&')
		}
		dst = appendQueryEscaped(dst, k)
		if len(v) > 0 {
			dst = append(dst, '=')
			dst = appendQueryEscaped(dst, v)
		}
	}
	return dst
}

// appendQueryEscaped escapes a decoded query key or value back, leaving the usual unreserved bytes alone.
func appendQueryEscaped(dst, s []byte) []byte {
	const hex = "0123456789ABCDEF"
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.', c == '~':
			dst = append(dst, c)
		default:
			dst = append(dst, '%', hex[c>>4], hex[c&15])
		}
	}
	return dst
}

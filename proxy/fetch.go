package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/hlsedge/hlsedge/playlist"
)

// fetchResult is what the coalesced leader hands to every waiter: a shareable object, or, for a body too large
// to cache, a stream every waiter reads as it arrives.
type fetchResult struct {
	obj    *object
	stream *sharedStream
	// stale marks obj as the last good playlist, served because the origin failed.
	stale bool
}

// miss serves a cache miss with one origin fetch per key, however many viewers ask at once. It returns the
// object to serve, or nil when the response is already settled: an error, or a large object being streamed.
func (s *Server) miss(ctx *fasthttp.RequestCtx, k kind, key []byte) (*object, string) {
	for attempt := 0; ; attempt++ {
		res, err, shared := s.fetches.Do(string(key), func() (fetchResult, error) {
			return s.fetch(ctx, k, key)
		})
		state := "miss"
		if shared {
			s.m.coalescedWaiters.Inc()
			state = "coalesced"
		}
		switch {
		case err != nil:
			s.failOrigin(ctx, err)
			return nil, state
		case res.stream == nil:
			if res.stale {
				age := s.now().Sub(res.obj.storedAt) / time.Second
				ctx.Response.Header.Set(fasthttp.HeaderAge, strconv.FormatInt(int64(max(age, 0)), 10))
				state = "stale"
			}
			return res.obj, state
		}
		if r := res.stream.reader(); r != nil {
			s.m.cacheBypass.Inc()
			s.serveStream(ctx, k, res.stream, r)
			return nil, "stream"
		}
		// The stream could not take this viewer from its first byte (it failed, or every other viewer left
		// before this one was scheduled): one more flight, which asks the origin anew.
		if attempt > 0 {
			s.failOrigin(ctx, &OriginError{Status: fasthttp.StatusBadGateway, Reason: "origin fetch aborted"})
			return nil, "stream"
		}
	}
}

// fetch asks the origins for key (origin path plus origin query) once. It runs on the leader's request, but
// everything it returns is copied out of fasthttp's buffers so that waiters may keep it after the leader's
// handler returns.
func (s *Server) fetch(ctx *fasthttp.RequestCtx, k kind, key []byte) (fetchResult, error) {
	// A flight that ended between this viewer's miss and its own flight may have filled the cache, or may be
	// streaming a large object from its first byte still: either saves an origin fetch.
	if o := s.cache.Get(key, s.now()); o != nil {
		return fetchResult{obj: o}, nil
	}
	if st := s.fetches.stream(string(key)); st != nil {
		st.reserve(1 + s.fetches.Waiters(string(key)))
		return fetchResult{stream: st}, nil
	}
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	req.SetRequestURIBytes(key)
	req.URI().DisablePathNormalizing = true
	req.Header.SetMethod(fasthttp.MethodGet)
	setForwardHeaders(&req.Header, ctx, s.clientIP(ctx))
	var opts callOpts
	deadline := time.Now().Add(s.cfg.Upstream.TotalTimeout)
	if k == kindPlaylist && blockingKey(key) {
		// An LL-HLS blocking reload: the origin holds it until the part exists (llhls.go).
		opts = callOpts{attempt: s.ll.holdWait(key[:pathLen(key)]), blocking: true}
		deadline = time.Now().Add(opts.attempt)
	}
	var res fetchResult
	err := s.up.Do(req, deadline, opts, func(resp *originResponse) (err error) {
		res, err = s.take(k, key, resp)
		return err
	})
	if err != nil {
		if opts.blocking {
			// A later playlist is never a stale copy of this one: it answers other directives.
			return fetchResult{}, s.holdError(err)
		}
		return s.staleOnError(k, key, err)
	}
	if st := res.stream; st != nil {
		// Every viewer waiting on this flight gets a reader, and later ones find the stream registered.
		st.reserve(1 + s.fetches.Waiters(string(key)))
		s.fetches.register(st)
	}
	return res, nil
}

// take reads one 200 answer: a body that fits becomes an object (cached unless its TTL is 0), a larger segment
// becomes a shared stream. It owns resp's body. Errors reading the body are the origin's failure, and no part
// of such a body is kept: a body is whole only when its framing says so.
func (s *Server) take(k kind, key []byte, resp *originResponse) (fetchResult, error) {
	if k != kindPlaylist && s.ll.isPart(key) {
		return s.streamPart(key, resp), nil
	}
	limit := int64(s.cfg.Cache.MaxObjectSize)
	if k == kindPlaylist {
		limit = int64(s.cfg.Cache.MaxPlaylistSize)
	}
	body, complete, err := readLimited(&resp.body, limit, resp.header.ContentLength())
	if err != nil {
		_ = resp.body.Close()
		return fetchResult{}, err
	}
	if !complete {
		if k == kindPlaylist {
			_ = resp.body.Close()
			return fetchResult{}, &OriginError{Status: fasthttp.StatusBadGateway,
				Reason: fmt.Sprintf("origin playlist larger than %d bytes", limit)}
		}
		s.m.streamed.Inc()
		s.cache.refuse()
		resp.body.stream(s.cfg.Upstream.Timeout)
		size := max(resp.header.ContentLength(), -1)
		st := newSharedStream(s.fetches, string(key), string(key[:pathLen(key)]), size, body, &resp.body,
			int64(s.cfg.Cache.StreamBuffer), s.log)
		return fetchResult{stream: st}, nil
	}
	_ = resp.body.Close()
	ct := string(resp.header.ContentType())
	if ct == "" || strings.HasPrefix(ct, "application/octet-stream") || strings.HasPrefix(ct, "text/plain") {
		ct = k.contentType(key)
	}
	now := s.now()
	o := &object{key: string(key), body: body, contentType: ct, kind: k, storedAt: now,
		originAge: parseAge(resp.header.Peek(fasthttp.HeaderAge))}
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
				"path", string(key[:pathLen(key)]), "uris", foreign)
		}
		// A subset of Foreign: spellings a browser resolves to another host though they look local
		// (backslashes, tabs, extra slashes). Counted apart, since they suggest a crafted playlist.
		if disguised := tmpl.Disguised(); len(disguised) > 0 {
			s.m.disguisedURIs.Add(len(disguised))
			s.log.Warn("playlist hides a foreign host in an odd URI spelling; left untouched and without a token",
				"path", string(key[:pathLen(key)]), "uris", disguised)
		}
		// LL-HLS: the target duration sets the hold of the next blocking reloads, and parts stream (llhls.go).
		s.ll.observe(key, body, s.isTokenParam)
		if blockingKey(key) {
			ttl = s.blockingTTL(key, ttl)
		}
	}
	o.expiresAt = now.Add(ttl)
	o.keepUntil = o.expiresAt
	if k == kindPlaylist {
		// Kept past its freshness, to ride out an origin failure (cache.playlist_stale_if_error).
		o.keepUntil = o.expiresAt.Add(*s.cfg.Cache.PlaylistStaleIfError)
	}
	if o.keepUntil.After(now) {
		s.cache.Put(o)
	}
	return fetchResult{obj: o}, nil
}

// staleOnError answers a failed playlist fetch (origin refused, timed out, 5xx, cut short) with the last good
// copy while cache.playlist_stale_if_error allows; the error stands for anything else, a 404 included.
func (s *Server) staleOnError(k kind, key []byte, err error) (fetchResult, error) {
	var oe *OriginError
	if k != kindPlaylist || *s.cfg.Cache.PlaylistStaleIfError <= 0 || !errors.As(err, &oe) ||
		oe.Status == fasthttp.StatusNotFound {
		return fetchResult{}, err
	}
	now := s.now()
	o := s.cache.GetStale(key, now)
	if o == nil {
		return fetchResult{}, err
	}
	s.fetches.stale.Inc()
	s.reqLog.Warn("origin failed; serving the last good playlist", "path", string(key[:pathLen(key)]),
		"age", now.Sub(o.storedAt).Round(time.Millisecond).String(), "reason", oe.Reason, "err", errString(oe.Err))
	return fetchResult{obj: o, stale: true}, nil
}

func pathLen(uri []byte) int {
	if i := bytes.IndexByte(uri, '?'); i >= 0 {
		return i
	}
	return len(uri)
}

// readLimited reads at most limit bytes of the body into a new slice that owns its memory. complete is false when
// the body is longer (cl, the Content-Length, says so, or more than limit bytes arrived); the body is then still
// open, positioned after the returned prefix.
func readLimited(b *originBody, limit int64, cl int) (body []byte, complete bool, err error) {
	if cl >= 0 {
		if int64(cl) > limit {
			return nil, false, nil
		}
		body = make([]byte, cl)
		if _, err := io.ReadFull(b, body); err != nil {
			return nil, false, err
		}
		return body, true, nil
	}
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.LimitReader(b, limit+1))
	if err != nil {
		return nil, false, err
	}
	if n > limit {
		return buf.Bytes(), false, nil
	}
	// A right-sized copy: the buffer grew by doubling, and the object may stay cached for minutes.
	return bytes.Clone(buf.Bytes()), true, nil
}

// serveStream passes a shared large object to this viewer. If the origin body ends early, r's error makes
// fasthttp abort the connection, so the player sees a failed request rather than a short segment that looks
// whole.
func (s *Server) serveStream(ctx *fasthttp.RequestCtx, k kind, st *sharedStream, r *streamReader) {
	ctx.Response.Header.SetContentType(k.contentType(ctx.Request.URI().PathOriginal()))
	ctx.Response.Header.Set(fasthttp.HeaderCacheControl, s.segmentCacheControl())
	ctx.SetBodyStream(r, st.size)
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
		dst = playlist.AppendQueryEscape(dst, k)
		if len(v) > 0 {
			dst = append(dst, '=')
			dst = playlist.AppendQueryEscape(dst, v)
		}
	}
	return dst
}

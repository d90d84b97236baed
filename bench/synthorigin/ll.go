package synthorigin

import (
	"errors"
	"io"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
)

// LL mode serves low-latency HLS (draft-pantos-hls-rfc8216bis) the way Flussonic and MediaMTX do, from the
// committed fMP4 loop: a segment "{seq}_{tag}.m4s" is 15 fragments, part k "{seq}_{tag}.{k}.m4s" a run of
// 15/Parts of them, and "init_{variant}.mp4" the EXT-X-MAP. Everything follows the clock: part k of the segment
// in progress is complete once (k+1)/Parts of the segment duration has passed, and each fragment inside it at
// its own fifteenth, which is when a hinted part's bytes go out.

// llState is what LL mode adds to an Origin, computed once by initLL.
type llState struct {
	ll        *llMedia
	llHead    string        // the EXT-X-SERVER-CONTROL and EXT-X-PART-INF lines
	partTag   string        // `#EXT-X-PART:DURATION=0.600,URI="`
	holdFor   time.Duration // how long a blocking request is held before 503: three target durations
	partLimit int64         // the Advance Part Limit, in parts
	partSegs  int64         // complete segments whose parts are still listed
	keepSegs  int64         // complete segments a delta update keeps: those ending within CAN-SKIP-UNTIL
}

// skipKeep is how many of the last complete segments of a playlist with segments of duration sd end within the
// Skip Boundary, CAN-SKIP-UNTIL before the playlist's end: a delta update keeps them and may skip the older ones.
// The boundary is six target durations, the least the spec allows (4.4.3.8).
func skipKeep(sd time.Duration) int64 {
	until := 6 * time.Duration(targetDuration(sd)) * time.Second
	return int64((until + sd - 1) / sd)
}

func (o *Origin) initLL() error {
	m, err := mediaLL()
	if err != nil {
		return err
	}
	o.ll, o.codecs = m, m.codecs
	sd, parts := o.cfg.SegmentDuration, time.Duration(o.cfg.Parts)
	partDur := sd / parts // exact: Validate wants whole milliseconds
	pt := strconv.FormatFloat(partDur.Seconds(), 'f', 3, 64)
	target := time.Duration(targetDuration(sd)) * time.Second
	// PART-HOLD-BACK at three part targets, what the spec recommends (it must be at least two). CAN-SKIP-UNTIL at
	// six target durations, the least the spec allows: players then take delta updates as soon as the window
	// holds more (see Config.WindowSize).
	o.llHead = "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=" +
		strconv.FormatFloat((6*target).Seconds(), 'f', 3, 64) + ",PART-HOLD-BACK=" +
		strconv.FormatFloat((3*partDur).Seconds(), 'f', 3, 64) + "\n#EXT-X-PART-INF:PART-TARGET=" + pt + "\n"
	o.partTag = `#EXT-X-PART:DURATION=` + pt + `,URI="`
	o.keepSegs = skipKeep(sd)
	o.holdFor = 3 * target
	// rfc8216bis 6.2.5.2: "three divided by the Part Target Duration if the Part Target Duration is less than one,
	// or three otherwise".
	o.partLimit = 3
	if partDur < time.Second {
		o.partLimit = int64(3 * time.Second / partDur)
	}
	// Parts stay listed while their segment ends within three target durations of the live edge (4.4.4.9).
	o.partSegs = min(int64((3*target+sd-1)/sd), int64(o.cfg.WindowSize))
	return nil
}

// serveLLPlaylist serves a media playlist, after holding a blocking reload until it can answer it, and as a
// delta update (6.2.5.1) when asked with _HLS_skip.
func (o *Origin) serveLLPlaylist(ctx *fasthttp.RequestCtx, ch *originChannel, variant int) {
	args := ctx.QueryArgs()
	skip, hasSkip := args.Peek("_HLS_skip"), args.Has("_HLS_skip")
	if hasSkip {
		o.stats.skipRequests.Add(1)
	}
	if hasMsn, hasPart := args.Has("_HLS_msn"), args.Has("_HLS_part"); hasMsn || hasPart {
		o.stats.countBlocking(ctx.Path(), args.Peek("_HLS_msn"), args.Peek("_HLS_part"), skip, hasMsn, hasPart, hasSkip)
	}
	// Once the playlist has EXT-X-ENDLIST the directives are ignored, even malformed ones (6.2.5.2).
	if !o.ended.Load() {
		if hasSkip && string(skip) != "YES" && string(skip) != "v2" {
			o.badRequest(ctx, "_HLS_skip must be YES or v2")
			return
		}
		if (args.Has("_HLS_msn") || args.Has("_HLS_part")) && !o.block(ctx) {
			return
		}
	}
	e := o.edge()
	sd := int64(o.cfg.SegmentDuration)
	first, last := e.seq-int64(o.cfg.WindowSize), e.seq-1
	// A delta update replaces the segments that end before the Skip Boundary with EXT-X-SKIP; the media sequence
	// stays the first segment's, skipped or not. With nothing old enough to skip, the whole playlist answers.
	var skipped int64
	if hasSkip && !e.ended {
		skipped = max(last-first+1-o.keepSegs, 0)
	}
	bp := o.bufs.Get().(*[]byte)
	// Version 6 is what EXT-X-MAP needs; EXT-X-SKIP needs 9, and its RECENTLY-REMOVED-DATERANGES (asked for by
	// v2) 10.
	version := "6"
	if skipped > 0 {
		o.stats.deltaUpdates.Add(1)
		version = "9"
		if string(skip) == "v2" {
			version = "10"
		}
	}
	b := append((*bp)[:0], "#EXTM3U\n#EXT-X-VERSION:"...)
	b = append(b, version...)
	b = append(b, '\n')
	b = append(b, o.target...)
	b = append(b, o.llHead...)
	b = append(b, "#EXT-X-MEDIA-SEQUENCE:"...)
	b = strconv.AppendInt(b, first, 10)
	if skipped > 0 {
		b = append(b, "\n#EXT-X-SKIP:SKIPPED-SEGMENTS="...)
		b = strconv.AppendInt(b, skipped, 10)
		if string(skip) == "v2" {
			// v2 may skip EXT-X-DATERANGE tags too, and then the list of those removed is required: this origin
			// has none.
			b = append(b, `,RECENTLY-REMOVED-DATERANGES=""`...)
		}
		first += skipped
	}
	b = append(b, "\n#EXT-X-MAP:URI=\""...)
	b = o.appendURIPrefix(b, ctx, ch)
	b = appendInitName(b, variant)
	// The date of the first segment listed: players align on it, and the bench derives every part's availability
	// from it, since a part is complete when its end on this timeline has passed.
	b = append(b, "\"\n#EXT-X-PROGRAM-DATE-TIME:"...)
	b = time.Unix(0, first*sd).UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z")
	b = append(b, '\n')
	for seq := first; seq <= last; seq++ {
		if seq > last-o.partSegs {
			b = o.appendParts(b, ctx, ch, variant, seq, o.cfg.Parts)
		}
		b = append(b, o.extinf...)
		b = o.appendURIPrefix(b, ctx, ch)
		b = appendMediaBase(b, ch.seed, variant, seq)
		b = append(b, ".m4s\n"...)
	}
	if e.ended {
		b = append(b, "#EXT-X-ENDLIST\n"...)
	} else {
		b = o.appendParts(b, ctx, ch, variant, e.seq, e.parts)
		b = append(b, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\""...)
		b = o.appendURIPrefix(b, ctx, ch)
		b = appendPartName(b, ch.seed, variant, e.seq, e.parts)
		b = append(b, "\"\n"...)
		// Where the other variants are, so that a player switching to one can ask for its next part at once.
		lastMSN, lastPart := e.seq, e.parts-1
		if lastPart < 0 {
			lastMSN, lastPart = e.seq-1, o.cfg.Parts-1
		}
		for v, rv := range ch.variants {
			if v == variant {
				continue
			}
			b = append(b, "#EXT-X-RENDITION-REPORT:URI=\""...)
			b = o.appendURIPrefix(b, ctx, ch)
			b = append(b, rv.playlist...)
			b = append(b, "\",LAST-MSN="...)
			b = strconv.AppendInt(b, lastMSN, 10)
			b = append(b, ",LAST-PART="...)
			b = strconv.AppendInt(b, int64(lastPart), 10)
			b = append(b, '\n')
		}
	}
	o.writePlaylist(ctx, b)
	*bp = b
	o.bufs.Put(bp)
}

func (o *Origin) appendParts(b []byte, ctx *fasthttp.RequestCtx, ch *originChannel, variant int, seq int64, n int) []byte {
	for k := range n {
		b = append(b, o.partTag...)
		b = o.appendURIPrefix(b, ctx, ch)
		b = appendPartName(b, ch.seed, variant, seq, k)
		b = append(b, '"')
		if k == 0 { // every segment starts on a keyframe, and only there
			b = append(b, ",INDEPENDENT=YES"...)
		}
		b = append(b, '\n')
	}
	return b
}

// block holds a blocking playlist reload until the playlist holds what its delivery directives ask for
// (rfc8216bis 6.2.5.2) and reports true; or answers the request itself, 400 for directives the spec refuses and
// 503 when the hold runs out, and reports false.
func (o *Origin) block(ctx *fasthttp.RequestCtx) bool {
	args := ctx.QueryArgs()
	if !args.Has("_HLS_msn") {
		o.badRequest(ctx, "_HLS_part requires _HLS_msn")
		return false
	}
	msn, ok := atoiBytes(args.Peek("_HLS_msn"))
	if !ok {
		o.badRequest(ctx, "_HLS_msn must be a decimal integer")
		return false
	}
	part := -1
	if args.Has("_HLS_part") {
		if part, ok = atoiBytes(args.Peek("_HLS_part")); !ok {
			o.badRequest(ctx, "_HLS_part must be a decimal integer")
			return false
		}
	}
	e := o.edge()
	// "the Media Sequence Number of the last Media Segment in the current Playlist plus two": the last complete
	// segment is e.seq-1.
	if int64(msn) > e.seq+1 {
		o.badRequest(ctx, "_HLS_msn is more than two segments past the playlist's last")
		return false
	}
	// The part waited for, counted in parts since the epoch. _HLS_msn alone waits for the whole segment; a part
	// index past the segment's last is part 0 of the next segment (6.2.5.2).
	p := int64(o.cfg.Parts)
	var want int64
	switch {
	case part < 0:
		want = int64(msn)*p + p - 1
	case int64(part) >= p:
		want = (int64(msn) + 1) * p
	default:
		want = int64(msn)*p + int64(part)
	}
	lastListed := e.seq*p + int64(e.parts) - 1
	if part >= 0 && want-lastListed > o.partLimit {
		o.badRequest(ctx, "_HLS_part is past the advance part limit")
		return false
	}
	switch o.waitFor(o.partDone(want), o.cfg.Now().Add(o.holdFor)) {
	case holdReached, holdEnded:
		return true
	case holdTimeout:
		o.stats.holdTimeouts.Add(1)
		ctx.Error("the requested part did not appear within three target durations\n", fasthttp.StatusServiceUnavailable)
	default:
		ctx.Error("shutting down\n", fasthttp.StatusServiceUnavailable)
	}
	return false
}

func (o *Origin) badRequest(ctx *fasthttp.RequestCtx, why string) {
	o.stats.badRequests.Add(1)
	ctx.Error("bad request: "+why+"\n", fasthttp.StatusBadRequest)
}

// partDone is when part g, counted in parts since the epoch, is complete.
func (o *Origin) partDone(g int64) time.Time {
	p := int64(o.cfg.Parts)
	seq := floorDiv(g, p)
	return o.PartAvailable(seq, int(g-seq*p))
}

// PartAvailable returns when part `part` of segment seq is complete on the origin's clock. Part Parts-1 ends
// with its segment.
func (o *Origin) PartAvailable(seq int64, part int) time.Time {
	sd := int64(o.cfg.SegmentDuration)
	return time.Unix(0, seq*sd+sd*int64(part+1)/int64(max(o.cfg.Parts, 1)))
}

// fragDone is when fragment j (0 to 14) of segment seq is complete.
func (o *Origin) fragDone(seq int64, j int) time.Time {
	sd := int64(o.cfg.SegmentDuration)
	return time.Unix(0, seq*sd+sd*int64(j+1)/llFragments)
}

// serveLLMedia serves a segment "{seq}_{tag}.m4s" or a part "{seq}_{tag}.{k}.m4s".
func (o *Origin) serveLLMedia(ctx *fasthttp.RequestCtx, ch *originChannel, name []byte) {
	base := name[:len(name)-len(".m4s")]
	part, k := -1, kindSegment
	if i := lastIndexByte(base, '.'); i >= 0 {
		n, ok := atoiBytes(base[i+1:])
		if !ok || n >= o.cfg.Parts {
			o.notFound(ctx, kindPart)
			return
		}
		part, k, base = n, kindPart, base[:i]
	}
	seq, variant, ok := parseMediaBase(base)
	if !ok || variant >= len(ch.variants) {
		o.notFound(ctx, k)
		return
	}
	var nb [48]byte
	want := appendMediaBase(nb[:0], ch.seed, variant, seq)
	if part >= 0 {
		want = append(want, '.')
		want = strconv.AppendInt(want, int64(part), 10)
	}
	if string(append(want, ".m4s"...)) != string(name) {
		o.notFound(ctx, k)
		return
	}
	e := o.edge()
	first := e.seq - int64(o.cfg.WindowSize)
	loop, seg := floorDiv(seq, loopSegments), int(floorMod(seq, loopSegments))
	if part < 0 {
		if seq < first || seq >= e.seq {
			o.notFound(ctx, k)
			return
		}
		o.stats.count(k, ctx.RequestURI(), false)
		o.writeFragments(ctx, seg*llFragments, (seg+1)*llFragments, loop)
		return
	}
	// A part can be asked for from the moment the preload hint names it, and not before.
	if seq < first || seq > e.seq || seq == e.seq && (part > e.parts || e.ended) {
		o.notFound(ctx, k)
		return
	}
	o.stats.count(k, ctx.RequestURI(), false)
	per := llFragments / o.cfg.Parts
	from, to := part*per, (part+1)*per
	if seq < e.seq || part < e.parts || ctx.IsHead() {
		o.writeFragments(ctx, seg*llFragments+from, seg*llFragments+to, loop)
		return
	}
	// The hinted part, still being produced: hold the request for its first fragment, then stream each one as it
	// completes, so that an edge can pass the bytes on as they come.
	deadline := o.cfg.Now().Add(o.holdFor)
	switch o.waitFor(o.fragDone(seq, from), deadline) {
	case holdReached:
	case holdEnded:
		o.notFound(ctx, k)
		return
	case holdTimeout:
		o.stats.holdTimeouts.Add(1)
		ctx.Error("the hinted part did not start within three target durations\n", fasthttp.StatusServiceUnavailable)
		return
	default:
		ctx.Error("shutting down\n", fasthttp.StatusServiceUnavailable)
		return
	}
	ctx.Response.Header.SetContentType("video/mp4")
	// Unknown length: chunked, one chunk per fragment, each flushed as it is written.
	ctx.Response.SetBodyStream(&partStream{o: o, seq: seq, loop: loop, seg: seg, next: from, end: to, deadline: deadline}, -1)
}

// writeFragments answers with fragments [from, to) of the loop, shifted to the given pass, written into the
// response's own buffer.
func (o *Origin) writeFragments(ctx *fasthttp.RequestCtx, from, to int, loop int64) {
	ctx.Response.Header.SetContentType("video/mp4")
	b := ctx.Response.SwapBody(nil)
	ctx.Response.SwapBody(o.ll.appendFragments(b[:0], from, to, loop))
}

// serveInit serves "init_{variant}.mp4", the same bytes for every variant as the segments are.
func (o *Origin) serveInit(ctx *fasthttp.RequestCtx, ch *originChannel, name []byte) {
	const prefix = "init_"
	if len(name) != len(prefix)+1+len(".mp4") || string(name[:len(prefix)]) != prefix || !hasSuffix(name, ".mp4") ||
		name[len(prefix)] < '0' || int(name[len(prefix)]-'0') >= len(ch.variants) {
		o.notFound(ctx, kindInit)
		return
	}
	o.stats.count(kindInit, ctx.RequestURI(), false)
	ctx.Response.Header.SetContentType("video/mp4")
	ctx.Response.SetBodyRaw(o.ll.init) // immutable: no copy
}

// errPartCut ends a hinted part's stream early: an error rather than EOF, so that the server closes the
// connection and the client sees a truncated response, not a short part that looks whole.
var errPartCut = errors.New("hinted part cut short: the stream stalled or ended")

// partStream is the body of a hinted part: each fragment is read out once the clock has produced it.
type partStream struct {
	o         *Origin
	seq, loop int64
	seg       int // the segment's place in the loop
	next, end int // fragments of the segment: the next to read out, and the end of the part
	deadline  time.Time
	buf       []byte
	pending   []byte
}

func (s *partStream) Read(p []byte) (int, error) {
	for len(s.pending) == 0 {
		if s.next >= s.end {
			return 0, io.EOF
		}
		if s.o.waitFor(s.o.fragDone(s.seq, s.next), s.deadline) != holdReached {
			return 0, errPartCut
		}
		i := s.seg*llFragments + s.next
		s.buf = s.o.ll.appendFragments(s.buf[:0], i, i+1, s.loop)
		s.pending = s.buf
		s.next++
	}
	n := copy(p, s.pending)
	s.pending = s.pending[n:]
	return n, nil
}

// PartName returns the generated name of a part in LL mode ("566666665_3fa0.2.m4s").
func (o *Origin) PartName(channel string, variant int, seq int64, part int) string {
	ch := o.channels[channel]
	if ch == nil {
		return ""
	}
	return string(appendPartName(nil, ch.seed, variant, seq, part))
}

// InitName returns the name of a variant's EXT-X-MAP resource in LL mode ("init_0.mp4").
func (o *Origin) InitName(variant int) string { return string(appendInitName(nil, variant)) }

func appendPartName(b []byte, seed uint64, variant int, seq int64, part int) []byte {
	b = appendMediaBase(b, seed, variant, seq)
	b = append(b, '.')
	b = strconv.AppendInt(b, int64(part), 10)
	return append(b, ".m4s"...)
}

func appendInitName(b []byte, variant int) []byte {
	b = append(b, "init_"...)
	b = strconv.AppendInt(b, int64(variant), 10)
	return append(b, ".mp4"...)
}

func lastIndexByte(b []byte, c byte) int {
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == c {
			return i
		}
	}
	return -1
}

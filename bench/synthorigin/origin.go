package synthorigin

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// Origin is a synthetic live HLS origin that behaves like Cesbo Astra's HLS output: /play/{channel}/index.m3u8,
// a sliding window that follows the wall clock, generated playlist and segment names, absolute segment URIs by
// default, CORS on, and real MPEG-TS segments looping with a discontinuity at each wrap. In LL mode it serves
// low-latency HLS instead, as Flussonic and MediaMTX do (see ll.go).
type Origin struct {
	cfg      Config
	channels map[string]*originChannel
	segs     [][]byte
	codecs   string // the master playlist's CODECS
	extinf   string // "#EXTINF:3.000,\n"
	target   string // "#EXT-X-TARGETDURATION:3\n"
	srv      *fasthttp.Server
	stats    originStats
	bufs     sync.Pool
	ctx      context.Context // done at Shutdown: releases every held request
	stop     context.CancelFunc
	stopOnce sync.Once

	llState     // LL mode's media and precomputed tags
	liveControl // Stall, End, Resume

	heldMu      sync.Mutex
	held        int           // requests held now: waiting out Delay, or for an LL part to exist
	heldChanged chan struct{} // closed and replaced whenever held changes
}

type originChannel struct {
	id       string
	seed     uint64
	variants []originVariant
	byName   map[string]int // "71545838.m3u8" -> variant index
}

type originVariant struct {
	playlist   string // generated media playlist name, Astra style: "71545838.m3u8"
	bandwidth  int
	resolution string
}

// variantLadder gives each variant a distinct advertised rendition; the bytes behind them are the same.
var variantLadder = [maxVariants]struct {
	res string
	bw  int
}{
	{"320x180", 260000}, {"640x360", 800000}, {"960x540", 1400000}, {"1280x720", 2500000},
	{"1920x1080", 4500000}, {"2560x1440", 8000000}, {"3840x2160", 14000000}, {"7680x4320", 30000000},
}

// New validates cfg and builds an origin; call Serve to start it.
func New(cfg Config) (*Origin, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	segs, err := mediaSegments()
	if err != nil {
		return nil, err
	}
	o := &Origin{
		cfg:      cfg,
		channels: make(map[string]*originChannel, len(cfg.Channels)),
		segs:     segs,
		codecs:   "avc1.42c00c,mp4a.40.2",
		extinf:   "#EXTINF:" + strconv.FormatFloat(cfg.SegmentDuration.Seconds(), 'f', 3, 64) + ",\n",
		target:   "#EXT-X-TARGETDURATION:" + strconv.Itoa(targetDuration(cfg.SegmentDuration)) + "\n",

		heldChanged: make(chan struct{}),
	}
	o.ctx, o.stop = context.WithCancel(context.Background())
	o.stateCtx, o.stateCancel = context.WithCancel(o.ctx)
	if cfg.LL {
		if err := o.initLL(); err != nil {
			o.stop()
			return nil, err
		}
	}
	o.stats.init(cfg.MaxStatsURIs)
	o.bufs.New = func() any { b := make([]byte, 0, 1024); return &b }
	for _, id := range cfg.Channels {
		ch := &originChannel{id: id, seed: fnv64(id), byName: make(map[string]int, cfg.Variants)}
		for v := range cfg.Variants {
			// Astra names media playlists with an opaque number; derive it from the channel so it is stable.
			n := 10000000 + splitmix64(ch.seed^uint64(0x51ed27+v))%90000000
			name := strconv.FormatUint(n, 10) + ".m3u8"
			for _, dup := ch.byName[name]; dup; _, dup = ch.byName[name] {
				n++
				name = strconv.FormatUint(n, 10) + ".m3u8"
			}
			ch.byName[name] = v
			ch.variants = append(ch.variants, originVariant{playlist: name, bandwidth: variantLadder[v].bw, resolution: variantLadder[v].res})
		}
		o.channels[id] = ch
	}
	o.srv = &fasthttp.Server{
		Handler:     o.Handler(),
		Name:        "hlsedge-origin",
		ReadTimeout: 10 * time.Second,
		// A hinted part is written as it is produced: allow its hold and a segment's duration on top.
		WriteTimeout:         30*time.Second + cfg.Delay + o.holdFor + cfg.SegmentDuration,
		IdleTimeout:          60 * time.Second,
		MaxRequestBodySize:   4 << 10,
		NoDefaultContentType: true,
	}
	return o, nil
}

// Serve serves HTTP on ln until Shutdown; it returns nil after a shutdown.
func (o *Origin) Serve(ln net.Listener) error {
	return o.srv.Serve(ln)
}

// Shutdown stops accepting, releases delayed and held responses and waits up to 5 s for open requests to finish.
func (o *Origin) Shutdown() {
	o.stopOnce.Do(func() {
		o.stop()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = o.srv.ShutdownWithContext(ctx)
	})
}

// WaitHeld blocks until at least n requests are held at once (segment responses waiting out Delay; in LL mode,
// blocking playlist reloads and hinted parts waiting for their part), or ctx is done. Tests use it to act while
// the origin is known to hold requests, rather than hoping a sleep was long enough.
func (o *Origin) WaitHeld(ctx context.Context, n int) error {
	for {
		o.heldMu.Lock()
		held, changed := o.held, o.heldChanged
		o.heldMu.Unlock()
		if held >= n {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("waiting for %d held responses, %d held: %w", n, held, ctx.Err())
		}
	}
}

func (o *Origin) addHeld(d int) {
	o.heldMu.Lock()
	o.held += d
	close(o.heldChanged)
	o.heldChanged = make(chan struct{})
	o.heldMu.Unlock()
}

// Stats returns a snapshot of the request counters.
func (o *Origin) Stats() Stats { return o.stats.snapshot() }

// Handler returns the origin's request handler, for tests that serve it on their own server.
func (o *Origin) Handler() fasthttp.RequestHandler { return o.handle }

// Window returns the media sequence numbers of the first and last complete segment the live playlists list now.
func (o *Origin) Window() (first, last int64) {
	return o.window(o.now())
}

func (o *Origin) window(now time.Time) (first, last int64) {
	// The segment in progress is not listed: the last one listed finished at the start of the current period.
	last = now.UnixNano()/int64(o.cfg.SegmentDuration) - 1
	return last - int64(o.cfg.WindowSize) + 1, last
}

// SegmentName returns the generated name of a channel variant's segment ("…_3fa0.ts", in LL mode "…_3fa0.m4s"),
// for tests that build URLs directly.
func (o *Origin) SegmentName(channel string, variant int, seq int64) string {
	ch := o.channels[channel]
	if ch == nil {
		return ""
	}
	if o.cfg.LL {
		return string(append(appendMediaBase(nil, ch.seed, variant, seq), ".m4s"...))
	}
	return string(appendSegmentName(nil, ch.seed, variant, seq))
}

// VariantPlaylist returns the generated media playlist name of a channel's variant ("71545838.m3u8").
func (o *Origin) VariantPlaylist(channel string, variant int) string {
	ch := o.channels[channel]
	if ch == nil || variant < 0 || variant >= len(ch.variants) {
		return ""
	}
	return ch.variants[variant].playlist
}

func (o *Origin) handle(ctx *fasthttp.RequestCtx) {
	h := &ctx.Response.Header
	h.Set("Access-Control-Allow-Origin", "*")
	path := ctx.Path()
	if string(path) == "/stats" {
		o.serveStats(ctx)
		return
	}
	if !ctx.IsGet() && !ctx.IsHead() {
		if ctx.IsOptions() {
			h.Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
			h.Set("Access-Control-Allow-Headers", "Range")
			ctx.SetStatusCode(fasthttp.StatusNoContent)
			o.stats.count(kindOther, ctx.RequestURI(), false)
			return
		}
		o.stats.count(kindOther, ctx.RequestURI(), true)
		ctx.Error("method not allowed\n", fasthttp.StatusMethodNotAllowed)
		return
	}
	ch, name, ok := o.route(path)
	if !ok {
		o.notFound(ctx, kindOther)
		return
	}
	variant := -1
	switch {
	case string(name) == "index.m3u8":
		if o.cfg.Variants > 1 {
			o.stats.count(kindMaster, ctx.RequestURI(), false)
			o.serveMaster(ctx, ch)
			return
		}
		variant = 0
	case hasSuffix(name, ".m3u8"):
		v, ok := ch.byName[string(name)]
		if !ok {
			o.notFound(ctx, kindPlaylist)
			return
		}
		variant = v
	case o.cfg.LL && hasSuffix(name, ".m4s"):
		o.serveLLMedia(ctx, ch, name)
		return
	case o.cfg.LL && hasSuffix(name, ".mp4"):
		o.serveInit(ctx, ch, name)
		return
	case !o.cfg.LL && hasSuffix(name, ".ts"):
		o.serveSegment(ctx, ch, name)
		return
	default:
		o.notFound(ctx, kindOther)
		return
	}
	o.stats.count(kindPlaylist, ctx.RequestURI(), false)
	if o.cfg.LL {
		o.serveLLPlaylist(ctx, ch, variant)
		return
	}
	o.serveMedia(ctx, ch, variant)
}

// route splits /play/{channel}/{name} and finds the channel; the lookup does not allocate.
func (o *Origin) route(path []byte) (*originChannel, []byte, bool) {
	const prefix = "/play/"
	if len(path) <= len(prefix) || string(path[:len(prefix)]) != prefix {
		return nil, nil, false
	}
	rest := path[len(prefix):]
	i := indexByte(rest, '/')
	if i <= 0 {
		return nil, nil, false
	}
	ch := o.channels[string(rest[:i])]
	name := rest[i+1:]
	if ch == nil || len(name) == 0 || indexByte(name, '/') >= 0 {
		return nil, nil, false
	}
	return ch, name, true
}

func (o *Origin) notFound(ctx *fasthttp.RequestCtx, k kind) {
	o.stats.count(k, ctx.RequestURI(), true)
	ctx.Error("not found\n", fasthttp.StatusNotFound)
}

func (o *Origin) serveMaster(ctx *fasthttp.RequestCtx, ch *originChannel) {
	bp := o.bufs.Get().(*[]byte)
	b := append((*bp)[:0], "#EXTM3U\n#EXT-X-VERSION:3\n"...)
	for _, v := range ch.variants {
		b = append(b, "#EXT-X-STREAM-INF:BANDWIDTH="...)
		b = strconv.AppendInt(b, int64(v.bandwidth), 10)
		b = append(b, ",RESOLUTION="...)
		b = append(b, v.resolution...)
		b = append(b, ",CODECS=\""...)
		b = append(b, o.codecs...)
		b = append(b, "\"\n"...)
		b = o.appendURIPrefix(b, ctx, ch)
		b = append(b, v.playlist...)
		b = append(b, '\n')
	}
	o.writePlaylist(ctx, b)
	*bp = b
	o.bufs.Put(bp)
}

func (o *Origin) serveMedia(ctx *fasthttp.RequestCtx, ch *originChannel, variant int) {
	first, last := o.window(o.now())
	n := int64(len(o.segs))
	bp := o.bufs.Get().(*[]byte)
	b := append((*bp)[:0], "#EXTM3U\n#EXT-X-VERSION:3\n"...)
	b = append(b, o.target...)
	b = append(b, "#EXT-X-MEDIA-SEQUENCE:"...)
	b = strconv.AppendInt(b, first, 10)
	// Each wrap of the loop is one discontinuity, so the count before the window is first/len(loop).
	b = append(b, "\n#EXT-X-DISCONTINUITY-SEQUENCE:"...)
	b = strconv.AppendInt(b, floorDiv(first, n), 10)
	b = append(b, '\n')
	for seq := first; seq <= last; seq++ {
		if seq != first && floorMod(seq, n) == 0 {
			b = append(b, "#EXT-X-DISCONTINUITY\n"...)
		}
		b = append(b, o.extinf...)
		b = o.appendURIPrefix(b, ctx, ch)
		b = appendSegmentName(b, ch.seed, variant, seq)
		b = append(b, '\n')
	}
	if o.ended.Load() {
		b = append(b, "#EXT-X-ENDLIST\n"...)
	}
	o.writePlaylist(ctx, b)
	*bp = b
	o.bufs.Put(bp)
}

func (o *Origin) writePlaylist(ctx *fasthttp.RequestCtx, b []byte) {
	ctx.Response.Header.SetContentType("application/vnd.apple.mpegurl")
	ctx.Response.Header.Set("Cache-Control", "no-cache")
	ctx.SetBody(b) // copies: b goes back to the pool
}

// appendURIPrefix writes what goes before a generated name in the configured URI style. The absolute style
// echoes the Host header as Astra does, after checking it holds only host characters.
func (o *Origin) appendURIPrefix(b []byte, ctx *fasthttp.RequestCtx, ch *originChannel) []byte {
	switch o.cfg.URIs {
	case URIsRelative:
		return b
	case URIsAbsolute:
		b = append(b, "http://"...)
		if host := ctx.Host(); validHost(host) {
			b = append(b, host...)
		} else {
			b = append(b, ctx.LocalAddr().String()...)
		}
	}
	b = append(b, "/play/"...)
	b = append(b, ch.id...)
	return append(b, '/')
}

func (o *Origin) serveSegment(ctx *fasthttp.RequestCtx, ch *originChannel, name []byte) {
	seq, variant, ok := parseSegmentName(name)
	if !ok || variant >= len(ch.variants) || string(appendSegmentName(make([]byte, 0, 32), ch.seed, variant, seq)) != string(name) {
		o.notFound(ctx, kindSegment)
		return
	}
	// RFC 8216 §6.2.2: a segment removed from the playlist stays available for its own duration plus the
	// playlist's, so a player that loaded the playlist just before the window moved (a slow one, on a loaded
	// machine) still gets it.
	if first, last := o.window(o.now()); seq < first-int64(o.cfg.WindowSize)-1 || seq > last {
		o.notFound(ctx, kindSegment)
		return
	}
	o.stats.count(kindSegment, ctx.RequestURI(), false)
	if o.cfg.Delay > 0 {
		o.addHeld(1)
		t := time.NewTimer(o.cfg.Delay)
		select {
		case <-t.C:
		case <-o.ctx.Done():
			t.Stop()
		}
		o.addHeld(-1)
	}
	body := o.segs[floorMod(seq, int64(len(o.segs)))]
	h := &ctx.Response.Header
	h.SetContentType("video/MP2T")
	h.Set("Accept-Ranges", "bytes")
	if r := ctx.Request.Header.Peek("Range"); len(r) > 0 {
		start, end, ok := parseRange(r, len(body))
		if !ok {
			h.Set("Content-Range", "bytes */"+strconv.Itoa(len(body)))
			ctx.SetStatusCode(fasthttp.StatusRequestedRangeNotSatisfiable)
			return
		}
		if start >= 0 {
			h.SetContentRange(start, end, len(body))
			ctx.SetStatusCode(fasthttp.StatusPartialContent)
			ctx.Response.SetBodyRaw(body[start : end+1])
			return
		}
	}
	// The embedded bytes are immutable, so the response can point at them without a copy.
	ctx.Response.SetBodyRaw(body)
}

func (o *Origin) serveStats(ctx *fasthttp.RequestCtx) {
	b, err := json.Marshal(o.Stats())
	if err != nil {
		ctx.Error("stats: "+err.Error()+"\n", fasthttp.StatusInternalServerError)
		return
	}
	ctx.Response.Header.SetContentType("application/json")
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.SetBody(b)
}

// appendSegmentName writes Astra's "{sequence}_{4 hex}.ts".
func appendSegmentName(b []byte, seed uint64, variant int, seq int64) []byte {
	return append(appendMediaBase(b, seed, variant, seq), ".ts"...)
}

// appendMediaBase writes "{sequence}_{4 hex}", the name of a segment without its extension. The hex tag is a hash
// of channel and sequence with the variant in its low nibble, so names look opaque, never collide across
// variants and parse back cheaply.
func appendMediaBase(b []byte, seed uint64, variant int, seq int64) []byte {
	tag := uint16(splitmix64(seed^uint64(seq)))&0xfff0 | uint16(variant)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, '_')
	const hexd = "0123456789abcdef"
	return append(b, hexd[tag>>12], hexd[tag>>8&0xf], hexd[tag>>4&0xf], hexd[tag&0xf])
}

func parseSegmentName(name []byte) (seq int64, variant int, ok bool) {
	if !hasSuffix(name, ".ts") {
		return 0, 0, false
	}
	return parseMediaBase(name[:len(name)-len(".ts")])
}

// parseMediaBase reads back what appendMediaBase wrote; callers compare the name they rebuild from the result,
// which rejects everything else (leading zeros, a wrong tag).
func parseMediaBase(name []byte) (seq int64, variant int, ok bool) {
	// digits "_" 4 hex
	if len(name) < 1+1+4 || len(name) > 19+1+4 {
		return 0, 0, false
	}
	digits := name[:len(name)-5]
	if name[len(name)-5] != '_' {
		return 0, 0, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, 0, false
		}
		seq = seq*10 + int64(c-'0')
		if seq < 0 {
			return 0, 0, false
		}
	}
	last := name[len(name)-1]
	switch {
	case last >= '0' && last <= '9':
		variant = int(last - '0')
	case last >= 'a' && last <= 'f':
		variant = int(last-'a') + 10
	default:
		return 0, 0, false
	}
	return seq, variant, true
}

// parseRange understands one "bytes=a-b", "bytes=a-" or "bytes=-n" range. start < 0 with ok means "serve the
// whole body" (a multi-range or unknown unit, which RFC 9110 lets a server ignore).
func parseRange(r []byte, size int) (start, end int, ok bool) {
	const unit = "bytes="
	if len(r) < len(unit) || string(r[:len(unit)]) != unit || indexByte(r, ',') >= 0 {
		return -1, -1, true
	}
	spec := r[len(unit):]
	dash := indexByte(spec, '-')
	if dash < 0 {
		return -1, -1, true
	}
	a, aok := atoiBytes(spec[:dash])
	z, zok := atoiBytes(spec[dash+1:])
	switch {
	case aok && zok:
		if a > z || a >= size {
			return 0, 0, false
		}
		return a, min(z, size-1), true
	case aok && len(spec[dash+1:]) == 0:
		if a >= size {
			return 0, 0, false
		}
		return a, size - 1, true
	case !aok && len(spec[:dash]) == 0 && zok:
		if z == 0 {
			return 0, 0, false
		}
		return max(size-z, 0), size - 1, true
	}
	return -1, -1, true
}

func atoiBytes(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 12 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func validHost(h []byte) bool {
	if len(h) == 0 || len(h) > 255 {
		return false
	}
	for _, c := range h {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == ':' || c == '[' || c == ']') {
			return false
		}
	}
	return true
}

func targetDuration(d time.Duration) int {
	s := int((d + time.Second - 1) / time.Second)
	return max(s, 1)
}

func fnv64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func floorMod(a, b int64) int64 { return a - floorDiv(a, b)*b }

func hasSuffix(b []byte, s string) bool {
	return len(b) >= len(s) && string(b[len(b)-len(s):]) == s
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

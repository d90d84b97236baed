package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/hlsedge/hlsedge/bench/synthorigin"
	"github.com/hlsedge/hlsedge/internal/clocks"
)

type reqKind int

const (
	reqPlaylist reqKind = iota
	reqSegment          // segments and init segments
	reqPart             // LL parts
	reqBlocking         // LL blocking playlist reloads: counted as playlists, but held by design, so not timed
	numReqKinds
)

// hlsRun is the state every viewer of one run shares: one fasthttp client, the clock and lock-free counters.
type hlsRun struct {
	cfg    HLSConfig
	client *fasthttp.Client
	clk    clock
	edges  []*edgeStats // one per configured edge; one unnamed for a run without Edges

	conns connSet     // the client's connections, cut when the run ends
	over  atomic.Bool // the run has ended: requests cut short are not counted

	active, started, peak, denied, stalledViewers atomic.Int64
	requests, bytes, errors, stalls, skipped      atomic.Uint64
	kindReqs                                      [numReqKinds]atomic.Uint64
	stallTime                                     atomic.Int64
	statuses                                      [600]atomic.Uint64
	playlist, segment, startup, partDelivery      histogram

	errMu     sync.Mutex
	errByName map[string]uint64 // transport failures: timeout, conn, ...
}

// edgeStats is one edge's share of a run.
type edgeStats struct {
	base                    string
	viewers                 atomic.Int64
	requests, errors, bytes atomic.Uint64
}

// get fetches url for a viewer on edge e; with buf it copies the body there (playlists), otherwise only counts
// it (segments, parts).
func (r *hlsRun) get(e *edgeStats, url string, k reqKind, buf *[]byte) (int, error) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(url)
	// The wall clock, whatever the run's: this is the network's latency, not the schedule's.
	start := time.Now()
	err := r.client.DoDeadline(req, resp, start.Add(r.cfg.Timeout))
	el := time.Since(start)
	if err != nil && r.over.Load() {
		return 0, err // cut by the end of the run: not a result
	}
	r.requests.Add(1)
	e.requests.Add(1)
	r.kindReqs[k].Add(1)
	if err != nil {
		e.errors.Add(1)
		r.countError(errorName(err))
		return 0, err
	}
	st := resp.StatusCode()
	body := resp.Body()
	r.bytes.Add(uint64(len(body)))
	e.bytes.Add(uint64(len(body)))
	if st >= 100 && st < len(r.statuses) {
		r.statuses[st].Add(1)
	} else {
		r.countError("status_" + strconv.Itoa(st))
	}
	if st >= 400 {
		r.errors.Add(1)
		e.errors.Add(1)
	}
	if st/100 == 2 {
		switch k {
		case reqSegment:
			r.segment.Record(el)
		case reqPlaylist:
			r.playlist.Record(el)
		}
	}
	if buf != nil {
		*buf = append((*buf)[:0], body...)
	}
	return st, nil
}

func (r *hlsRun) notePeak(active int64) {
	for {
		p := r.peak.Load()
		if active <= p || r.peak.CompareAndSwap(p, active) {
			return
		}
	}
}

func (r *hlsRun) countError(name string) {
	r.errors.Add(1)
	r.errMu.Lock()
	r.errByName[name]++
	r.errMu.Unlock()
}

func errorName(err error) string {
	switch {
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, fasthttp.ErrDialTimeout):
		return "timeout"
	case errors.Is(err, fasthttp.ErrNoFreeConns), errors.Is(err, fasthttp.ErrConnectionClosed):
		return "conn_closed"
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return "body_too_large"
	}
	return "conn_error"
}

// RunHLS runs cfg.Viewers simulated viewers for cfg.Duration, writes a progress line to progress (if not nil)
// every cfg.Interval, and returns the report. It returns early, with what it measured, when ctx is done.
func RunHLS(ctx context.Context, cfg HLSConfig, progress io.Writer) (*HLSReport, error) {
	return runHLS(ctx, cfg, progress, clocks.Wall{})
}

// runHLS is RunHLS on the given clock.
func runHLS(ctx context.Context, cfg HLSConfig, progress io.Writer, clk clock) (*HLSReport, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	// Tokens are minted on the wall clock: the server that checks them reads its own.
	minted := time.Now()
	urls := make([]string, cfg.Viewers)
	for i := range urls {
		u, err := viewerURL(&cfg, i, minted)
		if err != nil {
			return nil, err
		}
		if len(cfg.Edges) > 0 {
			u = onEdge(u, cfg.Edges[i%len(cfg.Edges)])
		}
		urls[i] = u
	}
	var before *synthorigin.Stats
	if cfg.OriginStats != "" {
		st, err := fetchOriginStats(ctx, cfg.OriginStats)
		if err != nil {
			return nil, err
		}
		before = st
	}
	r := &hlsRun{
		cfg:       cfg,
		clk:       clk,
		errByName: map[string]uint64{},
		client: &fasthttp.Client{
			Name:                   "hlsedge-bench",
			MaxConnsPerHost:        cfg.MaxConns,
			MaxConnWaitTimeout:     cfg.Timeout,
			ReadTimeout:            cfg.Timeout,
			WriteTimeout:           cfg.Timeout,
			MaxIdleConnDuration:    30 * time.Second,
			MaxResponseBodySize:    64 << 20,
			DisablePathNormalizing: true, // send URIs exactly as playlists and the user gave them
		},
	}
	r.client.Dial = r.conns.dial(cfg.Timeout)
	defer r.client.CloseIdleConnections()
	for _, e := range cfg.Edges {
		r.edges = append(r.edges, &edgeStats{base: e})
	}
	if len(r.edges) == 0 {
		r.edges = []*edgeStats{{}}
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := clk.Now()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // launcher: spread the starts over the ramp
		defer wg.Done()
		for i := range cfg.Viewers {
			if cfg.Ramp > 0 {
				at := start.Add(time.Duration(int64(cfg.Ramp) * int64(i) / int64(cfg.Viewers)))
				if !clk.SleepUntil(runCtx, at) {
					return
				}
			}
			if runCtx.Err() != nil {
				return
			}
			v := &viewer{r: r, entry: urls[i], edge: r.edges[i%len(r.edges)], rnd: rand.New(rand.NewPCG(cfg.Seed, uint64(i)))}
			r.started.Add(1)
			v.edge.viewers.Add(1)
			wg.Add(1)
			go func() { defer wg.Done(); v.run(runCtx) }()
		}
	}()

	// The run ends at its duration, or earlier when every viewer has stopped (all denied, or VOD played out).
	allDone := make(chan struct{})
	go func() { wg.Wait(); close(allDone); cancel() }()
	s := newSampler(r, start)
	end := start.Add(cfg.Duration)
	for next := start.Add(cfg.Interval); ; {
		at := next
		if end.Before(at) {
			at = end
		}
		if !clk.SleepUntil(runCtx, at) || !at.Before(end) {
			break
		}
		s.sample(progress)
		// A late sample drops the ticks it missed, as a time.Ticker does, rather than catching up in a burst.
		for now := clk.Now(); !next.After(now); {
			next = next.Add(cfg.Interval)
		}
	}
	// Requests still in flight are cut rather than waited for: an LL server holds a blocking reload for up to
	// three target durations, and what arrives after the end is not measured anyway.
	r.over.Store(true)
	cancel()
	r.conns.closeAll()
	<-allDone
	s.sample(progress)
	rep := r.report(cfg, start, clk.Now().Sub(start), s.series)
	if before != nil {
		// A fresh context: the run's own may be done, and the offload is worth asking for anyway.
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		after, err := fetchOriginStats(sctx, cfg.OriginStats)
		scancel()
		if err != nil {
			return rep, err
		}
		rep.Origin = originOffload(before, after, r.kindReqs[reqSegment].Load(), r.kindReqs[reqPart].Load())
	}
	return rep, ctx.Err()
}

// connSet tracks a client's open connections so that they can all be closed at once.
type connSet struct {
	mu     sync.Mutex
	m      map[*trackedConn]struct{}
	closed bool
}

type trackedConn struct {
	net.Conn
	set *connSet
}

func (c *trackedConn) Close() error {
	c.set.mu.Lock()
	delete(c.set.m, c)
	c.set.mu.Unlock()
	return c.Conn.Close()
}

var errRunOver = errors.New("the run is over")

func (s *connSet) dial(timeout time.Duration) fasthttp.DialFunc {
	return func(addr string) (net.Conn, error) {
		c, err := fasthttp.DialTimeout(addr, timeout)
		if err != nil {
			return nil, err
		}
		tc := &trackedConn{Conn: c, set: s}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.closed {
			_ = c.Close()
			return nil, errRunOver
		}
		if s.m == nil {
			s.m = map[*trackedConn]struct{}{}
		}
		s.m[tc] = struct{}{}
		return tc, nil
	}
}

// closeAll closes every open connection and refuses new ones.
func (s *connSet) closeAll() {
	s.mu.Lock()
	s.closed = true
	cs := make([]*trackedConn, 0, len(s.m))
	for c := range s.m {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	for _, c := range cs {
		_ = c.Close()
	}
}

// sampler turns cumulative counters into per-interval samples.
type sampler struct {
	r                           *hlsRun
	start, last                 time.Time
	reqs, bytes, errors, stalls uint64
	seg, pl, part               histSnap
	series                      []HLSSample
}

func newSampler(r *hlsRun, start time.Time) *sampler {
	return &sampler{r: r, start: start, last: start, seg: r.segment.snapshot(), pl: r.playlist.snapshot(), part: r.partDelivery.snapshot()}
}

func (s *sampler) sample(progress io.Writer) {
	r := s.r
	now := r.clk.Now()
	dt := now.Sub(s.last).Seconds()
	if dt <= 0 {
		return
	}
	reqs, bytes, errs, stalls := r.requests.Load(), r.bytes.Load(), r.errors.Load(), r.stalls.Load()
	seg, pl, part := r.segment.snapshot(), r.playlist.snapshot(), r.partDelivery.snapshot()
	dseg, dpl, dpart := seg.sub(&s.seg), pl.sub(&s.pl), part.sub(&s.part)
	active := r.active.Load()
	smp := HLSSample{
		T: now.Sub(s.start).Seconds(), Viewers: active,
		ReqPerSec: float64(reqs-s.reqs) / dt, MBPerSec: float64(bytes-s.bytes) / dt / 1e6,
		Errors: errs - s.errors, Stalls: stalls - s.stalls,
		SegmentP50Ms: ms(dseg.quantile(0.5)), SegmentP99Ms: ms(dseg.quantile(0.99)), PlaylistP99Ms: ms(dpl.quantile(0.99)),
		PartDeliveryP99Ms: ms(dpart.quantile(0.99)),
	}
	s.series = append(s.series, smp)
	s.last, s.reqs, s.bytes, s.errors, s.stalls, s.seg, s.pl, s.part = now, reqs, bytes, errs, stalls, seg, pl, part
	if progress != nil {
		ll := ""
		if r.cfg.LL {
			ll = fmt.Sprintf(" part delivery %.1fms", smp.PartDeliveryP99Ms)
		}
		fmt.Fprintf(progress, "[%5.0fs] viewers %d/%d  req/s %.0f  MB/s %.1f  errors %d  p99 seg %.1fms pl %.1fms%s  stalls %d\n",
			smp.T, active, r.cfg.Viewers, smp.ReqPerSec, smp.MBPerSec, errs, smp.SegmentP99Ms, smp.PlaylistP99Ms, ll, stalls)
	}
}

func (r *hlsRun) report(cfg HLSConfig, start time.Time, elapsed time.Duration, series []HLSSample) *HLSReport {
	seg, pl, su, part := r.segment.snapshot(), r.playlist.snapshot(), r.startup.snapshot(), r.partDelivery.snapshot()
	rep := &HLSReport{
		URL: redactURL(cfg.URL), Variant: cfg.Variant, LL: cfg.LL, Started: start, DurationSec: elapsed.Seconds(),
		Viewers: cfg.Viewers, ViewersStarted: r.started.Load(), ViewersPeak: r.peak.Load(),
		ViewersDenied: r.denied.Load(), ViewersStalled: r.stalledViewers.Load(),
		Requests: r.requests.Load(), PlaylistRequests: r.kindReqs[reqPlaylist].Load() + r.kindReqs[reqBlocking].Load(),
		BlockingRequests: r.kindReqs[reqBlocking].Load(), PartRequests: r.kindReqs[reqPart].Load(),
		SegmentRequests: r.kindReqs[reqSegment].Load(), Bytes: r.bytes.Load(), Errors: r.errors.Load(),
		Startup: su.summary(), Playlist: pl.summary(), Segment: seg.summary(), PartDelivery: part.summary(),
		Statuses: map[string]uint64{}, Stalls: r.stalls.Load(),
		StallSec: time.Duration(r.stallTime.Load()).Seconds(), SkippedSegments: r.skipped.Load(),
		Series: series,
	}
	if cfg.Mint != nil {
		rep.Mint = cfg.Mint.Kind
	}
	if len(cfg.Edges) > 0 {
		for _, e := range r.edges {
			rep.Edges = append(rep.Edges, EdgeReport{Edge: e.base, Viewers: e.viewers.Load(), Requests: e.requests.Load(),
				Errors: e.errors.Load(), Bytes: e.bytes.Load()})
		}
	}
	if s := elapsed.Seconds(); s > 0 {
		rep.ReqPerSec = float64(rep.Requests) / s
		rep.MBPerSec = float64(rep.Bytes) / s / 1e6
	}
	for st := range r.statuses {
		if n := r.statuses[st].Load(); n > 0 {
			rep.Statuses[strconv.Itoa(st)] = n
		}
	}
	r.errMu.Lock()
	for k, n := range r.errByName {
		rep.Statuses[k] = n
	}
	r.errMu.Unlock()
	return rep
}

var statsHTTP = &http.Client{Timeout: 10 * time.Second}

func fetchOriginStats(ctx context.Context, url string) (*synthorigin.Stats, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("origin stats: %w", err)
	}
	resp, err := statsHTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("origin stats: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("origin stats: %s answered %d", redactURL(url), resp.StatusCode)
	}
	var st synthorigin.Stats
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&st); err != nil {
		return nil, fmt.Errorf("origin stats: decoding: %w", err)
	}
	return &st, nil
}

// originOffload compares two /stats snapshots: how often the origin served each distinct segment, part and
// blocking playlist version during the run.
func originOffload(before, after *synthorigin.Stats, viewerSegments, viewerParts uint64) *OriginOffload {
	kind := func(k string) uint64 { return after.Kinds[k] - before.Kinds[k] }
	o := &OriginOffload{
		SegmentFetches:        kind("segment") + kind("init"), // a viewer's init segment is a segment request too
		PlaylistFetches:       kind("playlist") + kind("master"),
		ViewerSegmentRequests: viewerSegments,
		PartFetches:           kind("part"),
		ViewerPartRequests:    viewerParts,
		BlockingFetches:       after.BlockingRequests - before.BlockingRequests,
	}
	segs, parts := map[string]struct{}{}, map[string]struct{}{}
	for u, n := range after.URIs {
		if n <= before.URIs[u] {
			continue
		}
		p := u
		if i := strings.IndexByte(p, '?'); i >= 0 {
			p = p[:i]
		}
		switch {
		case isPartPath(p):
			parts[p] = struct{}{}
		case strings.HasSuffix(p, ".ts"), strings.HasSuffix(p, ".m4s"), strings.HasSuffix(p, ".mp4"):
			segs[p] = struct{}{}
		}
	}
	for k, n := range after.Blocking {
		if n > before.Blocking[k] {
			o.PlaylistVersions++
		}
	}
	o.DistinctSegments, o.DistinctParts = len(segs), len(parts)
	if o.DistinctSegments > 0 {
		o.FetchesPerSegment = float64(o.SegmentFetches) / float64(o.DistinctSegments)
	}
	if o.DistinctParts > 0 {
		o.FetchesPerPart = float64(o.PartFetches) / float64(o.DistinctParts)
	}
	if o.PlaylistVersions > 0 {
		o.FetchesPerPlaylistVersion = float64(o.BlockingFetches) / float64(o.PlaylistVersions)
	}
	if viewerSegments > 0 {
		o.Offload = 1 - float64(o.SegmentFetches)/float64(viewerSegments)
	}
	o.StatsTruncated = after.URIsDropped > before.URIsDropped || after.BlockingDropped > before.BlockingDropped
	return o
}

// isPartPath reports whether p names an LL part as the synthetic origin does: "{seq}_{tag}.{k}.m4s".
func isPartPath(p string) bool {
	base, ok := strings.CutSuffix(p, ".m4s")
	i := strings.LastIndexByte(base, '.')
	if !ok || i < 0 || i == len(base)-1 {
		return false
	}
	for _, c := range base[i+1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// sortedKeys is for stable output of status maps.
func sortedKeys(m map[string]uint64) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/hlsedge/hlsedge/bench/synthorigin"
)

type reqKind int

const (
	reqPlaylist reqKind = iota
	reqSegment
)

// hlsRun is the state every viewer of one run shares: one fasthttp client, the clock and lock-free counters.
type hlsRun struct {
	cfg    HLSConfig
	client *fasthttp.Client
	clk    clock

	active, started, peak, denied, stalledViewers atomic.Int64
	requests, bytes, errors, stalls, skipped      atomic.Uint64
	kindReqs                                      [2]atomic.Uint64
	stallTime                                     atomic.Int64
	statuses                                      [600]atomic.Uint64
	playlist, segment, startup                    histogram

	errMu     sync.Mutex
	errByName map[string]uint64 // transport failures: timeout, conn, ...
}

// get fetches url; with buf it copies the body there (playlists), otherwise only counts it (segments).
func (r *hlsRun) get(url string, k reqKind, buf *[]byte) (int, error) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(url)
	// The wall clock, whatever the run's: this is the network's latency, not the schedule's.
	start := time.Now()
	err := r.client.DoDeadline(req, resp, start.Add(r.cfg.Timeout))
	el := time.Since(start)
	r.requests.Add(1)
	r.kindReqs[k].Add(1)
	if err != nil {
		r.countError(errorName(err))
		return 0, err
	}
	st := resp.StatusCode()
	body := resp.Body()
	r.bytes.Add(uint64(len(body)))
	if st >= 100 && st < len(r.statuses) {
		r.statuses[st].Add(1)
	} else {
		r.countError("status_" + strconv.Itoa(st))
	}
	if st >= 400 {
		r.errors.Add(1)
	}
	if st/100 == 2 {
		if k == reqSegment {
			r.segment.Record(el)
		} else {
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
	return runHLS(ctx, cfg, progress, wallClock{})
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
	defer r.client.CloseIdleConnections()

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
			v := &viewer{r: r, entry: urls[i], rnd: rand.New(rand.NewPCG(cfg.Seed, uint64(i)))}
			r.started.Add(1)
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
	cancel()
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
		rep.Origin = originOffload(before, after, r.kindReqs[reqSegment].Load())
	}
	return rep, ctx.Err()
}

// sampler turns cumulative counters into per-interval samples.
type sampler struct {
	r                           *hlsRun
	start, last                 time.Time
	reqs, bytes, errors, stalls uint64
	seg, pl                     histSnap
	series                      []HLSSample
}

func newSampler(r *hlsRun, start time.Time) *sampler {
	return &sampler{r: r, start: start, last: start, seg: r.segment.snapshot(), pl: r.playlist.snapshot()}
}

func (s *sampler) sample(progress io.Writer) {
	r := s.r
	now := r.clk.Now()
	dt := now.Sub(s.last).Seconds()
	if dt <= 0 {
		return
	}
	reqs, bytes, errs, stalls := r.requests.Load(), r.bytes.Load(), r.errors.Load(), r.stalls.Load()
	seg, pl := r.segment.snapshot(), r.playlist.snapshot()
	dseg, dpl := seg.sub(&s.seg), pl.sub(&s.pl)
	active := r.active.Load()
	smp := HLSSample{
		T: now.Sub(s.start).Seconds(), Viewers: active,
		ReqPerSec: float64(reqs-s.reqs) / dt, MBPerSec: float64(bytes-s.bytes) / dt / 1e6,
		Errors: errs - s.errors, Stalls: stalls - s.stalls,
		SegmentP50Ms: ms(dseg.quantile(0.5)), SegmentP99Ms: ms(dseg.quantile(0.99)), PlaylistP99Ms: ms(dpl.quantile(0.99)),
	}
	s.series = append(s.series, smp)
	s.last, s.reqs, s.bytes, s.errors, s.stalls, s.seg, s.pl = now, reqs, bytes, errs, stalls, seg, pl
	if progress != nil {
		fmt.Fprintf(progress, "[%5.0fs] viewers %d/%d  req/s %.0f  MB/s %.1f  errors %d  p99 seg %.1fms pl %.1fms  stalls %d\n",
			smp.T, active, r.cfg.Viewers, smp.ReqPerSec, smp.MBPerSec, errs, smp.SegmentP99Ms, smp.PlaylistP99Ms, stalls)
	}
}

func (r *hlsRun) report(cfg HLSConfig, start time.Time, elapsed time.Duration, series []HLSSample) *HLSReport {
	seg, pl, su := r.segment.snapshot(), r.playlist.snapshot(), r.startup.snapshot()
	rep := &HLSReport{
		URL: redactURL(cfg.URL), Variant: cfg.Variant, Started: start, DurationSec: elapsed.Seconds(),
		Viewers: cfg.Viewers, ViewersStarted: r.started.Load(), ViewersPeak: r.peak.Load(),
		ViewersDenied: r.denied.Load(), ViewersStalled: r.stalledViewers.Load(),
		Requests: r.requests.Load(), PlaylistRequests: r.kindReqs[reqPlaylist].Load(),
		SegmentRequests: r.kindReqs[reqSegment].Load(), Bytes: r.bytes.Load(), Errors: r.errors.Load(),
		Startup: su.summary(), Playlist: pl.summary(), Segment: seg.summary(),
		Statuses: map[string]uint64{}, Stalls: r.stalls.Load(),
		StallSec: time.Duration(r.stallTime.Load()).Seconds(), SkippedSegments: r.skipped.Load(),
		Series: series,
	}
	if cfg.Mint != nil {
		rep.Mint = cfg.Mint.Kind
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

// originOffload compares two /stats snapshots: how often the origin served each distinct segment during the run.
func originOffload(before, after *synthorigin.Stats, viewerSegments uint64) *OriginOffload {
	o := &OriginOffload{
		SegmentFetches:        after.Kinds["segment"] - before.Kinds["segment"],
		PlaylistFetches:       after.Kinds["playlist"] + after.Kinds["master"] - before.Kinds["playlist"] - before.Kinds["master"],
		ViewerSegmentRequests: viewerSegments,
	}
	distinct := map[string]struct{}{}
	for u, n := range after.URIs {
		if n <= before.URIs[u] {
			continue
		}
		p := u
		if i := strings.IndexByte(p, '?'); i >= 0 {
			p = p[:i]
		}
		if strings.HasSuffix(p, ".ts") {
			distinct[p] = struct{}{}
		}
	}
	o.DistinctSegments = len(distinct)
	if o.DistinctSegments > 0 {
		o.FetchesPerSegment = float64(o.SegmentFetches) / float64(o.DistinctSegments)
	}
	if viewerSegments > 0 {
		o.Offload = 1 - float64(o.SegmentFetches)/float64(viewerSegments)
	}
	o.StatsTruncated = after.URIsDropped > before.URIsDropped
	return o
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

package bench

import (
	"context"
	"errors"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/valyala/fasthttp"
)

// viewer is one simulated player: master -> variant -> media playlist polled every target duration -> each new
// segment fetched once, in order, against a playback clock that starts when the first segment is ready. In LL
// mode it plays parts instead (hls_ll.go).
type viewer struct {
	r     *hlsRun
	entry string
	edge  *edgeStats
	rnd   *rand.Rand

	media     string // media playlist URL
	buf       []byte // last playlist body; segment URIs alias it
	pl        mediaPlaylist
	nextSeq   int64 // next segment to fetch; -1 before the first playlist
	started   time.Time
	playStart time.Time // zero until the first segment is ready; moved on by every stall (rebuffering)
	mediaPos  time.Duration
	stalled   bool

	// LL: the blocking reload is read into buf2/pl2 while the hinted part downloads, then swapped in.
	buf2 []byte
	pl2  mediaPlaylist
	// The part the viewer last asked for before having it (awaitPart), and when: its delivery is timed if it was
	// not yet complete then. Parts fetched while catching up were complete long before and are not.
	askedFor partPos
	askedAt  time.Time
}

// errDenied ends a viewer: the server refused its token, a player would stop too.
var errDenied = errors.New("denied")

func (v *viewer) run(ctx context.Context) {
	r := v.r
	v.started = r.clk.Now()
	v.nextSeq = -1
	r.notePeak(r.active.Add(1))
	defer r.active.Add(-1)
	if err := v.open(ctx); err != nil {
		if errors.Is(err, errDenied) {
			r.denied.Add(1)
		}
		return
	}
	if r.cfg.LL && v.runLL(ctx) {
		return
	}
	for ctx.Err() == nil {
		pollStart := r.clk.Now()
		target := v.poll(ctx)
		if target < 0 {
			r.denied.Add(1)
			return
		}
		if target == 0 { // VOD playlist fully played
			return
		}
		if !r.clk.SleepUntil(ctx, pollStart.Add(target)) {
			return
		}
	}
}

// open loads the entry URL and, for a master playlist, picks the variant. Transient errors are retried every
// second, as a player would, until the run ends.
func (v *viewer) open(ctx context.Context) error {
	for {
		st, err := v.r.get(v.edge, v.entry, reqPlaylist, &v.buf)
		switch {
		case err == nil && st == fasthttp.StatusOK:
			if !isMaster(v.buf) {
				v.media = v.entry
				return nil
			}
			vs := parseMaster(v.buf)
			if len(vs) == 0 {
				v.r.countError("bad_master")
				break
			}
			v.media = resolveURI(v.entry, []byte(v.pick(vs).uri))
			return nil
		case deniedStatus(st):
			return errDenied
		}
		if !v.r.clk.SleepUntil(ctx, v.r.clk.Now().Add(time.Second)) {
			return ctx.Err()
		}
	}
}

func (v *viewer) pick(vs []variantRef) variantRef {
	switch v.r.cfg.Variant {
	case VariantRandom:
		return vs[v.rnd.IntN(len(vs))]
	case VariantHighest:
		sort.SliceStable(vs, func(i, j int) bool { return vs[i].bandwidth > vs[j].bandwidth })
	default:
		sort.SliceStable(vs, func(i, j int) bool { return vs[i].bandwidth < vs[j].bandwidth })
	}
	return vs[0]
}

// poll loads the media playlist and fetches its new segments. It returns how long after the poll's start the
// next one is due (the target duration), 0 when a VOD playlist is finished, and -1 when the viewer was denied.
func (v *viewer) poll(ctx context.Context) time.Duration {
	r := v.r
	retry := time.Second
	if v.pl.target > 0 {
		retry = time.Duration(v.pl.target * float64(time.Second))
	}
	st, err := r.get(v.edge, v.media, reqPlaylist, &v.buf)
	if deniedStatus(st) {
		return -1
	}
	if err != nil || st != fasthttp.StatusOK || !parseMedia(v.buf, &v.pl) || v.pl.target <= 0 {
		if err == nil && st == fasthttp.StatusOK {
			r.countError("bad_playlist")
		}
		return retry
	}
	segs := v.pl.segments
	if v.nextSeq < 0 && len(segs) > 0 {
		// Start three segments from the live edge, as players do (RFC 8216 6.3.3), or at the top of a VOD.
		v.nextSeq = segs[0].seq
		if !v.pl.ended && len(segs) > 3 {
			v.nextSeq = segs[len(segs)-3].seq
		}
	}
	if len(segs) > 0 && v.nextSeq < segs[0].seq {
		// We fell behind the window: those segments are lost to this viewer.
		r.skipped.Add(uint64(segs[0].seq - v.nextSeq))
		v.stall(0)
		v.nextSeq = segs[0].seq
	}
	for i := range segs {
		s := &segs[i]
		if s.seq < v.nextSeq {
			continue
		}
		if ctx.Err() != nil {
			return retry
		}
		st, err := r.get(v.edge, resolveURI(v.media, s.uri), reqSegment, nil)
		done := r.clk.Now()
		v.nextSeq = s.seq + 1
		if deniedStatus(st) {
			return -1
		}
		dur := time.Duration(s.duration * float64(time.Second))
		if err != nil || st/100 != 2 {
			r.skipped.Add(1)
			v.mediaPos += dur
			continue
		}
		v.played(done, dur)
	}
	if v.pl.ended && v.nextSeq > segs[len(segs)-1].seq {
		return 0
	}
	return time.Duration(v.pl.target * float64(time.Second))
}

// played moves the playback clock over a piece of media of length dur that arrived at done: the first one starts
// playback; one that arrives after the playhead needed it is a rebuffer as long as its lateness.
func (v *viewer) played(done time.Time, dur time.Duration) {
	if v.playStart.IsZero() {
		v.playStart = done
		v.r.startup.Record(done.Sub(v.started))
	} else if deadline := v.playStart.Add(v.mediaPos); done.After(deadline) {
		late := done.Sub(deadline)
		v.stall(late)
		v.playStart = v.playStart.Add(late)
	}
	v.mediaPos += dur
}

func (v *viewer) stall(d time.Duration) {
	r := v.r
	r.stalls.Add(1)
	r.stallTime.Add(int64(d))
	if !v.stalled {
		v.stalled = true
		r.stalledViewers.Add(1)
	}
}

func deniedStatus(st int) bool {
	return st == fasthttp.StatusUnauthorized || st == fasthttp.StatusForbidden || st == fasthttp.StatusGone
}

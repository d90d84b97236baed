package bench

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// An LL viewer plays as hls.js does in low-latency mode. It joins on an independent part at least PART-HOLD-BACK
// from the end of the playlist and catches up on the listed parts. At the live edge it asks for each next part
// twice at once: the part itself as soon as the preload hint names it, and the playlist that will list it, with
// a blocking reload (_HLS_msn, _HLS_part). Every part it asked for before the origin completed it gives one part
// delivery latency: from that completion, which the playlist's dates tell, to the part's arrival.

// partPos names a part by its parent segment and its index in it.
type partPos struct {
	msn   int64
	index int
}

// runLL plays the media playlist in low-latency mode until ctx is done, the viewer is denied or the stream ends.
// It reports false, having only loaded the playlist, when the playlist is not LL-HLS: the caller then plays it
// the regular way.
func (v *viewer) runLL(ctx context.Context) bool {
	r := v.r
	for {
		st, err := r.get(v.edge, v.media, reqPlaylist, &v.buf)
		if deniedStatus(st) {
			r.denied.Add(1)
			return true
		}
		if err == nil && st == fasthttp.StatusOK && parseMedia(v.buf, &v.pl) {
			break
		}
		if err == nil && st == fasthttp.StatusOK {
			r.countError("bad_playlist")
		}
		if !r.clk.SleepUntil(ctx, r.clk.Now().Add(time.Second)) {
			return true
		}
	}
	if !v.pl.canBlock || v.pl.partTarget <= 0 || v.pl.ended {
		return false
	}
	if v.pl.mapURI != nil {
		if st, _ := r.get(v.edge, resolveURI(v.media, v.pl.mapURI), reqSegment, nil); deniedStatus(st) {
			r.denied.Add(1)
			return true
		}
	}
	next := v.pl.joinAt()
	for ctx.Err() == nil {
		pl := &v.pl
		if p, ok := pl.part(next); ok {
			if !v.fetchPart(p) {
				return true
			}
			next.index++
			continue
		}
		if last := pl.seq + int64(len(pl.segments)) - 1; next.msn <= last {
			switch {
			case next.msn < pl.seq:
				// Fell behind the window: what left it is lost to this viewer.
				r.skipped.Add(uint64(pl.seq - next.msn))
				v.stall(0)
				next = partPos{pl.seq, 0}
			case pl.hasParts(next.msn):
				next = partPos{next.msn + 1, 0} // past the segment's last part
			case next.index > 0:
				// Its parts are gone from the playlist halfway through: the rest of it is lost.
				r.skipped.Add(1)
				next = partPos{next.msn + 1, 0}
			default:
				// Its parts are gone from the playlist: play the whole segment instead.
				if !v.fetchSegment(pl.segments[next.msn-pl.seq]) {
					return true
				}
				next = partPos{next.msn + 1, 0}
			}
			continue
		}
		if pl.ended {
			return true
		}
		if !v.awaitPart(ctx, &next) {
			return true
		}
	}
	return true
}

// fetchPart fetches a listed part and plays it; it reports false when the viewer was denied.
func (v *viewer) fetchPart(p partRef) bool {
	st, err := v.r.get(v.edge, resolveURI(v.media, p.uri), reqPart, nil)
	if deniedStatus(st) {
		v.r.denied.Add(1)
		return false
	}
	v.gotPart(p, st, err, v.r.clk.Now())
	return true
}

// gotPart plays a part that arrived at done, and times its delivery if the viewer asked for it before the
// origin completed it: the part it waited for at the live edge, by hint or by blocking reload.
func (v *viewer) gotPart(p partRef, st int, err error, done time.Time) {
	if err != nil || st/100 != 2 {
		v.r.skipped.Add(1)
		v.mediaPos += p.duration
		return
	}
	if !p.avail.IsZero() && v.askedFor == (partPos{p.msn, p.index}) && !v.askedAt.After(p.avail) {
		v.r.partDelivery.Record(done.Sub(p.avail))
	}
	v.played(done, p.duration)
}

func (v *viewer) fetchSegment(s segmentRef) bool {
	st, err := v.r.get(v.edge, resolveURI(v.media, s.uri), reqSegment, nil)
	if deniedStatus(st) {
		v.r.denied.Add(1)
		return false
	}
	dur := time.Duration(s.duration * float64(time.Second))
	if err != nil || st/100 != 2 {
		v.r.skipped.Add(1)
		v.mediaPos += dur
		return true
	}
	v.played(v.r.clk.Now(), dur)
	return true
}

// awaitPart asks for *next, which the playlist does not list yet: with a blocking reload, and at the same time
// by fetching it if the preload hint names it. It moves *next on once that part is played, and reports false
// when the viewer was denied or ctx is done.
func (v *viewer) awaitPart(ctx context.Context, next *partPos) bool {
	r := v.r
	sep := "?"
	if strings.Contains(v.media, "?") {
		sep = "&"
	}
	reload := v.media + sep + "_HLS_msn=" + strconv.FormatInt(next.msn, 10) + "&_HLS_part=" + strconv.Itoa(next.index)
	hinted := v.pl.hint.uri != nil && v.pl.hint.msn == next.msn && v.pl.hint.index == next.index
	var partURL string
	if hinted {
		partURL = resolveURI(v.media, v.pl.hint.uri) // before buf is reused
	}
	v.askedFor, v.askedAt = *next, r.clk.Now()
	var (
		wg       sync.WaitGroup
		rst, pst int
		rerr     error
		perr     error
		arrived  time.Time
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		rst, rerr = r.get(v.edge, reload, reqBlocking, &v.buf2)
	}()
	if hinted {
		pst, perr = r.get(v.edge, partURL, reqPart, nil)
		arrived = r.clk.Now()
	}
	wg.Wait()
	if deniedStatus(rst) || deniedStatus(pst) {
		r.denied.Add(1)
		return false
	}
	reloaded := rerr == nil && rst == fasthttp.StatusOK && parseMedia(v.buf2, &v.pl2)
	if reloaded {
		v.buf, v.buf2 = v.buf2, v.buf
		v.pl, v.pl2 = v.pl2, v.pl
	} else if rerr == nil && rst == fasthttp.StatusOK {
		r.countError("bad_playlist")
	}
	if hinted && perr == nil && pst/100 == 2 {
		// The new playlist lists the part with its duration and date; without it, its delivery is not timed.
		p, ok := v.pl.part(*next)
		if !ok {
			p = partRef{msn: next.msn, index: next.index, duration: seconds(v.pl.partTarget)}
		}
		v.gotPart(p, pst, nil, arrived)
		next.index++
	}
	switch {
	case reloaded:
		return true
	case rst == fasthttp.StatusBadRequest:
		// The server refuses the directives (the viewer is too far ahead, or the stream restarted): rejoin at
		// the live edge of a plain reload.
		st, err := r.get(v.edge, v.media, reqPlaylist, &v.buf2)
		if deniedStatus(st) {
			r.denied.Add(1)
			return false
		}
		if err == nil && st == fasthttp.StatusOK && parseMedia(v.buf2, &v.pl2) {
			v.buf, v.buf2 = v.buf2, v.buf
			v.pl, v.pl2 = v.pl2, v.pl
			*next = v.pl.livePos()
			return true
		}
	}
	// A 503 after the hold, another error or a transport failure: wait a part before asking again, so that a
	// failing server is not hammered.
	return r.clk.SleepUntil(ctx, r.clk.Now().Add(seconds(v.pl.partTarget)))
}

// part finds the listed part at pos.
func (p *mediaPlaylist) part(pos partPos) (partRef, bool) {
	for i := len(p.parts) - 1; i >= 0; i-- {
		if q := p.parts[i]; q.msn == pos.msn && q.index == pos.index {
			return q, true
		}
	}
	return partRef{}, false
}

func (p *mediaPlaylist) hasParts(msn int64) bool {
	for i := range p.parts {
		if p.parts[i].msn == msn {
			return true
		}
	}
	return false
}

// joinAt is where a player joins in low-latency mode: the last independent part that starts at least
// PART-HOLD-BACK (three part targets if absent) before the end of the playlist; without one, the first part
// listed, or the live edge.
func (p *mediaPlaylist) joinAt() partPos {
	hold := seconds(p.partHoldBack)
	if hold <= 0 {
		hold = 3 * seconds(p.partTarget)
	}
	var fromEnd time.Duration
	for i := len(p.parts) - 1; i >= 0; i-- {
		fromEnd += p.parts[i].duration
		if p.parts[i].independent && fromEnd >= hold {
			return partPos{p.parts[i].msn, p.parts[i].index}
		}
	}
	if len(p.parts) > 0 {
		return partPos{p.parts[0].msn, p.parts[0].index}
	}
	return p.livePos()
}

// livePos is the part after the last one listed: the hinted one.
func (p *mediaPlaylist) livePos() partPos {
	if p.hint.uri != nil {
		return partPos{p.hint.msn, p.hint.index}
	}
	if n := len(p.parts); n > 0 {
		return partPos{p.parts[n-1].msn, p.parts[n-1].index + 1}
	}
	return partPos{p.seq + int64(len(p.segments)), 0}
}

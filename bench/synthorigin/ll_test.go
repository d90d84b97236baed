package synthorigin

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hlsedge/hlsedge/internal/clocks"
)

// waitAsleep blocks until exactly n requests sleep on clk (the origin holds them), or fails the test after a
// safety net. Exactly: a held request that went back to sleep rather than answered counts once.
func waitAsleep(t testing.TB, clk *clocks.Manual, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a safety net for a broken origin, not a measure
	defer cancel()
	if have, ok := clk.WaitSleepers(func(have int) bool { return have == n }, ctx.Done()); !ok {
		t.Fatalf("%d requests asleep on the clock, want %d", have, n)
	}
}

// llStart is 1.3 s into segment 566666667 (which starts at 1_700_000_001 s): with 0.6 s parts, parts 0 and 1 are
// complete and part 2 is the one hinted.
var llStart = time.Unix(1_700_000_002, 300_000_000)

const llSeq = 566666667

// startLL serves an LL origin on a manual clock at llStart.
func startLL(t *testing.T, cfg Config) (*Origin, string, *clocks.Manual) {
	t.Helper()
	clk := clocks.NewManual(llStart)
	cfg.LL, cfg.Now, cfg.SleepUntil = true, clk.Now, clk.SleepUntil
	if cfg.Channels == nil {
		cfg.Channels = []string{"a001"}
	}
	o, base := startOrigin(t, cfg)
	return o, base, clk
}

// llInfo is what the tests need from an LL media playlist.
type llInfo struct {
	lines    []string
	segments []string // segment URIs
	parts    []string // EXT-X-PART URIs in order
	indep    []bool
	hint     string
	reports  []string // EXT-X-RENDITION-REPORT attribute lists
	mapURI   string
	pdt      time.Time
	seq      int64
	ended    bool
	skip     string // EXT-X-SKIP attribute list
}

func parseLL(t testing.TB, body string) llInfo {
	t.Helper()
	var m llInfo
	quoted := func(l string) string {
		i := strings.Index(l, `URI="`)
		if i < 0 {
			t.Fatalf("no URI in %q", l)
		}
		rest := l[i+5:]
		return rest[:strings.IndexByte(rest, '"')]
	}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		l := sc.Text()
		m.lines = append(m.lines, l)
		switch {
		case strings.HasPrefix(l, "#EXT-X-PART:"):
			m.parts = append(m.parts, quoted(l))
			m.indep = append(m.indep, strings.HasSuffix(l, ",INDEPENDENT=YES"))
		case strings.HasPrefix(l, "#EXT-X-PRELOAD-HINT:TYPE=PART,"):
			m.hint = quoted(l)
		case strings.HasPrefix(l, "#EXT-X-RENDITION-REPORT:"):
			m.reports = append(m.reports, l[len("#EXT-X-RENDITION-REPORT:"):])
		case strings.HasPrefix(l, "#EXT-X-MAP:"):
			m.mapURI = quoted(l)
		case strings.HasPrefix(l, "#EXT-X-PROGRAM-DATE-TIME:"):
			var err error
			if m.pdt, err = time.Parse(time.RFC3339Nano, l[len("#EXT-X-PROGRAM-DATE-TIME:"):]); err != nil {
				t.Fatalf("bad date in %q: %v", l, err)
			}
		case strings.HasPrefix(l, "#EXT-X-MEDIA-SEQUENCE:"):
			m.seq, _ = strconv.ParseInt(l[len("#EXT-X-MEDIA-SEQUENCE:"):], 10, 64)
		case l == "#EXT-X-ENDLIST":
			m.ended = true
		case strings.HasPrefix(l, "#EXT-X-SKIP:"):
			m.skip = l[len("#EXT-X-SKIP:"):]
		case l != "" && !strings.HasPrefix(l, "#"):
			m.segments = append(m.segments, l)
		}
	}
	if !strings.HasPrefix(body, "#EXTM3U\n") {
		t.Fatalf("playlist does not start with #EXTM3U:\n%s", body)
	}
	return m
}

func (m llInfo) has(line string) bool { return slices.Contains(m.lines, line) }

// asyncGet starts a GET and delivers its outcome on the returned channel.
type getResult struct {
	code int
	body string
	err  error
}

func asyncGet(url string) <-chan getResult {
	ch := make(chan getResult, 1)
	go func() {
		resp, err := testHTTP.Get(url)
		if err != nil {
			ch <- getResult{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		ch <- getResult{code: resp.StatusCode, body: string(b), err: err}
	}()
	return ch
}

func TestOriginLLConfigValidate(t *testing.T) {
	f := func(cfg Config, field string) { t.Helper(); validates(t, cfg, field) }
	ok := []string{"a001"}
	sleep := func(context.Context, time.Time) bool { return true }
	f(Config{Channels: ok, LL: true}, "")
	f(Config{Channels: ok, LL: true, Parts: 15, SegmentDuration: 3 * time.Second}, "")
	f(Config{Channels: ok, LL: true, Parts: 3, SegmentDuration: time.Second + 200*time.Millisecond}, "")
	f(Config{Channels: ok, Parts: 5}, "parts")
	f(Config{Channels: ok, LL: true, Parts: 4}, "parts")
	f(Config{Channels: ok, LL: true, Parts: -1}, "parts")
	f(Config{Channels: ok, LL: true, SegmentDuration: 1001 * time.Millisecond}, "segmentDuration")
	f(Config{Channels: ok, LL: true, Now: time.Now}, "sleepUntil")
	f(Config{Channels: ok, LL: true, Now: time.Now, SleepUntil: sleep}, "")
}

// TestOriginLLMedia checks the committed fMP4 loop the way the origin relies on it: 15 fragments per segment,
// a keyframe at each segment's start and nowhere else, and decode times that shift by whole loops.
func TestOriginLLMedia(t *testing.T) {
	m, err := mediaLL()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.frags) != loopSegments*llFragments || m.codecs != "avc1.42c00c,mp4a.40.2" || len(m.loopTicks) != 2 {
		t.Fatalf("%d fragments, codecs %q, %d tracks", len(m.frags), m.codecs, len(m.loopTicks))
	}
	for i, f := range m.frags {
		if got, want := fragmentStartsOnKeyframe(t, m.file[f.start:f.end]), i%llFragments == 0; got != want {
			t.Fatalf("fragment %d starts on a keyframe: %v, want %v", i, got, want)
		}
	}
	plain := m.appendFragments(nil, 16, 18, 0)
	later := m.appendFragments(nil, 16, 18, 3)
	if len(plain) != m.size(16, 18) || len(later) != len(plain) {
		t.Fatalf("sizes %d %d, want %d", len(plain), len(later), m.size(16, 18))
	}
	diff := 0
	for _, f := range m.frags[16:18] {
		for _, d := range f.tfdts {
			at := f.start - m.frags[16].start + d.off
			a, b := binary.BigEndian.Uint64(plain[at:]), binary.BigEndian.Uint64(later[at:])
			if a != d.base || b != d.base+3*m.loopTicks[d.track] {
				t.Fatalf("tfdt %d -> %d, want %d -> %d", a, b, d.base, d.base+3*m.loopTicks[d.track])
			}
			for i := range 8 {
				plain[at+i], later[at+i] = 0, 0
			}
			diff++
		}
	}
	if diff != 4 || string(plain) != string(later) {
		t.Fatalf("shifting changed more than the %d decode times", diff)
	}
}

// fragmentStartsOnKeyframe reads the first video sample's flags from the fragment's trun, or from the tfhd or
// trex defaults that ffmpeg uses for the other samples.
func fragmentStartsOnKeyframe(t *testing.T, frag []byte) bool {
	t.Helper()
	be := binary.BigEndian
	_, payload, end, err := mp4Box(frag, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := payload; i < end; {
		typ, p, e, err := mp4Box(frag[:end], i)
		if err != nil {
			t.Fatal(err)
		}
		if typ == "traf" {
			var defFlags uint32
			video := false
			for j := p; j < e; {
				t2, p2, e2, err := mp4Box(frag[:e], j)
				if err != nil {
					t.Fatal(err)
				}
				switch t2 {
				case "tfhd":
					fl := be.Uint32(frag[p2:]) & 0xffffff
					video = be.Uint32(frag[p2+4:]) == 1
					q := p2 + 8
					for _, bit := range []uint32{0x1, 0x2, 0x8, 0x10} {
						if fl&bit != 0 {
							q += map[uint32]int{0x1: 8, 0x2: 4, 0x8: 4, 0x10: 4}[bit]
						}
					}
					if fl&0x20 != 0 {
						defFlags = be.Uint32(frag[q:])
					}
				case "trun":
					if !video {
						break
					}
					fl := be.Uint32(frag[p2:]) & 0xffffff
					q := p2 + 8
					if fl&0x1 != 0 {
						q += 4
					}
					flags := defFlags
					if fl&0x4 != 0 {
						flags = be.Uint32(frag[q:])
					}
					return flags&0x10000 == 0 // sample_is_non_sync_sample clear
				}
				j = e2
			}
		}
		i = e
	}
	t.Fatal("no video trun")
	return false
}

func TestOriginLLPlaylist(t *testing.T) {
	o, base, _ := startLL(t, Config{URIs: URIsPath, Variants: 2, WindowSize: 4})
	pl := "/play/a001/" + o.VariantPlaylist("a001", 0)
	m := parseLL(t, mustGet(t, base+pl))
	for _, l := range []string{"#EXT-X-VERSION:6", "#EXT-X-TARGETDURATION:3", "#EXT-X-PART-INF:PART-TARGET=0.600",
		"#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=18.000,PART-HOLD-BACK=1.800"} {
		if !m.has(l) {
			t.Fatalf("no %q in\n%s", l, strings.Join(m.lines, "\n"))
		}
	}
	for _, l := range m.lines {
		if strings.HasPrefix(l, "#EXT-X-DISCONTINUITY") {
			t.Fatalf("LL timestamps run on across the loop, yet %q", l)
		}
	}
	// Four complete segments, the last three with their five parts, then the two parts of the one in progress.
	first := int64(llSeq - 4)
	if m.seq != first || len(m.segments) != 4 || len(m.parts) != 3*5+2 || !m.pdt.Equal(time.Unix(int64(first)*3, 0)) {
		t.Fatalf("seq %d, %d segments, %d parts, date %v", m.seq, len(m.segments), len(m.parts), m.pdt)
	}
	for i, s := range m.segments {
		if want := "/play/a001/" + o.SegmentName("a001", 0, first+int64(i)); s != want {
			t.Fatalf("segment %d %s, want %s", i, s, want)
		}
	}
	for i, p := range m.parts {
		seq, k := first+1+int64(i/5), i%5
		if want := "/play/a001/" + o.PartName("a001", 0, seq, k); p != want || m.indep[i] != (k == 0) {
			t.Fatalf("part %d: %s independent %v, want %s", i, p, m.indep[i], want)
		}
	}
	if m.hint != "/play/a001/"+o.PartName("a001", 0, llSeq, 2) || m.mapURI != "/play/a001/init_0.mp4" {
		t.Fatalf("hint %s map %s", m.hint, m.mapURI)
	}
	if want := `URI="/play/a001/` + o.VariantPlaylist("a001", 1) + `",LAST-MSN=566666667,LAST-PART=1`; len(m.reports) != 1 || m.reports[0] != want {
		t.Fatalf("rendition reports %q, want %q", m.reports, want)
	}
	if seq, parts := o.LiveEdge(); seq != llSeq || parts != 2 {
		t.Fatalf("LiveEdge %d %d", seq, parts)
	}

	// A segment is its parts end to end; the init segment is the loop's.
	var joined strings.Builder
	for _, p := range m.parts[10:15] {
		code, hdr, b := get(t, base+p)
		if code != 200 || hdr.Get("Content-Type") != "video/mp4" {
			t.Fatalf("part %s: %d %v", p, code, hdr)
		}
		joined.WriteString(b)
	}
	if seg := mustGet(t, base+m.segments[3]); seg != joined.String() || len(seg) < 10000 {
		t.Fatalf("segment of %d bytes is not its parts (%d bytes)", len(seg), joined.Len())
	}
	if init := mustGet(t, base+m.mapURI); init != string(o.ll.init) || mustGet(t, base+"/play/a001/init_1.mp4") != init {
		t.Fatalf("init segment")
	}

	f := func(path string, want int) {
		t.Helper()
		if code, _, _ := get(t, base+path); code != want {
			t.Fatalf("GET %s: %d, want %d", path, code, want)
		}
	}
	f("/play/a001/"+o.PartName("a001", 0, llSeq, 1), 200)                                   // complete
	f("/play/a001/"+o.PartName("a001", 0, llSeq, 3), 404)                                   // not hinted yet
	f("/play/a001/"+o.SegmentName("a001", 0, llSeq), 404)                                   // in progress
	f("/play/a001/"+o.PartName("a001", 0, first-1, 0), 404)                                 // left the window
	f("/play/a001/"+o.PartName("a001", 0, first, 5), 404)                                   // no such part
	f("/play/a001/"+o.PartName("a001", 0, first, 0)[1:], 404)                               // name does not match its tag
	f("/play/a001/"+o.SegmentName("a001", 0, first)+"x", 404)                               // not a name
	f("/play/a001/"+strings.TrimSuffix(o.SegmentName("a001", 0, first), ".m4s")+".ts", 404) // TS is off in LL mode
	f("/play/a001/init_2.mp4", 404)
	f("/play/a001/init_x.mp4", 404)
	// Kinds count the 404s too: 6 parts served and 4 refused, 1+1 segments, 2+2 init segments.
	if st := o.Stats(); st.Kinds["part"] != 10 || st.Kinds["segment"] != 2 || st.Kinds["init"] != 4 || st.NotFound != 9 {
		t.Fatalf("kinds %v, %d not found", st.Kinds, st.NotFound)
	}
}

// TestOriginLLBlockingReload walks through rfc8216bis 6.2.5.2 on the manual clock.
func TestOriginLLBlockingReload(t *testing.T) {
	o, base, clk := startLL(t, Config{URIs: URIsRelative})
	pl := base + "/play/a001/index.m3u8"
	q := func(msn int64, part int) string {
		if part < 0 {
			return fmt.Sprintf("%s?_HLS_msn=%d", pl, msn)
		}
		return fmt.Sprintf("%s?_HLS_msn=%d&_HLS_part=%d", pl, msn, part)
	}

	t.Run("refuses what the spec refuses", func(t *testing.T) {
		f := func(url string) {
			t.Helper()
			code, _, body := get(t, url)
			if code != 400 || !strings.HasPrefix(body, "bad request: ") || strings.Count(body, "\n") != 1 {
				t.Fatalf("GET %s: %d %q, want 400 and one line", url, code, body)
			}
		}
		f(pl + "?_HLS_part=1")           // _HLS_part without _HLS_msn
		f(pl + "?_HLS_msn=x")            // not a number
		f(pl + "?_HLS_msn=-1")           // nor this
		f(q(llSeq, -1) + "&_HLS_part=y") // nor this
		f(q(llSeq+2, 0))                 // more than two past the last complete segment
		f(q(llSeq+1, 3))                 // more than the advance part limit (5 parts) ahead
		if st := o.Stats(); st.BadRequests != 6 || st.Blocking[strings.TrimPrefix(pl, base)+"?_HLS_part=1"] != 1 {
			t.Fatalf("stats %+v", st)
		}
	})

	t.Run("answers at once what exists", func(t *testing.T) {
		for _, u := range []string{q(llSeq, 1), q(llSeq, 0), q(llSeq-1, -1), q(llSeq-1, 4), q(llSeq-40, 2)} {
			if m := parseLL(t, mustGet(t, u)); m.hint != o.PartName("a001", 0, llSeq, 2) {
				t.Fatalf("%s: hint %s", u, m.hint)
			}
		}
	})

	t.Run("holds until the part exists", func(t *testing.T) {
		got := asyncGet(q(llSeq, 2))
		waitAsleep(t, clk, 1)
		// One nanosecond early: the request goes back to sleep instead of answering.
		clk.AdvanceTo(o.PartAvailable(llSeq, 2).Add(-1))
		waitAsleep(t, clk, 1)
		clk.AdvanceTo(o.PartAvailable(llSeq, 2))
		r := <-got
		m := parseLL(t, r.body)
		if r.code != 200 || m.parts[len(m.parts)-1] != o.PartName("a001", 0, llSeq, 2) || m.hint != o.PartName("a001", 0, llSeq, 3) {
			t.Fatalf("%d: last part %v, hint %s", r.code, m.parts[len(m.parts)-3:], m.hint)
		}
	})

	t.Run("a part past the segment's last is the next segment's first", func(t *testing.T) {
		got := asyncGet(q(llSeq, 5))
		waitAsleep(t, clk, 1)
		clk.AdvanceTo(o.PartAvailable(llSeq, 4)) // the segment completes: not enough
		waitAsleep(t, clk, 1)
		clk.AdvanceTo(o.PartAvailable(llSeq+1, 0))
		if m := parseLL(t, (<-got).body); m.hint != o.PartName("a001", 0, llSeq+1, 1) {
			t.Fatalf("hint %s", m.hint)
		}
	})

	t.Run("_HLS_msn alone waits for the whole segment", func(t *testing.T) {
		got := asyncGet(q(llSeq+1, -1))
		waitAsleep(t, clk, 1)
		clk.AdvanceTo(o.PartAvailable(llSeq+1, 3))
		waitAsleep(t, clk, 1)
		clk.AdvanceTo(o.PartAvailable(llSeq+1, 4))
		if m := parseLL(t, (<-got).body); m.segments[len(m.segments)-1] != o.SegmentName("a001", 0, llSeq+1) {
			t.Fatalf("segments %v", m.segments)
		}
	})

	t.Run("503 when the hold runs out", func(t *testing.T) {
		seq, parts := o.LiveEdge()
		o.Stall()
		got := asyncGet(q(seq, parts))
		waitAsleep(t, clk, 1)
		clk.Advance(9*time.Second - 1) // three target durations, less a nanosecond
		waitAsleep(t, clk, 1)
		clk.Advance(1)
		r := <-got
		if r.code != 503 || strings.Count(r.body, "\n") != 1 || o.Stats().HoldTimeouts != 1 {
			t.Fatalf("%d %q, %d hold timeouts", r.code, r.body, o.Stats().HoldTimeouts)
		}
		// The stalled playlist did not move in those 9 s.
		if m := parseLL(t, mustGet(t, pl)); m.hint != o.PartName("a001", 0, seq, parts) {
			t.Fatalf("hint %s while stalled", m.hint)
		}
	})

	t.Run("Resume releases a held request", func(t *testing.T) {
		seq, parts := o.LiveEdge()
		got := asyncGet(q(seq, parts))
		waitAsleep(t, clk, 1)
		o.Resume() // the clock is 9 s past the stall: the edge jumps there
		if r := <-got; r.code != 200 {
			t.Fatalf("%d %s", r.code, r.body)
		}
	})

	t.Run("ENDLIST: directives ignored", func(t *testing.T) {
		seq, _ := o.LiveEdge()
		o.End()
		defer o.Resume()
		for _, u := range []string{q(seq+1, 0), pl + "?_HLS_part=1", q(seq+40, -1)} {
			m := parseLL(t, mustGet(t, u))
			if !m.ended || m.hint != "" || len(m.parts) != 15 || m.segments[len(m.segments)-1] != o.SegmentName("a001", 0, seq-1) {
				t.Fatalf("%s: ended %v hint %q, %d parts, segments %v", u, m.ended, m.hint, len(m.parts), m.segments)
			}
		}
		// The parts of the segment that was in progress went with it.
		if code, _, _ := get(t, base+"/play/a001/"+o.PartName("a001", 0, seq, 0)); code != 404 {
			t.Fatalf("part of the dropped segment: %d", code)
		}
	})

	t.Run("counts per playlist version", func(t *testing.T) {
		seq, _ := o.LiveEdge()
		before := o.Stats()
		for range 3 {
			mustGet(t, q(seq-1, 4)+"&token=x")
		}
		key := fmt.Sprintf("/play/a001/index.m3u8?_HLS_msn=%d&_HLS_part=4", seq-1)
		if st := o.Stats(); st.Blocking[key] != 3 || st.BlockingRequests != before.BlockingRequests+3 {
			t.Fatalf("blocking %v", st.Blocking)
		}
	})
}

// TestOriginLLDeltaUpdate walks through rfc8216bis 6.2.5.1 on the manual clock: the default LL window is long
// enough for CAN-SKIP-UNTIL to skip, and _HLS_skip replaces the older segments with EXT-X-SKIP, alone or
// together with a blocking reload.
func TestOriginLLDeltaUpdate(t *testing.T) {
	o, base, clk := startLL(t, Config{URIs: URIsRelative, Variants: 2})
	pl := base + "/play/a001/" + o.VariantPlaylist("a001", 0)
	full := parseLL(t, mustGet(t, pl))
	// Ten segments by default: the six that end within 18 s of the playlist's end, and four older ones.
	first := int64(llSeq - 10)
	if full.seq != first || len(full.segments) != 10 || full.skip != "" || !full.has("#EXT-X-VERSION:6") ||
		!full.has("#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=18.000,PART-HOLD-BACK=1.800") {
		t.Fatalf("full playlist: seq %d, %d segments, skip %q:\n%s", full.seq, len(full.segments), full.skip,
			strings.Join(full.lines, "\n"))
	}
	// check compares a delta with the full playlist of the same moment: the same media sequence, the four older
	// segments skipped, and from the first segment kept on the same lines, the date moved to that segment.
	check := func(body string, whole llInfo, version, skip string) {
		t.Helper()
		d := parseLL(t, body)
		if d.seq != whole.seq || d.skip != skip || !d.has("#EXT-X-VERSION:"+version) || d.mapURI != whole.mapURI ||
			!d.pdt.Equal(whole.pdt.Add(4*3*time.Second)) {
			t.Fatalf("delta: seq %d (want %d), skip %q (want %q), date %v:\n%s", d.seq, whole.seq, d.skip, skip, d.pdt, body)
		}
		if !slices.Equal(d.segments, whole.segments[4:]) || !slices.Equal(d.parts, whole.parts) || d.hint != whole.hint ||
			!slices.Equal(d.reports, whole.reports) {
			t.Fatalf("delta segments %v parts %d hint %s reports %v, want %v %d %s %v", d.segments, len(d.parts), d.hint,
				d.reports, whole.segments[4:], len(whole.parts), whole.hint, whole.reports)
		}
		at := slices.Index(d.lines, "#EXT-X-PROGRAM-DATE-TIME:"+d.pdt.UTC().Format("2006-01-02T15:04:05.000Z"))
		from := slices.Index(whole.lines, "#EXTINF:3.000,") + 2*4
		if at < 0 || !slices.Equal(d.lines[at+1:], whole.lines[from:]) {
			t.Fatalf("delta differs from the full playlist past the skipped segments:\n%s", body)
		}
	}
	check(mustGet(t, pl+"?_HLS_skip=YES"), full, "9", "SKIPPED-SEGMENTS=4")
	check(mustGet(t, pl+"?_HLS_skip=v2"), full, "10", `SKIPPED-SEGMENTS=4,RECENTLY-REMOVED-DATERANGES=""`)

	t.Run("refuses other values", func(t *testing.T) {
		for _, q := range []string{"?_HLS_skip=NO", "?_HLS_skip=", "?_HLS_skip=yes", "?_HLS_msn=1&_HLS_skip=v3"} {
			code, _, body := get(t, pl+q)
			if code != 400 || body != "bad request: _HLS_skip must be YES or v2\n" {
				t.Fatalf("%s: %d %q", q, code, body)
			}
		}
	})

	t.Run("with a blocking reload", func(t *testing.T) {
		got := asyncGet(fmt.Sprintf("%s?_HLS_skip=YES&_HLS_msn=%d&_HLS_part=2", pl, llSeq))
		waitAsleep(t, clk, 1)
		clk.AdvanceTo(o.PartAvailable(llSeq, 2))
		r := <-got
		if r.code != 200 {
			t.Fatalf("%d %s", r.code, r.body)
		}
		check(r.body, parseLL(t, mustGet(t, pl)), "9", "SKIPPED-SEGMENTS=4")
		if d := parseLL(t, r.body); d.parts[len(d.parts)-1] != o.PartName("a001", 0, llSeq, 2) {
			t.Fatalf("blocking delta ends with part %s", d.parts[len(d.parts)-1])
		}
	})

	t.Run("a window within the boundary is sent whole", func(t *testing.T) {
		o6, base6, _ := startLL(t, Config{WindowSize: 6})
		m := parseLL(t, mustGet(t, base6+"/play/a001/index.m3u8?_HLS_skip=YES"))
		if m.skip != "" || len(m.segments) != 6 || !m.has("#EXT-X-VERSION:6") {
			t.Fatalf("skip %q, %d segments", m.skip, len(m.segments))
		}
		if st := o6.Stats(); st.SkipRequests != 1 || st.DeltaUpdates != 0 {
			t.Fatalf("%d skip requests, %d delta updates", st.SkipRequests, st.DeltaUpdates)
		}
	})

	t.Run("ENDLIST: _HLS_skip ignored", func(t *testing.T) {
		o.End()
		defer o.Resume()
		for _, q := range []string{"?_HLS_skip=YES", "?_HLS_skip=bogus"} {
			if m := parseLL(t, mustGet(t, pl+q)); !m.ended || m.skip != "" || len(m.segments) != 10 {
				t.Fatalf("%s: ended %v, skip %q, %d segments", q, m.ended, m.skip, len(m.segments))
			}
		}
	})

	key := fmt.Sprintf("/play/a001/%s?_HLS_msn=%d&_HLS_part=2&_HLS_skip=YES", o.VariantPlaylist("a001", 0), llSeq)
	if st := o.Stats(); st.SkipRequests != 9 || st.DeltaUpdates != 3 || st.Blocking[key] != 1 || st.BadRequests != 4 {
		t.Fatalf("%d skip requests, %d delta updates, %d bad requests, blocking %v", st.SkipRequests, st.DeltaUpdates,
			st.BadRequests, st.Blocking)
	}
}

// TestOriginLLHintedPartStreams asks for the hinted part before any of it exists: the response starts with its
// first fragment and each later fragment arrives when the clock produces it, not before.
func TestOriginLLHintedPartStreams(t *testing.T) {
	o, base, clk := startLL(t, Config{}) // 0.6 s parts of three 0.2 s fragments
	seq, parts := o.LiveEdge()           // 1.3 s in: part 2 (fragments 6 to 8, from 1.2 s) is hinted
	if parts != 2 {
		t.Fatalf("parts %d", parts)
	}
	url := base + "/play/a001/" + o.PartName("a001", 0, seq, 2)
	type result struct {
		resp *http.Response
		err  error
	}
	started := make(chan result, 1)
	go func() {
		resp, err := testHTTP.Get(url)
		started <- result{resp, err}
	}()
	waitAsleep(t, clk, 1)
	m := o.ll
	frag := func(j int) int { i := int(floorMod(seq, loopSegments))*llFragments + j; return m.size(i, i+1) }
	var body []byte
	var resp *http.Response
	for j := 6; j < 9; j++ {
		clk.AdvanceTo(o.fragDone(seq, j))
		if j == 6 {
			r := <-started
			if r.err != nil || r.resp.StatusCode != 200 || r.resp.ContentLength != -1 {
				t.Fatalf("hinted part: %v %+v", r.err, r.resp)
			}
			resp = r.resp
			defer resp.Body.Close()
		}
		b := make([]byte, frag(j))
		if _, err := io.ReadFull(resp.Body, b); err != nil {
			t.Fatalf("fragment %d: %v", j, err)
		}
		body = append(body, b...)
		if j < 8 {
			waitAsleep(t, clk, 1) // nothing more is sent until the next fragment exists
		}
	}
	if rest, err := io.ReadAll(resp.Body); err != nil || len(rest) != 0 {
		t.Fatalf("after the last fragment: %d bytes, %v", len(rest), err)
	}
	if whole := mustGet(t, url); string(body) != whole {
		t.Fatalf("streamed part (%d bytes) differs from the complete one (%d)", len(body), len(whole))
	}

	// Stalled in the middle of a part: after the hold the response is cut, not ended as if whole.
	seq, parts = o.LiveEdge()
	clk.AdvanceTo(o.fragDone(seq, parts*3)) // the hinted part's first fragment exists
	o.Stall()
	got := asyncGet(base + "/play/a001/" + o.PartName("a001", 0, seq, parts))
	waitAsleep(t, clk, 1)
	clk.Advance(9 * time.Second)
	if r := <-got; r.err == nil {
		t.Fatalf("a part cut by a stall read as complete: %d, %d bytes", r.code, len(r.body))
	}
	o.Resume()
}

// TestOriginLLWrapIsContinuous decodes the two segments around a loop wrap: in LL mode the decode times run on,
// so the packets continue without a jump backwards and without a hole.
func TestOriginLLWrapIsContinuous(t *testing.T) {
	if _, err := exec.LookPath("ffprobe"); err != nil {
		t.Fatalf("ffprobe is required (make deps installs it): %v", err)
	}
	o, base, _ := startLL(t, Config{})
	_, last := o.Window()
	wrap := last - floorMod(last, loopSegments) // the newest segment that starts a loop pass
	file := mustGet(t, base+"/play/a001/init_0.mp4") + mustGet(t, base+"/play/a001/"+o.SegmentName("a001", 0, wrap-1)) +
		mustGet(t, base+"/play/a001/"+o.SegmentName("a001", 0, wrap))
	p := filepath.Join(t.TempDir(), "wrap.mp4")
	if err := os.WriteFile(p, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// The init segment describes the streams fully: a player that derives the codecs from it (hls.js does,
	// without a master playlist) needs the AudioSpecificConfig, which an ADTS source would have left out.
	streams, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-show_entries", "stream=codec_name,profile,channels",
		"-of", "csv=p=0", p).Output()
	if got := strings.Fields(strings.ReplaceAll(string(streams), " ", "_")); err != nil || strings.Join(got, " ") != "h264,Constrained_Baseline aac,LC,1" {
		t.Fatalf("streams %q (%v), want Constrained Baseline H.264 and mono AAC-LC", streams, err)
	}
	out, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-show_entries", "packet=stream_index,dts_time",
		"-of", "csv=p=0", p).Output()
	if err != nil {
		t.Fatalf("ffprobe: %v", err)
	}
	lastDTS := map[string]float64{}
	n := 0
	for _, l := range strings.Fields(string(out)) {
		idx, ts, _ := strings.Cut(l, ",")
		v, err := strconv.ParseFloat(ts, 64)
		if err != nil {
			t.Fatalf("line %q", l)
		}
		if prev, ok := lastDTS[idx]; ok && (v <= prev || v-prev > 0.05) {
			t.Fatalf("stream %s jumps from %.4f to %.4f", idx, prev, v)
		}
		lastDTS[idx] = v
		n++
	}
	// Media time is wall time: the wrap segment starts 3 s per sequence number after the epoch.
	if n < 2*(75+130) || lastDTS["0"] < float64(wrap*3) || lastDTS["0"] > float64(wrap*3+3) {
		t.Fatalf("%d packets, last video dts %.3f for segment %d", n, lastDTS["0"], wrap)
	}
}

// TestOriginLLFFprobe has the real ffprobe read the LL origin over loopback on the wall clock: fMP4 parts and
// segments that a real HLS client decodes, in both variant set-ups.
func TestOriginLLFFprobe(t *testing.T) {
	wall := clocks.Wall{}
	probeOrigin(t, Config{Channels: []string{"a001"}, LL: true, Now: wall.Now, SleepUntil: wall.SleepUntil})
	probeOrigin(t, Config{Channels: []string{"a001"}, LL: true, URIs: URIsRelative, Variants: 2, Parts: 15, Now: wall.Now, SleepUntil: wall.SleepUntil})
}

func TestOriginLLStatsJSON(t *testing.T) {
	_, base, _ := startLL(t, Config{})
	mustGet(t, base+"/play/a001/index.m3u8?_HLS_msn=1&_HLS_part=0")
	var st Stats
	if err := json.Unmarshal([]byte(mustGet(t, base+"/stats")), &st); err != nil {
		t.Fatal(err)
	}
	if st.BlockingRequests != 1 || st.Blocking["/play/a001/index.m3u8?_HLS_msn=1&_HLS_part=0"] != 1 || st.Kinds["playlist"] != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// BenchmarkOriginLLPart is the cost of a complete part: a copy of its fragments with their decode times patched.
func BenchmarkOriginLLPart(b *testing.B) {
	clk := clocks.NewManual(llStart)
	benchOrigin(b, Config{Channels: []string{"a001"}, LL: true, Now: clk.Now, SleepUntil: clk.SleepUntil}, func(o *Origin) string {
		return "/play/a001/" + o.PartName("a001", 0, llSeq, 0)
	})
}

package synthorigin

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hlsedge/hlsedge/internal/testkit"
)

// testClock is a settable clock for the live window.
type testClock struct{ ns atomic.Int64 }

func newTestClock(t time.Time) *testClock { c := &testClock{}; c.ns.Store(t.UnixNano()); return c }
func (c *testClock) Now() time.Time       { return time.Unix(0, c.ns.Load()) }
func (c *testClock) Add(d time.Duration)  { c.ns.Add(int64(d)) }

// startOrigin serves an origin on a loopback port for the test's lifetime and returns its base URL. Without a
// clock in cfg the live window stands still, so that a test never races the wall clock across a period.
func startOrigin(t testing.TB, cfg Config) (*Origin, string) {
	t.Helper()
	if cfg.Now == nil {
		cfg.Now = newTestClock(time.Unix(1_700_000_000, 500_000_000)).Now
	}
	o, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- o.Serve(ln) }()
	t.Cleanup(func() {
		o.Shutdown()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve returned %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Serve did not return after Shutdown")
		}
	})
	return o, "http://" + ln.Addr().String()
}

var testHTTP = &http.Client{Timeout: 10 * time.Second}

func get(t testing.TB, url string, hdr ...string) (int, http.Header, string) {
	t.Helper()
	code, h, b := testkit.Do(t, testHTTP, http.MethodGet, url, "", hdr...)
	return code, h, string(b)
}

// mediaInfo is what the tests need from a media playlist.
type mediaInfo struct {
	seq, discSeq int64
	uris         []string
	discBefore   []bool // discBefore[i]: an EXT-X-DISCONTINUITY precedes uris[i]
	target       int
}

func parseMediaInfo(t testing.TB, body string) mediaInfo {
	t.Helper()
	var m mediaInfo
	disc := false
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "#EXT-X-MEDIA-SEQUENCE:"):
			m.seq, _ = strconv.ParseInt(l[len("#EXT-X-MEDIA-SEQUENCE:"):], 10, 64)
		case strings.HasPrefix(l, "#EXT-X-DISCONTINUITY-SEQUENCE:"):
			m.discSeq, _ = strconv.ParseInt(l[len("#EXT-X-DISCONTINUITY-SEQUENCE:"):], 10, 64)
		case strings.HasPrefix(l, "#EXT-X-TARGETDURATION:"):
			m.target, _ = strconv.Atoi(l[len("#EXT-X-TARGETDURATION:"):])
		case l == "#EXT-X-DISCONTINUITY":
			disc = true
		case l != "" && !strings.HasPrefix(l, "#"):
			m.uris = append(m.uris, l)
			m.discBefore = append(m.discBefore, disc)
			disc = false
		}
	}
	if !strings.HasPrefix(body, "#EXTM3U\n") {
		t.Fatalf("playlist does not start with #EXTM3U:\n%s", body)
	}
	return m
}

// validates checks that cfg is valid (field "") or that Validate and New refuse it naming field.
func validates(t *testing.T, cfg Config, field string) {
	t.Helper()
	err := cfg.Validate()
	if field == "" {
		if err != nil {
			t.Fatalf("Validate(%+v) = %v, want nil", cfg, err)
		}
		return
	}
	if err == nil || !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "'"+field+"'") {
		t.Fatalf("Validate(%+v) = %v, want an error naming '%s'", cfg, err, field)
	}
	if _, err := New(cfg); err == nil {
		t.Fatalf("New accepted an invalid config %+v", cfg)
	}
}

func TestOriginConfigValidate(t *testing.T) {
	f := func(cfg Config, field string) { t.Helper(); validates(t, cfg, field) }
	ok := []string{"a001"}
	f(Config{Channels: ok}, "")
	f(Config{Channels: ok, URIs: "path", Variants: 8, WindowSize: 6, SegmentDuration: time.Second}, "")
	f(Config{}, "channels")
	f(Config{Channels: []string{"a/b"}}, "channels[0]")
	f(Config{Channels: []string{"a", ""}}, "channels[1]")
	f(Config{Channels: []string{"a", "a"}}, "channels[1]")
	f(Config{Channels: ok, URIs: "https"}, "uris")
	f(Config{Channels: ok, Variants: 9}, "variants")
	f(Config{Channels: ok, Variants: -1}, "variants")
	f(Config{Channels: ok, SegmentDuration: -time.Second}, "segmentDuration")
	f(Config{Channels: ok, SegmentDuration: time.Millisecond}, "segmentDuration")
	f(Config{Channels: ok, WindowSize: 65}, "windowSize")
	f(Config{Channels: ok, Delay: -1}, "delay")
	f(Config{Channels: ok, MaxStatsURIs: -1}, "maxStatsURIs")
}

func TestOriginWindowAdvancesWithClock(t *testing.T) {
	clk := newTestClock(time.Unix(1_699_999_998, 500_000_000))
	_, base := startOrigin(t, Config{Channels: []string{"a001"}, URIs: URIsPath, WindowSize: 5, Now: clk.Now})
	url := base + "/play/a001/index.m3u8"
	code, hdr, body := get(t, url)
	if code != 200 || hdr.Get("Content-Type") != "application/vnd.apple.mpegurl" || hdr.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("GET playlist: %d %v", code, hdr)
	}
	m := parseMediaInfo(t, body)
	// 1_699_999_998.5 s is 0.5 s into period 566666666; the last complete one is 566666665.
	if want := int64(566666665 - 4); m.seq != want || len(m.uris) != 5 || m.target != 3 {
		t.Fatalf("media sequence %d with %d entries, target %d; want %d with 5, target 3:\n%s", m.seq, len(m.uris), m.target, want, body)
	}
	clk.Add(time.Second) // same period: same window
	if m2 := parseMediaInfo(t, mustGet(t, url)); m2.seq != m.seq || strings.Join(m2.uris, " ") != strings.Join(m.uris, " ") {
		t.Fatalf("window moved within one segment duration: %d -> %d", m.seq, m2.seq)
	}
	clk.Add(2 * time.Second)
	m3 := parseMediaInfo(t, mustGet(t, url))
	if m3.seq != m.seq+1 || m3.uris[0] != m.uris[1] || m3.uris[3] != m.uris[4] {
		t.Fatalf("after one segment duration: seq %d uris %v; was %d %v", m3.seq, m3.uris, m.seq, m.uris)
	}
	// The segment that left the window stays served for its duration plus the playlist's (RFC 8216 §6.2.2),
	// then it is gone; the newest one is served.
	if code, _, _ := get(t, base+m.uris[0]); code != 200 {
		t.Fatalf("segment that just left the window: %d, want 200", code)
	}
	clk.Add(6 * 3 * time.Second) // a window of 5 segments, plus the segment itself
	if code, _, _ := get(t, base+m.uris[0]); code != 404 {
		t.Fatalf("segment a playlist duration out of the window: %d, want 404", code)
	}
	clk.Add(-6 * 3 * time.Second)
	code, hdr, seg := get(t, base+m3.uris[4])
	if code != 200 || hdr.Get("Content-Type") != "video/MP2T" || len(seg) < 1000 || seg[0] != 0x47 {
		t.Fatalf("newest segment: %d %q %d bytes", code, hdr.Get("Content-Type"), len(seg))
	}
	// A segment not yet complete is not served either.
	o, _ := New(Config{Channels: []string{"a001"}, Now: clk.Now})
	_, last := o.Window()
	if code, _, _ := get(t, base+"/play/a001/"+o.SegmentName("a001", 0, last+1)); code != 404 {
		t.Fatalf("future segment: %d, want 404", code)
	}
}

func mustGet(t testing.TB, url string) string {
	t.Helper()
	code, _, body := get(t, url)
	if code != 200 {
		t.Fatalf("GET %s: %d %s", url, code, body)
	}
	return body
}

func TestOriginDiscontinuityAtWrap(t *testing.T) {
	// Put the window so that sequence 1000 (1000 % 5 == 0: loop wraps) is its third entry.
	d := 3 * time.Second
	clk := newTestClock(time.Unix(0, 0).Add(time.Duration(1000-2+4) * d))
	o, base := startOrigin(t, Config{Channels: []string{"a001"}, URIs: URIsRelative, Now: clk.Now})
	m := parseMediaInfo(t, mustGet(t, base+"/play/a001/index.m3u8"))
	if m.seq != 998 || len(m.uris) != 4 {
		t.Fatalf("seq %d, %d entries; want 998, 4", m.seq, len(m.uris))
	}
	want := []bool{false, false, true, false}
	for i := range want {
		if m.discBefore[i] != want[i] {
			t.Fatalf("discontinuity before entries %v, want %v", m.discBefore, want)
		}
	}
	if m.discSeq != 998/5 {
		t.Fatalf("discontinuity sequence %d, want %d", m.discSeq, 998/5)
	}
	// The wrapped segment holds the loop's first file, the one before it the last file.
	if got := mustGet(t, base+"/play/a001/"+m.uris[2]); got != string(o.segs[0]) {
		t.Fatalf("segment after the wrap is not the loop's first file")
	}
	if got := mustGet(t, base+"/play/a001/"+m.uris[1]); got != string(o.segs[4]) {
		t.Fatalf("segment before the wrap is not the loop's last file")
	}
	// When the wrap is the window's first entry, the discontinuity is counted in the sequence, not tagged.
	clk.Add(2 * d)
	m = parseMediaInfo(t, mustGet(t, base+"/play/a001/index.m3u8"))
	if m.seq != 1000 || m.discSeq != 200 || m.discBefore[0] {
		t.Fatalf("seq %d disc seq %d tags %v; want 1000, 200, none first", m.seq, m.discSeq, m.discBefore)
	}
}

func TestOriginURIStyles(t *testing.T) {
	f := func(style, wantPrefix string) {
		t.Helper()
		_, base := startOrigin(t, Config{Channels: []string{"a0g2"}, URIs: style})
		host := strings.TrimPrefix(base, "http://")
		m := parseMediaInfo(t, mustGet(t, base+"/play/a0g2/index.m3u8"))
		if len(m.uris) != 4 {
			t.Fatalf("%s: %d entries, want 4", style, len(m.uris))
		}
		for _, u := range m.uris {
			p := strings.ReplaceAll(wantPrefix, "HOST", host)
			name := strings.TrimPrefix(u, p)
			if name == u && p != "" || strings.Contains(name, "/") {
				t.Fatalf("%s: uri %q, want prefix %q then a name", style, u, p)
			}
			if _, _, ok := parseSegmentName([]byte(name)); !ok {
				t.Fatalf("%s: %q is not an Astra-style segment name", style, name)
			}
		}
		// The newest entry resolves against the playlist URL to a served segment.
		if code, _, _ := get(t, base+"/play/a0g2/"+m.uris[3][strings.LastIndexByte(m.uris[3], '/')+1:]); code != 200 {
			t.Fatalf("%s: segment %s: %d", style, m.uris[3], code)
		}
	}
	f(URIsAbsolute, "http://HOST/play/a0g2/")
	f(URIsPath, "/play/a0g2/")
	f(URIsRelative, "")
	f("", "http://HOST/play/a0g2/") // Astra's default

	// A Host header that is not a host is not echoed into playlists.
	_, base := startOrigin(t, Config{Channels: []string{"a001"}})
	code, _, body := get(t, base+"/play/a001/index.m3u8", "Host", "evil\"<x>")
	if code != 200 && code != 400 {
		t.Fatalf("odd Host: %d", code)
	}
	if strings.Contains(body, "evil") {
		t.Fatalf("Host header echoed unchecked:\n%s", body)
	}
}

func TestOriginVariantsMaster(t *testing.T) {
	o, base := startOrigin(t, Config{Channels: []string{"a001", "a002"}, URIs: URIsPath, Variants: 3})
	code, hdr, body := get(t, base+"/play/a001/index.m3u8")
	if code != 200 || hdr.Get("Content-Type") != "application/vnd.apple.mpegurl" {
		t.Fatalf("master: %d %v", code, hdr)
	}
	var variants, bws, res []string
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, "#EXT-X-STREAM-INF:") {
			for _, a := range strings.Split(l[len("#EXT-X-STREAM-INF:"):], ",") {
				if v, ok := strings.CutPrefix(a, "BANDWIDTH="); ok {
					bws = append(bws, v)
				}
				if v, ok := strings.CutPrefix(a, "RESOLUTION="); ok {
					res = append(res, v)
				}
			}
		} else if l != "" && !strings.HasPrefix(l, "#") {
			variants = append(variants, l)
		}
	}
	if len(variants) != 3 || len(bws) != 3 || len(res) != 3 || bws[0] == bws[1] || res[1] == res[2] {
		t.Fatalf("master playlist:\n%s", body)
	}
	seen := map[string]bool{}
	for i, v := range variants {
		if !strings.HasPrefix(v, "/play/a001/") || !strings.HasSuffix(v, ".m3u8") || v == "/play/a001/index.m3u8" {
			t.Fatalf("variant uri %q is not an Astra-style generated media playlist", v)
		}
		if v != "/play/a001/"+o.VariantPlaylist("a001", i) {
			t.Fatalf("variant %d uri %q, want %q", i, v, o.VariantPlaylist("a001", i))
		}
		m := parseMediaInfo(t, mustGet(t, base+v))
		if len(m.uris) != 4 {
			t.Fatalf("variant %s has %d entries", v, len(m.uris))
		}
		for _, u := range m.uris {
			if seen[u] {
				t.Fatalf("segment %s listed by two variants", u)
			}
			seen[u] = true
		}
		if code, _, _ := get(t, base+m.uris[0]); code != 200 {
			t.Fatalf("variant %d segment: %d", i, code)
		}
	}
	// Another channel's names differ; a variant name of a001 is unknown on a002.
	if o.VariantPlaylist("a002", 0) == o.VariantPlaylist("a001", 0) {
		t.Fatalf("channels share playlist names")
	}
	if code, _, _ := get(t, base+"/play/a002/"+o.VariantPlaylist("a001", 0)); code != 404 {
		t.Fatalf("a001's variant on a002: %d, want 404", code)
	}
}

func TestOriginNotFound(t *testing.T) {
	o, base := startOrigin(t, Config{Channels: []string{"a001"}, Variants: 2})
	_, last := o.Window()
	good := o.SegmentName("a001", 1, last)
	f := func(path string, want int) {
		t.Helper()
		if code, _, _ := get(t, base+path); code != want {
			t.Fatalf("GET %s: %d, want %d", path, code, want)
		}
	}
	f("/play/a001/"+good, 200)
	f("/play/a009/"+good, 404)
	f("/play/a001/"+strings.Replace(good, "_", "_0", 1), 404)
	f("/play/a001/"+good[:len(good)-4]+"2.ts", 404) // variant 2 of 2
	f("/play/a001/"+o.SegmentName("a001", 0, last-10), 404)
	f("/play/a001/12345678.m3u8", 404)
	f("/play/a001/", 404)
	f("/play/a001/x/"+good, 404)
	f("/play/", 404)
	f("/", 404)
	f("/play/a001/../a001/index.m3u8", 200) // normalised to the channel, still inside it
	f("/play/a001/index.m3u8?token=abc", 200)
}

func TestOriginRangeAndHead(t *testing.T) {
	o, base := startOrigin(t, Config{Channels: []string{"a001"}})
	_, last := o.Window()
	url := base + "/play/a001/" + o.SegmentName("a001", 0, last)
	full := mustGet(t, url)
	code, hdr, part := get(t, url, "Range", "bytes=10-19")
	if code != 206 || part != full[10:20] || hdr.Get("Content-Range") != fmt.Sprintf("bytes 10-19/%d", len(full)) {
		t.Fatalf("range: %d %q %q", code, hdr.Get("Content-Range"), part)
	}
	if code, _, part := get(t, url, "Range", "bytes=-5"); code != 206 || part != full[len(full)-5:] {
		t.Fatalf("suffix range: %d", code)
	}
	if code, _, _ := get(t, url, "Range", "bytes=999999-"); code != 416 {
		t.Fatalf("unsatisfiable range: %d, want 416", code)
	}
	if code, _, b := get(t, url, "Range", "bytes=0-1,5-6"); code != 200 || b != full {
		t.Fatalf("multi-range is served whole: %d", code)
	}
	resp, err := testHTTP.Head(url)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(b) != 0 || resp.ContentLength != int64(len(full)) {
		t.Fatalf("HEAD: %d, %d body bytes, length %d want %d", resp.StatusCode, len(b), resp.ContentLength, len(full))
	}
}

func TestOriginStats(t *testing.T) {
	o, base := startOrigin(t, Config{Channels: []string{"a001"}, Variants: 2, URIs: URIsPath, MaxStatsURIs: 5})
	_, last := o.Window()
	seg := "/play/a001/" + o.SegmentName("a001", 0, last)
	mustGet(t, base+"/play/a001/index.m3u8")
	mustGet(t, base+"/play/a001/index.m3u8?token=secret")
	mustGet(t, base+"/play/a001/"+o.VariantPlaylist("a001", 1))
	mustGet(t, base+seg)
	mustGet(t, base+seg)
	get(t, base+"/nope")
	get(t, base+"/play/a001/1_0000.ts")
	get(t, base+"/overflow") // the sixth and seventh distinct URIs are over the bound
	var st Stats
	if err := json.Unmarshal([]byte(mustGet(t, base+"/stats")), &st); err != nil {
		t.Fatalf("stats JSON: %v", err)
	}
	want := map[string]uint64{"master": 2, "playlist": 1, "segment": 3, "other": 2}
	for k, n := range want {
		if st.Kinds[k] != n {
			t.Fatalf("kinds %v, want %v", st.Kinds, want)
		}
	}
	if st.Requests != 8 || st.NotFound != 3 || st.URIsDropped != 2 || len(st.URIs) != 5 {
		t.Fatalf("stats %+v", st)
	}
	if st.URIs["/play/a001/index.m3u8?token=secret"] != 1 || st.URIs[seg] != 2 || st.URIs["/play/a001/index.m3u8"] != 1 {
		t.Fatalf("uris %v", st.URIs)
	}
	if got := o.Stats(); got.Requests != 8 { // /stats itself is not counted
		t.Fatalf("Stats().Requests = %d, want 8", got.Requests)
	}
}

func TestOriginDelayReleasedByShutdown(t *testing.T) {
	clk := newTestClock(time.Unix(1_700_000_000, 0))
	o, err := New(Config{Channels: []string{"a001"}, Delay: time.Hour, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- o.Serve(ln) }()
	_, last := o.Window()
	url := "http://" + ln.Addr().String() + "/play/a001/" + o.SegmentName("a001", 0, last)
	got := make(chan int, 1)
	go func() {
		resp, err := testHTTP.Get(url)
		if err != nil {
			got <- -1
			return
		}
		resp.Body.Close()
		got <- resp.StatusCode
	}()
	// Stop the origin while the request is inside the delay: it must not hang for an hour.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := o.WaitHeld(ctx, 1); err != nil {
		t.Fatalf("delayed request never arrived: %v", err)
	}
	o.Shutdown()
	select {
	case <-got:
	case <-time.After(10 * time.Second):
		t.Fatalf("delayed response not released by Shutdown")
	}
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("Serve did not return")
	}
}

// TestOriginFFprobe has the real ffprobe read the live playlist over loopback: the committed media must be real
// H.264 + AAC MPEG-TS and the playlists valid enough for a real HLS client, in every variant and URI style.
func TestOriginFFprobe(t *testing.T) {
	// On the wall clock: ffprobe reads a live playlist as a player would.
	probeOrigin(t, Config{Channels: []string{"a001"}, Now: time.Now})
	probeOrigin(t, Config{Channels: []string{"a001"}, URIs: URIsRelative, Variants: 2, Now: time.Now})
}

// probeOrigin serves cfg and has ffprobe read channel a001's playlist: it must find H.264 and AAC.
func probeOrigin(t *testing.T, cfg Config) {
	t.Helper()
	if _, err := exec.LookPath("ffprobe"); err != nil {
		t.Fatalf("ffprobe is required (make deps installs it): %v", err)
	}
	_, base := startOrigin(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-show_entries", "stream=codec_name",
		"-of", "csv=p=0", base+"/play/a001/index.m3u8").CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe %+v: %v\n%s", cfg.URIs, err, out)
	}
	fields := strings.Fields(string(out))
	if !slices.Contains(fields, "h264") || !slices.Contains(fields, "aac") {
		t.Fatalf("ffprobe saw %q, want h264 and aac", out)
	}
}

// TestOriginEndAndResume: End freezes an MPEG-TS stream and closes its playlist with EXT-X-ENDLIST; Resume lets
// the clock drive it again.
func TestOriginEndAndResume(t *testing.T) {
	clk := newTestClock(time.Unix(1_700_000_000, 500_000_000))
	o, base := startOrigin(t, Config{Channels: []string{"a001"}, URIs: URIsRelative, Now: clk.Now})
	url := base + "/play/a001/index.m3u8"
	before := mustGet(t, url)
	o.End()
	clk.Add(30 * time.Second)
	ended := mustGet(t, url)
	if !strings.HasSuffix(ended, "#EXT-X-ENDLIST\n") || strings.TrimSuffix(ended, "#EXT-X-ENDLIST\n") != before {
		t.Fatalf("ended playlist:\n%s\nbefore:\n%s", ended, before)
	}
	o.Resume()
	after := mustGet(t, url)
	if strings.Contains(after, "ENDLIST") || parseMediaInfo(t, after).seq != parseMediaInfo(t, before).seq+10 {
		t.Fatalf("resumed playlist:\n%s", after)
	}
}
